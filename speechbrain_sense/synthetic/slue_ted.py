"""A small synthetic SLUE-TED corpus (talks + abstracts) in the real layout.

SLUE-TED (SLUE Phase-2, ``asapp/slue-phase-2`` config ``ted``) pairs TED
talks with their title and abstract, for speech summarization. Its
release is laid out as::

    slue-ted/slue-ted_fine-tune.tsv   id, transcript, speaker, split,
    slue-ted/slue-ted_dev.tsv         title, abstract (tab-separated,
    slue-ted/slue-ted_test.tsv        header row)
    slue-ted/fine-tune/<id>.flac      one 16 kHz FLAC per talk
    slue-ted/dev/<id>.flac
    slue-ted/test/<id>.flac

This module writes that layout into ``out_dir`` with eSpeak NG speech, so
that the recipe's data preparation, long-form encoding and metrics run on
a corpus made offline in seconds. A "talk" is several sentences of the
phrase grammar (:mod:`speechbrain_sense.synthetic.phrase_grammar`) about one
subject, spoken by one voice: tens of seconds, so a small encoder window
cuts it into several chunks. Title and abstract are derived from it::

    transcript: "The baker cooks dinner in the park. The baker sings a
                 song at night. The baker feeds the horses on Sunday."
    title:      "The baker"
    abstract:   "The baker cooks dinner and sings a song."

so a summary can be learned from the speech (the subject and the first two
actions). Same arguments and seed, byte-identical TSVs.

Command line::

    python -m speechbrain_sense.synthetic.slue_ted --out DIR \\
        [--talks 6,2,2] [--sentences 4,6] [--seed 0]

Authors
 * speechbrain-sense developers 2026
"""

import argparse
import csv
import os
import random

import numpy as np
import soundfile
import torch

from speechbrain_sense.audio import resample
from speechbrain_sense.synthetic.common_voice import SPEAKERS
from speechbrain_sense.synthetic.espeak import ESpeakSynthesizer
from speechbrain_sense.synthetic.phrase_grammar import (
    ACTIONS,
    SETTINGS,
    SUBJECTS,
)

SPLITS = ("fine-tune", "dev", "test")
TSV_COLUMNS = ("id", "transcript", "speaker", "split", "title", "abstract")
SAMPLE_RATE = 16000
PAUSE_S = 0.4  # silence between sentences
NOISE_STD = 3e-4  # a quiet room, not digital silence


def _capitalise(text):
    """Upper-case the first character of ``text``, leaving the rest as is.

    Unlike ``str.capitalize``, later capitals (names, acronyms) are kept.

    Arguments
    ---------
    text : str
        A sentence, possibly empty.

    Returns
    -------
    str
        ``text`` with its first character upper-cased.
    """
    return text[:1].upper() + text[1:]


def plan_talk(rng, num_sentences, language="en"):
    """Sentences, title and abstract of one synthetic talk.

    Arguments
    ---------
    rng : random.Random
        Source of the choices.
    num_sentences : int
        Sentences in the talk (at least 2).
    language : str
        Phrase-grammar language.

    Returns
    -------
    dict
        ``sentences`` (list of str), ``title`` and ``abstract``.

    Example
    -------
    >>> talk = plan_talk(random.Random(0), 3)
    >>> len(talk["sentences"]), talk["abstract"].startswith(talk["title"])
    (3, True)
    """
    if num_sentences < 2:
        raise ValueError(f"a talk needs >= 2 sentences, got {num_sentences}")
    subject = rng.choice(SUBJECTS[language])
    actions = rng.sample(ACTIONS[language], num_sentences)
    sentences = [
        f"{_capitalise(subject)} {action} {rng.choice(SETTINGS[language])}."
        for action in actions
    ]
    return {
        "sentences": sentences,
        "title": _capitalise(subject),
        "abstract": f"{_capitalise(subject)} {actions[0]} and {actions[1]}.",
    }


def _render_talk(tts, sentences, speaker, seed):
    """One voice speaks every sentence; pauses between; 16 kHz float32."""
    rng = np.random.default_rng(seed)
    pause = np.zeros(int(PAUSE_S * SAMPLE_RATE), dtype=np.float32)
    pieces = [pause]
    for i, sentence in enumerate(sentences):
        result = tts.synthesize(
            sentence,
            "en",
            voice_variant=speaker.variant,
            rate=speaker.rate,
            pitch=speaker.pitch,
            seed=(seed + i) & 0x7FFFFFFF,
        )
        with torch.no_grad():
            speech = resample(
                torch.from_numpy(result.waveform),
                result.sample_rate,
                SAMPLE_RATE,
            ).numpy()
        peak = float(np.abs(speech).max()) or 1.0
        pieces += [0.6 * speech / peak, pause]
    audio = np.concatenate(pieces).astype(np.float32)
    audio += rng.normal(0.0, NOISE_STD, len(audio)).astype(np.float32)
    return np.clip(audio, -1.0, 1.0)


def make_synthetic_slue_ted(
    out_dir, talks=(6, 2, 2), sentences_per_talk=(4, 6), seed=0
):
    """Writes a synthetic SLUE-TED release into ``out_dir``.

    Arguments
    ---------
    out_dir : str or Path
        The ``slue-ted`` folder to write (created if missing).
    talks : tuple of int
        Talks in fine-tune, dev and test.
    sentences_per_talk : tuple of int
        Inclusive range of the number of sentences of a talk (>= 2).
    seed : int
        Seed of every choice (talks, voices, noise).

    Returns
    -------
    dict
        ``{split: {"talks": int, "seconds": float}}``.

    Example
    -------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     summary = make_synthetic_slue_ted(tmp, (1, 1, 1), (2, 2))
    ...     names = sorted(os.listdir(tmp))
    >>> names
    ['dev', 'fine-tune', 'slue-ted_dev.tsv', 'slue-ted_fine-tune.tsv', 'slue-ted_test.tsv', 'test']
    >>> summary["dev"]["talks"], summary["dev"]["seconds"] > 2
    (1, True)
    """
    if len(talks) != len(SPLITS) or min(talks) < 0:
        raise ValueError(
            f"talks must be 3 counts (fine-tune, dev, test): {talks}"
        )
    low, high = sentences_per_talk
    if not 2 <= low <= high:
        raise ValueError(
            f"sentences_per_talk must be (low, high) with 2 <= low <= high: "
            f"{sentences_per_talk}"
        )
    rng = random.Random(f"synthetic-slue-ted|{seed}")
    tts = ESpeakSynthesizer()
    numbers = rng.sample(range(10000, 100000), sum(talks))
    summary = {}
    for split, count in zip(SPLITS, talks):
        os.makedirs(os.path.join(out_dir, split), exist_ok=True)
        rows = []
        seconds = 0.0
        for _ in range(count):
            talk_id = f"ted_{numbers.pop():05d}"
            talk = plan_talk(rng, rng.randint(low, high))
            speaker = SPEAKERS[rng.randrange(len(SPEAKERS))]
            audio = _render_talk(
                tts, talk["sentences"], speaker, rng.getrandbits(31)
            )
            soundfile.write(
                os.path.join(out_dir, split, f"{talk_id}.flac"),
                audio,
                SAMPLE_RATE,
                format="FLAC",
                subtype="PCM_16",
            )
            seconds += len(audio) / SAMPLE_RATE
            rows.append(
                {
                    "id": talk_id,
                    "transcript": " ".join(talk["sentences"]),
                    "speaker": f"Speaker {_capitalise(speaker.variant)}",
                    "split": split,
                    "title": talk["title"],
                    "abstract": talk["abstract"],
                }
            )
        tsv = os.path.join(out_dir, f"slue-ted_{split}.tsv")
        with open(tsv, "w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(
                f, fieldnames=TSV_COLUMNS, delimiter="\t", lineterminator="\n"
            )
            writer.writeheader()
            writer.writerows(rows)
        summary[split] = {"talks": count, "seconds": round(seconds, 3)}
    return summary


def main(argv=None):
    """Command-line entry point; see ``--help``.

    Arguments
    ---------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    dict
        The summary of :func:`make_synthetic_slue_ted`.
    """
    parser = argparse.ArgumentParser(
        prog="python -m speechbrain_sense.synthetic.slue_ted",
        description="Write a synthetic SLUE-TED corpus (eSpeak NG talks).",
    )
    parser.add_argument("--out", required=True, help="the slue-ted folder")
    parser.add_argument("--talks", default="6,2,2", help="fine-tune,dev,test")
    parser.add_argument("--sentences", default="4,6", help="min,max per talk")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    summary = make_synthetic_slue_ted(
        args.out,
        tuple(int(x) for x in args.talks.split(",")),
        tuple(int(x) for x in args.sentences.split(",")),
        args.seed,
    )
    for split, stats in summary.items():
        print(f"{split:9s} {stats['talks']:4d} talks {stats['seconds']:8.1f} s")
    return summary


if __name__ == "__main__":
    main()
