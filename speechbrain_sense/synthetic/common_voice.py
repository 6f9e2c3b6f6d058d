"""A small synthetic corpus in the exact Common Voice layout.

Tests, integration runs and the demo need a multilingual speech corpus with
transcripts that (a) is laid out exactly like a Common Voice release, so the
real data-preparation code is exercised, (b) is parallel across languages
(line i of every built-in sentence list is a translation of line i of the
English one), and (c) can be made offline in seconds. This module speaks
built-in (or user-given) sentences with eSpeak NG
(:mod:`speechbrain_sense.synthetic.espeak`) and writes::

    OUT/<lang>/clips/common_voice_<lang>_<8 digits>.mp3   48 kHz mono MP3
    OUT/<lang>/train.tsv, dev.tsv, test.tsv                the CV columns
    OUT/<lang>/validated.tsv                               train+dev+test
    OUT/<lang>/clip_durations.tsv                          clip, duration[ms]

Like Common Voice, the splits are sentence-disjoint; the "speakers" are
eSpeak voice configurations (variant, rate, pitch), each with a stable
64-hex ``client_id``. TSVs are unquoted (read them with
``csv.QUOTE_NONE``); sentences are whitespace-normalised so that no field
ever contains a tab or a line break.

Determinism: the same arguments and seed give byte-identical TSVs (same
eSpeak NG data version). The MP3 bytes are identical too, run after run and
process after process (checked with eSpeak NG 1.52, torch 2.14, libsndfile
1.2.2 with LAME): the speakers use only eSpeak's reproducible "klatt 6"
variants and its noise is seeded per clip. MP3 bytes may differ across
library versions or CPUs (resampler floating point), the TSVs do not.

Command line::

    python -m speechbrain_sense.synthetic.common_voice --out DIR \\
        --languages en,fr,de,es --per-language 20 [--seed 0] \\
        [--sentences fr=my_fr.txt ...] [--split 0.8,0.1,0.1]

Authors
 * speechbrain-sense contributors 2025
"""

import argparse
import collections
import functools
import hashlib
import math
import os
import random
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources

import numpy as np
import soundfile as sf
import torch
import torchaudio
from speechbrain.utils.logger import get_logger

from speechbrain_sense.data.preparation import COMMON_VOICE_COLUMNS
from speechbrain_sense.synthetic.espeak import ESpeakSynthesizer
from speechbrain_sense.synthetic.phrase_grammar import grammar_sentences

logger = get_logger(__name__)

__all__ = [
    "CV_COLUMNS",
    "SPEAKERS",
    "SPLITS",
    "SpeakerProfile",
    "builtin_languages",
    "format_summary",
    "load_builtin_sentences",
    "main",
    "make_synthetic_cv",
    "normalize_sentence",
    "read_sentence_file",
]

# The Common Voice 16.1 layout (the recipes' validated release).
CV_COLUMNS = COMMON_VOICE_COLUMNS["16.1"]
DURATION_COLUMNS = ("clip", "duration[ms]")
SPLITS = ("train", "dev", "test")
CLIP_SAMPLE_RATE = 48000
# Room-noise floor of the clips: about -70 dBFS, inaudible but not digital
# silence, like a real (quiet) recording.
NOISE_STD = 3e-4
PADDING_RANGE_S = (0.12, 0.18)
PEAK_RANGE = (0.4, 0.8)


@dataclass(frozen=True)
class SpeakerProfile:
    """One synthetic speaker: an eSpeak voice configuration plus the
    demographic fields Common Voice stores for its contributors.

    Arguments
    ---------
    variant : str
        eSpeak NG voice variant (``"m3"``, ``"f2"``, ...).
    rate : int
        Speaking rate, words per minute.
    pitch : int
        eSpeak pitch, 0 to 100.
    gender : str
        Common Voice ``gender`` value (``""`` when not given).
    age : str
        Common Voice ``age`` value (``""`` when not given).
    """

    variant: str
    rate: int
    pitch: int
    gender: str
    age: str


# eSpeak's "klatt 6" variants, the ones that give identical audio for
# identical calls (see espeak.REPRODUCIBLE_VARIANTS), spread further by
# rate and pitch (median F0 from about 70 Hz to 180 Hz). Genders are
# nominal; one speaker leaves age/gender empty, as many CV contributors do.
SPEAKERS = (
    SpeakerProfile("adam", 165, 45, "male", "thirties"),
    SpeakerProfile("Reed", 175, 95, "female", "twenties"),
    SpeakerProfile("david", 150, 45, "male", "fifties"),
    SpeakerProfile("klatt6", 185, 99, "female", "thirties"),
    SpeakerProfile("mike2", 140, 55, "male", "sixties"),
    SpeakerProfile("edward2", 160, 70, "", ""),
)

# Common Voice locales whose eSpeak NG voice has another code; any other
# locale is tried as is, then without its region ("sv-SE" -> "sv").
_ESPEAK_LANGUAGE = {"zh-CN": "cmn", "zh-TW": "cmn", "zh-HK": "yue"}

_LOCALE_PATTERN = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")

# Runs of whitespace other than no-break spaces (which French typography
# uses on purpose), and any C0/C1 control character.
_COLLAPSE = re.compile(r"(?:[^\S\u00a0\u2007\u202f]|[\x00-\x1f\x7f-\x9f])+")


def normalize_sentence(text):
    """Make a sentence safe for an unquoted TSV field.

    Tabs, line breaks (including ``\\r``, U+0085, U+2028, U+2029), other
    control characters and runs of spaces become one space; the ends are
    stripped. Quotes and everything else are kept as they are.

    Arguments
    ---------
    text : str
        Raw sentence.

    Returns
    -------
    str
        The normalised sentence (empty if nothing printable was left).

    Example
    -------
    >>> normalize_sentence(' He said\\t"hi"\\r\\nto  me\\u2028 ')
    'He said "hi" to me'
    """
    return _COLLAPSE.sub(" ", text).strip()


def _unique(sentences):
    """Normalised, non-empty, de-duplicated, in first-seen order."""
    seen = {}
    for sentence in sentences:
        sentence = normalize_sentence(sentence)
        if sentence:
            seen.setdefault(sentence, None)
    return list(seen)


def read_sentence_file(path):
    """Read one sentence per line from a UTF-8 text file.

    Only ``\\n`` separates sentences; any other line-break-like character
    inside a line is normalised to a space (see :func:`normalize_sentence`).
    Blank lines and repeated sentences are skipped.

    Arguments
    ---------
    path : str or os.PathLike
        The file.

    Returns
    -------
    list of str
        The sentences.

    Raises
    ------
    ValueError
        If the file holds no sentence.
    """
    # newline="" keeps "\r" and friends inside lines; str.splitlines()
    # would split on them, and they belong to the sentence.
    with open(path, encoding="utf-8-sig", newline="") as handle:
        sentences = _unique(handle.read().split("\n"))
    if not sentences:
        raise ValueError(f"Sentence file {os.fspath(path)!r} has no sentence")
    return sentences


def builtin_languages():
    """Languages that have a built-in (parallel) sentence list.

    Returns
    -------
    list of str
        Sorted language codes.

    Example
    -------
    >>> {"en", "fr", "fa", "ru"} <= set(builtin_languages())
    True
    """
    folder = resources.files("speechbrain_sense.synthetic") / "sentences"
    return sorted(
        entry.name[: -len(".txt")]
        for entry in folder.iterdir()
        if entry.name.endswith(".txt")
    )


def load_builtin_sentences(language):
    """The built-in sentences of ``language``.

    Line i of every built-in list is a translation of line i of the English
    list, so utterances with the same line index are parallel.

    Arguments
    ---------
    language : str
        One of :func:`builtin_languages`.

    Returns
    -------
    list of str
        The sentences, in file order.

    Example
    -------
    >>> en, fr = load_builtin_sentences("en"), load_builtin_sentences("fr")
    >>> len(en) == len(fr) >= 60
    True
    """
    if language not in builtin_languages():
        raise ValueError(
            f"No built-in sentences for language {language!r} (built-in: "
            f"{', '.join(builtin_languages())}); give a sentence file, e.g. "
            f"--sentences {language}=FILE"
        )
    entry = resources.files("speechbrain_sense.synthetic") / "sentences"
    text = (entry / f"{language}.txt").read_text(encoding="utf-8")
    return _unique(text.split("\n"))


def _split_counts(total, fractions):
    """Share ``total`` items among splits in proportion to ``fractions``.

    Largest remainders get the leftovers; then, as in Common Voice, every
    split with a positive fraction gets at least one item if possible.

    Example
    -------
    >>> _split_counts(4, (0.8, 0.1, 0.1))
    [2, 1, 1]
    >>> _split_counts(20, (0.8, 0.1, 0.1))
    [16, 2, 2]
    >>> _split_counts(1, (0.8, 0.1, 0.1))
    [1, 0, 0]
    """
    raw = [fraction * total for fraction in fractions]
    counts = [math.floor(value) for value in raw]
    by_remainder = sorted(
        range(len(raw)), key=lambda i: (counts[i] - raw[i], i)
    )
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    for i, fraction in enumerate(fractions):
        if fraction > 0 and counts[i] == 0:
            donor = max(range(len(counts)), key=lambda j: (counts[j], -j))
            if counts[donor] > 1:
                counts[donor] -= 1
                counts[i] += 1
    return counts


def _plan_utterances(num_sentences, per_language, fractions, rng, source):
    """Choose (split, sentence index, speaker index) for every utterance.

    With enough sentences every utterance has its own sentence. Otherwise
    all sentences are used, each split owning its own subset (so splits
    stay sentence-disjoint) and repeating it with different speakers.
    """
    counts = _split_counts(per_language, fractions)
    order = rng.sample(range(num_sentences), num_sentences)
    if per_language <= num_sentences:
        pool_sizes = counts
    else:
        pool_sizes = _split_counts(
            num_sentences, [count / per_language for count in counts]
        )
        starved = [
            split
            for split, count, size in zip(SPLITS, counts, pool_sizes)
            if count and not size
        ]
        if starved:
            needed = sum(1 for count in counts if count)
            raise ValueError(
                f"{source} has {num_sentences} distinct sentence(s); "
                f"{needed} are needed so that the splits "
                f"{', '.join(s for s, c in zip(SPLITS, counts) if c)} do "
                "not share sentences"
            )
    plan = []
    start = 0
    speaker_orders = {}
    for split, count, size in zip(SPLITS, counts, pool_sizes):
        pool = order[start : start + size]
        start += size
        for j in range(count):
            sentence = pool[j % size]
            if sentence not in speaker_orders:
                speaker_orders[sentence] = rng.sample(
                    range(len(SPEAKERS)), len(SPEAKERS)
                )
            repeat = j // size
            speaker = speaker_orders[sentence][repeat % len(SPEAKERS)]
            plan.append((split, sentence, speaker))
    return plan


def _client_id(seed, locale, speaker):
    """Make the stable, CV-like ``client_id`` of one synthetic speaker.

    Arguments
    ---------
    seed : int
        Seed of the data set, so that two data sets get distinct ids.
    locale : str
        Common Voice locale, e.g. ``"sv-SE"``.
    speaker : SpeakerProfile
        The speaker's voice configuration.

    Returns
    -------
    str
        64 hex digits, the SHA-256 of the seed, locale and voice.
    """
    key = (
        f"synthetic-cv|{seed}|{locale}|{speaker.variant}|{speaker.rate}|"
        f"{speaker.pitch}"
    )
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _espeak_language(tts, locale):
    """Find the eSpeak NG language code that speaks a CV locale.

    Tries the explicit mapping (``zh-CN`` -> ``cmn``), the locale itself,
    then the locale without its region (``sv-SE`` -> ``sv``).

    Arguments
    ---------
    tts : ESpeakSynthesizer
        The synthesizer whose voices are looked up.
    locale : str
        Common Voice locale.

    Returns
    -------
    str or None
        The first candidate eSpeak has a voice for, None if there is none.
    """
    for candidate in (
        _ESPEAK_LANGUAGE.get(locale),
        locale,
        locale.split("-")[0],
    ):
        if candidate and tts.has_language(candidate):
            return candidate
    return None


@functools.lru_cache(maxsize=4)
def _resampler(sample_rate):
    # The transform keeps its sinc kernel; building the kernel takes longer
    # than applying it to a sentence.
    """Build (and cache) a resampler from ``sample_rate`` to 48 kHz.

    Arguments
    ---------
    sample_rate : int
        Sampling rate of the synthesised speech.

    Returns
    -------
    torchaudio.transforms.Resample
        Transform to ``CLIP_SAMPLE_RATE``, shared between calls.
    """
    return torchaudio.transforms.Resample(sample_rate, CLIP_SAMPLE_RATE)


def _render_clip(tts, sentence, language, speaker, clip_seed):
    """Speak ``sentence`` and dress it up as a 48 kHz CV recording."""
    result = tts.synthesize(
        sentence,
        language,
        voice_variant=speaker.variant,
        rate=speaker.rate,
        pitch=speaker.pitch,
        seed=clip_seed & 0x7FFFFFFF,
    )
    with torch.no_grad():
        speech = _resampler(result.sample_rate)(
            torch.from_numpy(result.waveform)
        ).numpy()
    rng = np.random.default_rng(clip_seed)
    peak = float(np.abs(speech).max()) if len(speech) else 0.0
    gain = rng.uniform(*PEAK_RANGE) / peak if peak > 0 else 0.0
    lead, trail = (
        int(rng.uniform(*PADDING_RANGE_S) * CLIP_SAMPLE_RATE) for _ in range(2)
    )
    audio = np.zeros(lead + len(speech) + trail, dtype=np.float32)
    audio[lead : lead + len(speech)] = speech * gain
    audio += rng.normal(0.0, NOISE_STD, len(audio)).astype(np.float32)
    return np.clip(audio, -1.0, 1.0)


class _Mp3Writer:
    """Encodes MP3s in background threads while the next clip is made.

    LAME encoding takes longer than synthesis; libsndfile runs without the
    GIL, so two threads roughly halve the time on a multi-core machine.
    At most a few clips wait in memory.
    """

    def __init__(self, workers=2, max_pending=8):
        self.pool = ThreadPoolExecutor(max_workers=workers)
        self.pending = collections.deque()
        self.max_pending = max_pending

    def write(self, path, audio):
        """Queue ``audio`` for encoding to an MP3 file at ``path``.

        Blocks while ``max_pending`` clips already wait, so memory stays
        bounded.

        Arguments
        ---------
        path : str or Path
            Destination MP3 file.
        audio : numpy.ndarray
            Mono float32 samples at ``CLIP_SAMPLE_RATE``, [time].
        """
        while len(self.pending) >= self.max_pending:
            self.pending.popleft().result()
        self.pending.append(
            self.pool.submit(
                sf.write,
                path,
                audio,
                CLIP_SAMPLE_RATE,
                format="MP3",
                subtype="MPEG_LAYER_III",
            )
        )

    def __enter__(self):
        """Enter the context; returns the writer itself."""
        return self

    def __exit__(self, *exc_info):
        """Wait for all pending encodings, then shut the threads down.

        An encoding error is re-raised here; an exception from the
        ``with`` block propagates.
        """
        try:
            # result() re-raises the first encoding error, if any.
            while self.pending:
                self.pending.popleft().result()
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)


def _write_tsv(path, header, rows):
    """Write an unquoted TSV the way Common Voice does."""
    lines = []
    for row in [header, *rows]:
        fields = [str(value) for value in row]
        for value in fields:
            # Sentences are normalised before this point, so this only
            # guards against a bug silently shifting columns.
            if "\t" in value or "\n" in value or "\r" in value:
                raise ValueError(f"Field {value!r} cannot go in a TSV")
        lines.append("\t".join(fields) + "\n")
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.writelines(lines)


def _resolve_sentences(languages, sentences):
    """Map every language to (sentence list, description of its source)."""
    sentences = dict(sentences or {})
    for language, source in sentences.items():
        if language not in languages:
            raise ValueError(
                f"Sentences were given for language {language!r} "
                f"({_describe(source)}) but it is not among the languages "
                f"to generate ({', '.join(languages)})"
            )
    resolved = {}
    for language in languages:
        source = sentences.get(language)
        if source is None:
            resolved[language] = (
                load_builtin_sentences(language),
                f"the built-in {language} sentence list",
            )
        elif isinstance(source, (str, os.PathLike)):
            resolved[language] = (
                read_sentence_file(source),
                f"sentence file {os.fspath(source)!r}",
            )
        elif isinstance(source, Sequence):
            unique = _unique(source)
            if not unique:
                raise ValueError(f"The sentence list for {language!r} is empty")
            resolved[language] = (unique, f"the {language} sentence list")
        else:
            raise TypeError(
                f"sentences[{language!r}] must be a file path or a list of "
                f"sentences, not {type(source).__name__}"
            )
    return resolved


def _describe(source):
    """Name a sentence source for an error message.

    Arguments
    ---------
    source : str or os.PathLike or list of str
        A sentence file path or a list of sentences.

    Returns
    -------
    str
        ``"file '<path>'"`` for a path, else ``"a sentence list"``.
    """
    if isinstance(source, (str, os.PathLike)):
        return f"file {os.fspath(source)!r}"
    return "a sentence list"


def _check_split(split):
    """Validate the train/dev/test fractions.

    Arguments
    ---------
    split : sequence of float
        Three fractions, one per entry of ``SPLITS``.

    Returns
    -------
    tuple of float
        The fractions as floats.

    Raises
    ------
    ValueError
        If there are not three non-negative fractions summing to 1.
    """
    split = tuple(float(value) for value in split)
    if len(split) != len(SPLITS) or any(v < 0 for v in split):
        raise ValueError(
            f"split must be three non-negative fractions for "
            f"{'/'.join(SPLITS)}, got {split}"
        )
    total = sum(split)
    if not math.isclose(total, 1.0, abs_tol=1e-6):
        raise ValueError(f"split fractions must add up to 1, got {total}")
    return split


def make_synthetic_cv(
    out_dir,
    languages,
    per_language,
    seed=0,
    sentences=None,
    split=(0.8, 0.1, 0.1),
):
    """Write a synthetic Common Voice corpus (see the module docstring).

    Files of an earlier run in ``out_dir`` are overwritten where names
    coincide; other clips are left alone (a CV release, too, has clips that
    no split lists), the TSVs describe the corpus.

    Arguments
    ---------
    out_dir : str or os.PathLike
        Root folder; ``<out_dir>/<lang>/`` is written for every language.
    languages : str or list of str
        Common Voice locales, e.g. ``["en", "fr"]`` or ``"en,fr"``.
    per_language : int
        Number of utterances (clips) per language, over all splits.
    seed : int
        Seed of every random choice (sentences, speakers, ids, noise).
    sentences : dict or str, optional
        Language -> sentence file path, or -> list of sentences, replacing
        the built-in list of that language; needed for languages without
        one (see :func:`builtin_languages`). ``"grammar"`` uses the
        compositional sentences of
        :mod:`speechbrain_sense.synthetic.phrase_grammar` for every language.
    split : tuple of float
        Fractions of train / dev / test utterances (adding up to 1).

    Returns
    -------
    dict
        ``summary[lang][split]`` = ``{"utterances": int, "sentences": int,
        "seconds": float}`` for every language and split.

    Example
    -------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     summary = make_synthetic_cv(tmp, ["en"], per_language=3)
    >>> [summary["en"][s]["utterances"] for s in ("train", "dev", "test")]
    [1, 1, 1]
    >>> summary["en"]["train"]["seconds"] > 0.5
    True
    """
    if isinstance(languages, str):
        languages = languages.split(",")
    languages = list(dict.fromkeys(lang.strip() for lang in languages))
    if not languages or not all(languages):
        raise ValueError("languages must name at least one locale")
    for language in languages:
        if not _LOCALE_PATTERN.match(language):
            raise ValueError(f"{language!r} is not a Common Voice locale")
    if int(per_language) != per_language or per_language < 1:
        raise ValueError(f"per_language must be >= 1, got {per_language}")
    per_language = int(per_language)
    fractions = _check_split(split)
    if sentences == "grammar":
        sentences = {lang: grammar_sentences(lang) for lang in languages}
    resolved = _resolve_sentences(languages, sentences)

    tts = ESpeakSynthesizer()
    voices = {}
    for language in languages:
        voices[language] = _espeak_language(tts, language)
        if voices[language] is None:
            raise ValueError(
                f"eSpeak NG has no voice for language {language!r} (used "
                f"with {resolved[language][1]}). List the available ones "
                "with ESpeakSynthesizer().available_languages() or "
                "`espeak-ng --voices`."
            )

    summary = {}
    for language in languages:
        summary[language] = _make_language(
            os.path.join(os.fspath(out_dir), language),
            language,
            voices[language],
            *resolved[language],
            per_language,
            fractions,
            seed,
            tts,
        )
        logger.info(
            "Synthetic Common Voice %s:\n%s",
            language,
            format_summary({language: summary[language]}),
        )
    return summary


def _make_language(
    lang_dir,
    locale,
    espeak_language,
    sentences,
    source,
    per_language,
    fractions,
    seed,
    tts,
):
    """Generate the clips and TSVs of one language; returns its summary."""
    # A string seed is hashed with SHA-512 by `random`, so this is stable
    # across processes (unlike hash()) and independent of the other
    # languages being generated.
    rng = random.Random(f"synthetic-cv|{seed}|{locale}")
    plan = _plan_utterances(
        len(sentences), per_language, fractions, rng, source
    )
    clip_numbers = rng.sample(range(10_000_000, 100_000_000), len(plan))
    clips_dir = os.path.join(lang_dir, "clips")
    os.makedirs(clips_dir, exist_ok=True)

    rows = {split: [] for split in SPLITS}
    durations = []
    seconds = dict.fromkeys(SPLITS, 0.0)
    with _Mp3Writer() as writer:
        for (split, sentence_index, speaker_index), number in zip(
            plan, clip_numbers
        ):
            speaker = SPEAKERS[speaker_index]
            sentence = sentences[sentence_index]
            clip_seed = rng.getrandbits(64)
            up_votes = rng.choice((2, 2, 2, 3, 3, 4))
            down_votes = rng.choice((0, 0, 0, 1))
            audio = _render_clip(
                tts, sentence, espeak_language, speaker, clip_seed
            )
            name = f"common_voice_{locale}_{number:08d}.mp3"
            writer.write(os.path.join(clips_dir, name), audio)
            duration_ms = round(len(audio) * 1000 / CLIP_SAMPLE_RATE)
            durations.append((name, duration_ms))
            seconds[split] += duration_ms / 1000
            rows[split].append(
                (
                    _client_id(seed, locale, speaker),
                    name,
                    sentence,
                    up_votes,
                    down_votes,
                    speaker.age,
                    speaker.gender,
                    "",  # accents
                    "",  # variant
                    locale,
                    "",  # segment
                )
            )

    for split in SPLITS:
        _write_tsv(
            os.path.join(lang_dir, f"{split}.tsv"), CV_COLUMNS, rows[split]
        )
    _write_tsv(
        os.path.join(lang_dir, "validated.tsv"),
        CV_COLUMNS,
        [row for split in SPLITS for row in rows[split]],
    )
    _write_tsv(
        os.path.join(lang_dir, "clip_durations.tsv"),
        DURATION_COLUMNS,
        durations,
    )
    return {
        split: {
            "utterances": len(rows[split]),
            "sentences": len({row[2] for row in rows[split]}),
            "seconds": round(seconds[split], 3),
        }
        for split in SPLITS
    }


def format_summary(summary):
    """Render a :func:`make_synthetic_cv` summary as an aligned table.

    Arguments
    ---------
    summary : dict
        As returned by :func:`make_synthetic_cv`.

    Returns
    -------
    str
        One line per language and split, plus a header.

    Example
    -------
    >>> stats = {"utterances": 2, "sentences": 2, "seconds": 4.5}
    >>> print(format_summary({"en": {"train": stats}}))
    lang  split  utterances  sentences  seconds
    en    train           2          2     4.50
    """
    lines = [
        f"{'lang':<5} {'split':<5} {'utterances':>11} {'sentences':>10} "
        f"{'seconds':>8}"
    ]
    for language, splits in summary.items():
        for split, stats in splits.items():
            lines.append(
                f"{language:<5} {split:<5} {stats['utterances']:>11} "
                f"{stats['sentences']:>10} {stats['seconds']:>8.2f}"
            )
    return "\n".join(lines)


def _parse_sentence_options(values):
    """Parse the repeated ``--sentences LANG=FILE`` command-line options.

    Arguments
    ---------
    values : list of str or None
        The option values, ``"LANG=FILE"`` each.

    Returns
    -------
    dict
        Language code -> sentence file path.
    """
    sentences = {}
    for value in values or ():
        language, sep, path = value.partition("=")
        if not sep or not language or not path:
            raise argparse.ArgumentTypeError(
                f"--sentences expects LANG=FILE, got {value!r}"
            )
        sentences[language] = path
    return sentences


def _parse_split(value):
    """Parse the ``--split`` option, e.g. ``"0.8,0.1,0.1"``.

    Arguments
    ---------
    value : str
        Three comma-separated fractions.

    Returns
    -------
    tuple of float
        The validated train/dev/test fractions.
    """
    try:
        split = tuple(float(part) for part in value.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--split expects three fractions like 0.8,0.1,0.1, got {value!r}"
        ) from None
    try:
        return _check_split(split)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def main(argv=None):
    """Command-line entry point; see ``--help``.

    Arguments
    ---------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    dict
        The summary of :func:`make_synthetic_cv`.
    """
    parser = argparse.ArgumentParser(
        prog="python -m speechbrain_sense.synthetic.common_voice",
        description=(
            "Write a synthetic Common Voice corpus (eSpeak NG speech, real "
            "CV layout). Built-in parallel sentences: "
            + ", ".join(builtin_languages())
        ),
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--languages",
        required=True,
        help="comma-separated Common Voice locales, e.g. en,fr,de,es",
    )
    parser.add_argument(
        "--per-language",
        type=int,
        required=True,
        help="number of clips per language (all splits together)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--sentences",
        nargs="+",
        action="extend",
        metavar="LANG=FILE",
        help="sentence file (one per line) replacing a built-in list",
    )
    parser.add_argument(
        "--grammar",
        action="store_true",
        help="compositional subject+action+setting sentences (en,fr,de,es)",
    )
    parser.add_argument(
        "--split",
        type=_parse_split,
        default=(0.8, 0.1, 0.1),
        help="train,dev,test fractions (default 0.8,0.1,0.1)",
    )
    args = parser.parse_args(argv)
    try:
        sentences = _parse_sentence_options(args.sentences)
        if args.grammar:
            if sentences:
                raise ValueError("--grammar and --sentences exclude each other")
            sentences = "grammar"
        summary = make_synthetic_cv(
            args.out,
            args.languages,
            args.per_language,
            seed=args.seed,
            sentences=sentences,
            split=args.split,
        )
    except (ValueError, OSError, argparse.ArgumentTypeError) as error:
        parser.exit(2, f"error: {error}\n")
    print(format_summary(summary))
    print(f"Written to {os.path.abspath(args.out)}")
    return summary


if __name__ == "__main__":
    main()
