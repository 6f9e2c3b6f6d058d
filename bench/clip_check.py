#!/usr/bin/env python3
"""Clip verification at preparation: what it costs, and what a rerun costs.

``prepare_common_voice`` decodes every kept clip once before training
(:mod:`speechbrain_sense.data.clip_check`), so that a corrupt clip fails the
preparation instead of a training run epochs later. This benchmark times,
on a synthetic Common Voice release (48 kHz mono MP3 from eSpeak NG, the
real layout), the check of every clip:

* ``decode`` and ``header`` modes, first run (nothing cached), with
  ``--workers`` processes;
* a rerun, answered by the verdict cache (SQLite, keyed by path, size and
  mtime).

It prints CPU milliseconds per audio-second (process wall time times
workers, an upper bound) and clips per second. Command line::

    python bench/clip_check.py --clips 400 --workers 2

The last line printed is ``decode_ms_per_audio_second: X``.

Authors
 * speechbrain-sense developers 2026
"""

import argparse
import tempfile
import time
from pathlib import Path

from measurement import cpu_model, markdown_table

from speechbrain_sense.data.clip_check import ClipVerifier
from speechbrain_sense.synthetic.common_voice import make_synthetic_cv


def clips_of(root):
    """``(key, path, listed seconds)`` of every clip of a synthetic release.

    Arguments
    ---------
    root : Path
        The release.

    Returns
    -------
    list of tuple
    """
    clips = []
    for listing in sorted(root.glob("*/clip_durations.tsv")):
        lang = listing.parent.name
        for line in listing.read_text(encoding="utf-8").splitlines()[1:]:
            name, ms = line.split("\t")
            path = listing.parent / "clips" / name
            clips.append((f"{lang}/clips/{name}", path, float(ms) / 1000))
    return clips


def timed_check(clips, cache_file, mode, workers):
    """Seconds to check ``clips``, and how many the cache answered.

    Arguments
    ---------
    clips : list of tuple
        As :func:`clips_of` gives them.
    cache_file : Path
        The verdict cache.
    mode : str
        ``"decode"`` or ``"header"``.
    workers : int
        Processes.

    Returns
    -------
    seconds : float
    opened : int
        Clips actually opened (the others came from the cache).
    """
    with ClipVerifier(cache_file, mode, workers) as verifier:
        start = time.perf_counter()
        verdicts = verifier.check(clips)
        seconds = time.perf_counter() - start
        opened = verifier.opened
    bad = [v for v in verdicts if not v.ok]
    if bad:
        raise RuntimeError(f"{len(bad)} synthetic clips failed: {bad[:2]}")
    return seconds, opened


def main(argv=None):
    """Runs the benchmark and prints its table.

    Arguments
    ---------
    argv : list of str, optional
        Command line (default: ``sys.argv``).

    Returns
    -------
    float
        CPU milliseconds per audio-second of the ``decode`` mode.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=400)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work-dir", default=None)
    args = parser.parse_args(argv)
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="clip_check_"))
    languages = ["en", "fr", "de", "es"]
    root = work / "cv"
    if not root.is_dir():
        make_synthetic_cv(
            root, languages, per_language=args.clips // len(languages)
        )
    clips = clips_of(root)
    audio_seconds = sum(listed for _, _, listed in clips)
    rows, figures = [], {}
    for mode in ("decode", "header"):
        cache = work / f"{mode}.sqlite"
        cache.unlink(missing_ok=True)
        first, opened = timed_check(clips, cache, mode, args.workers)
        rerun, reopened = timed_check(clips, cache, mode, args.workers)
        cpu_ms = 1000 * first * args.workers / audio_seconds
        figures[mode] = cpu_ms
        rows.append(
            [
                mode,
                f"{len(clips)} ({audio_seconds / 60:.1f} min)",
                f"{first:.2f} s ({opened} opened)",
                f"{len(clips) / first:.0f}",
                f"{cpu_ms:.3f}",
                f"{rerun * 1000:.1f} ms ({reopened} opened)",
            ]
        )
    print(f"CPU: {cpu_model()}; {args.workers} worker processes")
    print(
        markdown_table(
            [
                "mode",
                "clips (audio)",
                "first run",
                "clips/s",
                "CPU ms per audio-s",
                "rerun (cached)",
            ],
            rows,
        )
    )
    print(f"decode_ms_per_audio_second: {figures['decode']:.3f}")
    return figures["decode"]


if __name__ == "__main__":
    main()
