"""Compositional parallel sentences: subject + action + setting.

A natural sentence list of a few dozen lines is too small for a tiny
student to generalise from: a held-out sentence shares almost no content
words with the training sentences, so its meaning cannot be inferred. Here
every sentence combines three phrases (12 subjects x 14 actions x 12
settings = 2016 sentences per language), so a held-out sentence is a new
combination of phrases heard in training, and a model that learned what
the phrases mean can place it in the teacher's space. The translations are
phrase-aligned, hence sentence ``i`` of every language means the same.

Used by the CPU demo (``sense_tiny.yaml``) through
``make_synthetic_cv(..., sentences="grammar")``.

Authors
 * speechbrain-sense developers 2026
"""

import itertools
import random

SUBJECTS = {
    "en": [
        "the cat", "my brother", "the teacher", "a young girl",
        "the old farmer", "our neighbour", "the doctor", "my sister",
        "the little boy", "the police officer", "the baker",
        "her grandmother",
    ],
    "fr": [
        "le chat", "mon frère", "le professeur", "une jeune fille",
        "le vieux fermier", "notre voisin", "le médecin", "ma sœur",
        "le petit garçon", "le policier", "le boulanger", "sa grand-mère",
    ],
    "de": [
        "die Katze", "mein Bruder", "der Lehrer", "ein junges Mädchen",
        "der alte Bauer", "unser Nachbar", "der Arzt", "meine Schwester",
        "der kleine Junge", "der Polizist", "der Bäcker", "ihre Großmutter",
    ],
    "es": [
        "el gato", "mi hermano", "el profesor", "una chica joven",
        "el viejo granjero", "nuestro vecino", "el médico", "mi hermana",
        "el niño pequeño", "el policía", "el panadero", "su abuela",
    ],
}  # fmt: skip

ACTIONS = {
    "en": [
        "reads a newspaper", "drinks hot coffee", "plays football",
        "eats an apple", "writes a letter", "sings a song",
        "paints the door", "cooks dinner", "washes the car",
        "opens the window", "buys fresh bread", "watches the birds",
        "repairs the bicycle", "feeds the horses",
    ],
    "fr": [
        "lit un journal", "boit un café chaud", "joue au football",
        "mange une pomme", "écrit une lettre", "chante une chanson",
        "peint la porte", "prépare le dîner", "lave la voiture",
        "ouvre la fenêtre", "achète du pain frais", "regarde les oiseaux",
        "répare le vélo", "nourrit les chevaux",
    ],
    "de": [
        "liest eine Zeitung", "trinkt heißen Kaffee", "spielt Fußball",
        "isst einen Apfel", "schreibt einen Brief", "singt ein Lied",
        "streicht die Tür", "kocht das Abendessen", "wäscht das Auto",
        "öffnet das Fenster", "kauft frisches Brot", "beobachtet die Vögel",
        "repariert das Fahrrad", "füttert die Pferde",
    ],
    "es": [
        "lee un periódico", "bebe café caliente", "juega al fútbol",
        "come una manzana", "escribe una carta", "canta una canción",
        "pinta la puerta", "cocina la cena", "lava el coche",
        "abre la ventana", "compra pan fresco", "mira los pájaros",
        "repara la bicicleta", "da de comer a los caballos",
    ],
}  # fmt: skip

SETTINGS = {
    "en": [
        "in the garden", "at the station", "every morning",
        "in the kitchen", "near the river", "after school",
        "on the beach", "at night", "in the small village",
        "before lunch", "on Sunday", "in the park",
    ],
    "fr": [
        "dans le jardin", "à la gare", "chaque matin", "dans la cuisine",
        "près de la rivière", "après l'école", "sur la plage", "la nuit",
        "dans le petit village", "avant le déjeuner", "le dimanche",
        "dans le parc",
    ],
    "de": [
        "im Garten", "am Bahnhof", "jeden Morgen", "in der Küche",
        "am Fluss", "nach der Schule", "am Strand", "in der Nacht",
        "im kleinen Dorf", "vor dem Mittagessen", "am Sonntag", "im Park",
    ],
    "es": [
        "en el jardín", "en la estación", "cada mañana", "en la cocina",
        "cerca del río", "después de la escuela", "en la playa",
        "por la noche", "en el pueblo pequeño", "antes del almuerzo",
        "el domingo", "en el parque",
    ],
}  # fmt: skip


def grammar_languages():
    """Languages with phrase tables.

    Returns
    -------
    list of str

    Example
    -------
    >>> grammar_languages()
    ['de', 'en', 'es', 'fr']
    """
    return sorted(SUBJECTS)


def grammar_sentences(language, seed=0):
    """Every subject-action-setting sentence of a language, shuffled.

    The order depends on ``seed`` only, so index ``i`` is the same
    combination (the same meaning) in every language.

    Arguments
    ---------
    language : str
        One of :func:`grammar_languages`.
    seed : int
        Shuffling seed.

    Returns
    -------
    list of str
        2016 distinct sentences, capitalised, ending with a period.

    Example
    -------
    >>> en, fr = grammar_sentences("en"), grammar_sentences("fr")
    >>> len(en), len(set(en))
    (2016, 2016)
    >>> grammar_sentences("en", seed=1)[0] == en[0]
    False
    """
    if language not in SUBJECTS:
        raise ValueError(
            f"no phrase grammar for {language!r}; available: "
            f"{grammar_languages()}"
        )
    combinations = list(
        itertools.product(
            range(len(SUBJECTS[language])),
            range(len(ACTIONS[language])),
            range(len(SETTINGS[language])),
        )
    )
    random.Random(seed).shuffle(combinations)
    sentences = []
    for s, a, p in combinations:
        text = (
            f"{SUBJECTS[language][s]} {ACTIONS[language][a]} "
            f"{SETTINGS[language][p]}."
        )
        sentences.append(text[0].upper() + text[1:])
    return sentences
