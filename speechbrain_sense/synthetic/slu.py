"""Synthetic SLU corpora in the real layouts of SLUE-VoxPopuli and MEDIA.

Both corpora are spoken by eSpeak NG (voices that give identical audio for
identical calls), from small templates whose semantic annotation is known
by construction, and written exactly where and how the real releases put
their files, so that the recipes' preparation scripts read them unchanged.

**SLUE-VoxPopuli** (``make_synthetic_slue_voxpopuli``), English NER::

    OUT/slue-voxpopuli_fine-tune.tsv   id, raw_text, normalized_text,
    OUT/slue-voxpopuli_dev.tsv         speaker_id, split, raw_ner,
                                       normalized_ner, raw_combined_ner,
                                       normalized_combined_ner
    OUT/slue-voxpopuli_test_blind.tsv  id, raw_text, normalized_text,
                                       speaker_id, split (no labels)
    OUT/{fine-tune,dev,test}/<id>.ogg  16 kHz mono Ogg Vorbis

NER columns hold a Python list of ``[label, first_char, num_chars]``
(``None`` when the utterance has no entity); ``*_combined_ner`` use SLUE's
seven combined labels (PERSON, PLACE, ORG, NORP, LAW, QUANT, WHEN), the
others OntoNotes labels (PLACE is GPE, QUANT is CARDINAL, WHEN is DATE
here). Some normalized texts end with a full stop, as real ones do.

**MEDIA** (``make_synthetic_media``), French hotel booking concepts::

    OUT/S0272/MEDIA1FR_01/WAV/<dialogue>.wav   stereo 8 kHz, caller on the
                                               channel given by channels.csv
    OUT/E0024/MEDIA1FR_00/MEDIA1FR/DATA/media_lot{1,2,3,4}.xml   train
    OUT/E0024/MEDIA1FR_00/MEDIA1FR/DATA/media_testHC_a_blanc.xml dev
    OUT/E0024/MEDIA1FR_00/MEDIA1FR/DATA/media_testHC.xml         test
    OUT/channels.csv                           "L,<dialogue>" / "R,..."

The XML (ISO-8859-1) holds what SpeechBrain's ``media_prepare.py`` reads:
``<dialogue id nameSpk>`` / ``<turn speaker="spk" startTime endTime>`` /
``<semAnnotation withContext="false">`` / ``<sem concept specif>`` /
``<transcription>`` with text and ``<Sync time>`` marks; ``specif`` is
appended to the concept in the ``full`` concept set and dropped in
``relax``. Wizard turns sit on the other channel and in the XML too (with
``speaker="wiz"``), and a ``withContext="true"`` annotation duplicates each
caller turn, so a preparation that does not filter them fails the tests.

Authors
 * speechbrain-sense developers 2026
"""

import random
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import numpy as np
import soundfile as sf
import torch

from speechbrain_sense.audio import resample
from speechbrain_sense.synthetic.espeak import ESpeakSynthesizer

__all__ = [
    "MEDIA_XML_SPLITS",
    "SLUE_COMBINED_LABELS",
    "make_synthetic_media",
    "make_synthetic_slue_voxpopuli",
]

# (variant, rate, pitch): eSpeak "klatt 6" voices, reproducible sample for
# sample (see espeak.REPRODUCIBLE_VARIANTS).
VOICES = (
    ("adam", 165, 45),
    ("Reed", 175, 95),
    ("david", 150, 45),
    ("klatt6", 180, 90),
)

SLUE_COMBINED_LABELS = (
    "LAW",
    "NORP",
    "ORG",
    "PERSON",
    "PLACE",
    "QUANT",
    "WHEN",
)
# One OntoNotes label per combined label, for the raw-label columns.
_ONTONOTES = {
    "LAW": "LAW",
    "NORP": "NORP",
    "ORG": "ORG",
    "PERSON": "PERSON",
    "PLACE": "GPE",
    "QUANT": "CARDINAL",
    "WHEN": "DATE",
}
_SLUE_ENTITIES = {
    "PERSON": ["john smith", "maria garcia", "peter weber", "anna novak"],
    "PLACE": ["europe", "paris", "poland", "the baltic sea"],
    "ORG": ["the commission", "the council", "nato", "the central bank"],
    "NORP": ["european", "french", "polish", "greek"],
    "LAW": ["article seven", "the lisbon treaty", "the dublin regulation"],
    "QUANT": ["two million", "fifty percent", "three hundred"],
    "WHEN": ["monday", "last year", "next week"],
}
_SLUE_TEMPLATES = [
    "{PERSON} spoke about {LAW} in {PLACE}",
    "{ORG} will meet {PERSON} {WHEN}",
    "we need {QUANT} euros for {NORP} farmers",
    "the debate in {PLACE} started {WHEN}",
    "{NORP} citizens trust {ORG}",
    "thank you {PERSON} for your report",
    "this is not acceptable",
]
SLUE_SPLIT_FILES = {
    "fine-tune": "slue-voxpopuli_fine-tune.tsv",
    "dev": "slue-voxpopuli_dev.tsv",
    "test": "slue-voxpopuli_test_blind.tsv",
}
SLUE_COLUMNS = (
    "id",
    "raw_text",
    "normalized_text",
    "speaker_id",
    "split",
    "raw_ner",
    "normalized_ner",
    "raw_combined_ner",
    "normalized_combined_ner",
)
SLUE_BLIND_COLUMNS = SLUE_COLUMNS[:5]
SLUE_SAMPLE_RATE = 16000
MEDIA_SAMPLE_RATE = 8000

MEDIA_DATA_DIR = "E0024/MEDIA1FR_00/MEDIA1FR/DATA"
MEDIA_WAV_DIR = "S0272/MEDIA1FR_01/WAV"
MEDIA_XML_SPLITS = {
    "media_lot1.xml": "train",
    "media_lot2.xml": "train",
    "media_lot3.xml": "train",
    "media_lot4.xml": "train",
    "media_testHC_a_blanc.xml": "dev",
    "media_testHC.xml": "test",
}
# Concept phrases: (concept, specif, alternatives). "null" as in MEDIA.
_MEDIA_PHRASES = {
    "command": ("command-tache", "null", ["je voudrais réserver"]),
    "rooms": (
        "nombre-chambre",
        "-reservation",
        ["une chambre", "deux chambres", "trois chambres"],
    ),
    "city": (
        "localisation-ville",
        "-hotel",
        ["Paris", "Marseille", "Lyon", "Nice"],
    ),
    "nights": (
        "sejour-nbNuit",
        "-reservation",
        ["une nuit", "deux nuits", "cinq nuits"],
    ),
    "date": (
        "temps-date",
        "-reservation",
        ["douze mars", "premier avril", "vingt juin"],
    ),
    "reply": ("reponse", "null", ["oui", "non", "tout à fait"]),
}
# A caller turn is a list of segments (split by a <Sync>), each a list of
# phrase keys or plain words (concept "null").
_MEDIA_TURNS = [
    [["command", "rooms", "à", "city"]],
    [["reply"], ["pour", "nights", "à partir du", "date"]],
    [["command", "nights", "à", "city"]],
    [["reply"], ["euh", "rooms", "pour", "nights"]],
]
_WIZARD_LINES = [
    "bonjour que puis-je faire pour vous",
    "très bien",
    "pour combien de nuits",
]


@dataclass
class _Segment:
    """One caller segment of a MEDIA turn, annotated by construction.

    ``parts`` holds ``(concept, specif, text)`` triples (``"null"`` for
    untagged words); ``start`` and ``end`` are the segment's times in the
    dialogue's audio, in seconds, set once it is spoken.
    """

    parts: list  # [(concept, specif, text)]
    start: float = 0.0
    end: float = 0.0

    def tagged(self, method):
        """Write the segment as the tagged transcript the recipes expect.

        Arguments
        ---------
        method : str
            ``full`` tags with concept and specifier, else concept only.

        Returns
        -------
        str
            ``<concept> words >`` for each concept part, plain words else.
        """
        tokens = []
        for concept, specif, text in self.parts:
            if concept == "null":
                tokens.append(text)
                continue
            full = method == "full" and specif != "null"
            name = concept + specif if full else concept
            tokens += [f"<{name}>", text, ">"]
        return " ".join(tokens)


@dataclass
class _Dialogue:
    """One synthetic MEDIA dialogue, as written to the XML annotation.

    ``turns`` holds ``(speaker, start, end, content)`` tuples: ``"wiz"``
    turns carry their text, ``"spk"`` (caller) turns a list of
    :class:`_Segment`.
    """

    name: str
    channel: str
    speaker: str
    turns: list = field(default_factory=list)  # ("wiz"|"spk", start, end, x)


def _render(tts, text, language, voice, seed, sample_rate):
    """Speak ``text`` and resample it, peak-normalised to 0.5.

    Arguments
    ---------
    tts : ESpeakSynthesizer
        The synthesizer.
    text : str
        Text to speak.
    language : str
        eSpeak language code.
    voice : tuple
        ``(variant, rate, pitch)``, one of ``VOICES``.
    seed : int
        Seed of eSpeak's noise generators.
    sample_rate : int
        Sampling rate of the returned audio.

    Returns
    -------
    numpy.ndarray
        Mono float32 samples at ``sample_rate``, [time].
    """
    variant, rate, pitch = voice
    result = tts.synthesize(
        text, language, voice_variant=variant, rate=rate, pitch=pitch, seed=seed
    )
    with torch.no_grad():
        speech = resample(
            torch.from_numpy(result.waveform), result.sample_rate, sample_rate
        ).numpy()
    peak = float(np.abs(speech).max()) if len(speech) else 1.0
    return (0.5 * speech / peak).astype(np.float32)


def _slue_sentence(rng):
    """Words, word spans ``(label, start, end)`` of one template."""
    words, spans = [], []
    for token in rng.choice(_SLUE_TEMPLATES).split():
        if token.startswith("{"):
            label = token[1:-1]
            entity = rng.choice(_SLUE_ENTITIES[label]).split()
            spans.append((label, len(words), len(words) + len(entity)))
            words += entity
        else:
            words.append(token)
    return words, spans


def _char_spans(words, spans, labels=None):
    """SLUE's ``[[label, first_char, num_chars], ...]`` or ``None``."""
    if not spans:
        return "None"
    offsets, position = [], 0
    for word in words:
        offsets.append(position)
        position += len(word) + 1
    out = []
    for label, start, end in spans:
        first = offsets[start]
        last = offsets[end - 1] + len(words[end - 1])
        out.append([labels[label] if labels else label, first, last - first])
    return str(out)


def make_synthetic_slue_voxpopuli(
    out_dir, per_split=None, seed=0, language="en"
):
    """Writes a tiny SLUE-VoxPopuli release (see the module doc).

    Arguments
    ---------
    out_dir : str or Path
        Output root (created).
    per_split : dict, optional
        Utterances per split, ``{"fine-tune": 12, "dev": 6, "test": 4}``
        by default.
    seed : int
        Same seed, same TSVs and audio.
    language : str
        eSpeak voice language.

    Returns
    -------
    dict
        ``{split: {id: {"words": [...], "spans": [(label, first_word,
        end_word), ...], "text": normalized_text}}}``: the annotation the
        TSVs encode, for tests.
    """
    per_split = per_split or {"fine-tune": 12, "dev": 6, "test": 4}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    tts = ESpeakSynthesizer()
    annotations = {}
    for split_index, (split, count) in enumerate(per_split.items()):
        if split not in SLUE_SPLIT_FILES:
            raise ValueError(f"unknown SLUE split {split!r}")
        (out / split).mkdir(exist_ok=True)
        columns = SLUE_BLIND_COLUMNS if split == "test" else SLUE_COLUMNS
        lines = ["\t".join(columns)]
        annotations[split] = {}
        for i in range(count):
            words, spans = _slue_sentence(rng)
            text = " ".join(words)
            # Real normalized texts keep some sentence-final punctuation.
            if i % 3 == 2:
                text += "."
            utt_id = (
                f"2013{split_index + 1:02d}{i + 1:02d}-0900-PLENARY-"
                f"{i % 7 + 3}-en_2013{split_index + 1:02d}{i + 1:02d}-"
                f"{10 + i % 12:02d}:{(7 * i) % 60:02d}:04_{i % 5}"
            )
            voice_index = (i + split_index) % len(VOICES)
            audio = _render(
                tts,
                text,
                language,
                VOICES[voice_index],
                seed * 1000 + i,
                SLUE_SAMPLE_RATE,
            )
            sf.write(
                out / split / f"{utt_id}.ogg",
                audio,
                SLUE_SAMPLE_RATE,
                format="OGG",
                subtype="VORBIS",
            )
            raw = text[0].upper() + text[1:]
            row = [
                utt_id,
                raw,
                text,
                f"{1000 + voice_index}" if voice_index else "None",
                split,
            ]
            if split != "test":
                row += [
                    _char_spans(words, spans, _ONTONOTES),
                    _char_spans(words, spans, _ONTONOTES),
                    _char_spans(words, spans),
                    _char_spans(words, spans),
                ]
            lines.append("\t".join(row))
            annotations[split][utt_id] = {
                "words": words,
                "spans": spans,
                "text": text,
            }
        (out / SLUE_SPLIT_FILES[split]).write_text(
            "\n".join(lines) + "\n", encoding="utf-8"
        )
    return annotations


def _media_turn(rng, template):
    """Fill a caller-turn template with randomly chosen phrases.

    Arguments
    ---------
    rng : random.Random
        Chooses one wording per concept phrase.
    template : list of list of str
        One list of keys per segment; a key of ``_MEDIA_PHRASES`` becomes
        a tagged concept part, any other key is kept as untagged words.

    Returns
    -------
    list of _Segment
        The turn's segments, not yet timed.
    """
    segments = []
    for keys in template:
        parts = []
        for key in keys:
            if key in _MEDIA_PHRASES:
                concept, specif, options = _MEDIA_PHRASES[key]
                parts.append((concept, specif, rng.choice(options)))
            else:
                parts.append(("null", "null", key))
        segments.append(_Segment(parts))
    return segments


def _transcription(text, sync=None):
    """Write a MEDIA ``<transcription>`` element, XML-escaped.

    Arguments
    ---------
    text : str
        The words of the element.
    sync : float, optional
        Time in seconds of a leading ``<Sync>`` mark; none if None.

    Returns
    -------
    str
        The element as one line of XML.
    """
    mark = f'<Sync time="{sync:.3f}"/>' if sync is not None else ""
    return f"<transcription>{mark}{escape(text)}</transcription>"


def _dialogue_xml(dialogue):
    """Write one dialogue as MEDIA's XML annotation.

    Caller turns get two ``<semAnnotation>`` blocks, without and with
    context, as the real release has; the recipes read the first.

    Arguments
    ---------
    dialogue : _Dialogue
        The dialogue, its turns timed.

    Returns
    -------
    list of str
        Lines of XML, from ``<dialogue>`` to ``</dialogue>``.
    """
    lines = [
        f"<dialogue id={quoteattr(dialogue.name)} "
        f"nameSpk={quoteattr(dialogue.speaker)}>"
    ]
    for speaker, start, end, content in dialogue.turns:
        lines.append(
            f'<turn speaker="{speaker}" startTime="{start:.3f}" '
            f'endTime="{end:.3f}">'
        )
        if speaker == "wiz":
            lines.append(
                '<semAnnotation withContext="false"><sem concept="null" '
                f'specif="null">{_transcription(content, start)}</sem>'
                "</semAnnotation>"
            )
        else:
            for context in ("false", "true"):
                lines.append(f'<semAnnotation withContext="{context}">')
                for segment in content:
                    for k, (concept, specif, text) in enumerate(segment.parts):
                        # Each segment opens with a Sync at its start.
                        sync = segment.start if k == 0 else None
                        if context == "true" and concept != "null":
                            # The context annotation differs from the
                            # one the recipes read.
                            specif = "-contexte"
                        lines.append(
                            f"<sem concept={quoteattr(concept)} "
                            f'specif={quoteattr(specif)} mode="+">'
                            f"{_transcription(text, sync)}</sem>"
                        )
                lines.append("</semAnnotation>")
        lines.append("</turn>")
    lines.append("</dialogue>")
    return lines


def make_synthetic_media(out_dir, dialogues=None, seed=0, language="fr"):
    """Writes a tiny MEDIA release (see the module doc).

    Arguments
    ---------
    out_dir : str or Path
        Output root (created).
    dialogues : dict, optional
        Dialogues per split, ``{"train": 4, "dev": 1, "test": 1}`` by
        default; train dialogues are spread over the four ``media_lot``
        files. Each dialogue has two caller turns (one or two segments).
    seed : int
        Same seed, same files.
    language : str
        eSpeak voice language.

    Returns
    -------
    dict
        ``{split: [{"dialogue", "channel", "start", "stop", "full",
        "relax"}, ...]}``: every caller segment with its tagged
        transcript in both concept sets, for tests.
    """
    dialogues = dialogues or {"train": 4, "dev": 1, "test": 1}
    out = Path(out_dir)
    (out / MEDIA_DATA_DIR).mkdir(parents=True, exist_ok=True)
    (out / MEDIA_WAV_DIR).mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    tts = ESpeakSynthesizer()
    files = {name: [] for name in MEDIA_XML_SPLITS}
    train_files = [n for n, s in MEDIA_XML_SPLITS.items() if s == "train"]
    channels = []
    annotations = {split: [] for split in dialogues}
    number = 1000
    for split, count in dialogues.items():
        if split not in ("train", "dev", "test"):
            raise ValueError(f"unknown MEDIA split {split!r}")
        for i in range(count):
            number += 1
            name = str(number)
            channel = "L" if number % 2 == 0 else "R"
            dialogue = _Dialogue(name, channel, f"speaker_1_08730_{name}")
            voice = VOICES[number % len(VOICES)]
            wizard_voice = VOICES[(number + 1) % len(VOICES)]
            caller, wizard = [], []
            time = 0.3
            for t in range(2):
                line = _WIZARD_LINES[(number + t) % len(_WIZARD_LINES)]
                speech = _render(
                    tts, line, language, wizard_voice, number, MEDIA_SAMPLE_RATE
                )
                wizard.append((time, speech))
                end = time + len(speech) / MEDIA_SAMPLE_RATE
                dialogue.turns.append(("wiz", time, end, line))
                time = end + 0.3
                template = _MEDIA_TURNS[(number + t) % len(_MEDIA_TURNS)]
                segments = _media_turn(rng, template)
                turn_start = time
                for s, segment in enumerate(segments):
                    text = " ".join(part[2] for part in segment.parts)
                    speech = _render(
                        tts,
                        text,
                        language,
                        voice,
                        number * 10 + 2 * t + s,
                        MEDIA_SAMPLE_RATE,
                    )
                    segment.start = time
                    caller.append((time + 0.1, speech))
                    time += 0.1 + len(speech) / MEDIA_SAMPLE_RATE + 0.2
                    segment.end = time
                    annotations[split].append(
                        {
                            "dialogue": name,
                            "channel": channel,
                            "start": round(segment.start, 3),
                            "stop": round(segment.end, 3),
                            "full": segment.tagged("full"),
                            "relax": segment.tagged("relax"),
                        }
                    )
                dialogue.turns.append(("spk", turn_start, time, segments))
                time += 0.3
            audio = np.zeros((int(time * MEDIA_SAMPLE_RATE) + 1, 2), np.float32)
            caller_channel = 0 if channel == "L" else 1
            for index, parts in (
                (caller_channel, caller),
                (1 - caller_channel, wizard),
            ):
                for start, speech in parts:
                    first = int(start * MEDIA_SAMPLE_RATE)
                    audio[first : first + len(speech), index] = speech
            sf.write(
                out / MEDIA_WAV_DIR / f"{name}.wav",
                audio,
                MEDIA_SAMPLE_RATE,
                subtype="PCM_16",
            )
            channels.append(f"{channel},{name}")
            if split == "train":
                xml_name = train_files[i % len(train_files)]
            else:
                xml_name = next(
                    n for n, s in MEDIA_XML_SPLITS.items() if s == split
                )
            files[xml_name].extend(_dialogue_xml(dialogue))
    for xml_name, lines in files.items():
        text = (
            '<?xml version="1.0" encoding="ISO-8859-1"?>\n<corpus>\n'
            + "\n".join(lines)
            + "\n</corpus>\n"
        )
        (out / MEDIA_DATA_DIR / xml_name).write_bytes(text.encode("iso-8859-1"))
    (out / "channels.csv").write_text("\n".join(channels) + "\n")
    return annotations
