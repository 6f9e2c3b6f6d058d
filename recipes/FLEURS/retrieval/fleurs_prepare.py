"""Manifests for multilingual retrieval evaluation (FLEURS and friends).

Writes ``<save_folder>/<split>.csv`` with the columns ``ID, wav, text,
lang, pair_id, duration`` (``wav`` relative to ``$data_root``), from one
of three layouts of ``data_folder``, detected automatically:

* **FLEURS** (``google/fleurs``): ``<lang>/<split>.tsv`` (no header; the
  columns are ``id, file_name, raw_transcription, transcription,
  phonemes, num_samples, gender``) and the audio in
  ``<lang>/audio/<split>/<file_name>`` (the extracted ``<split>.tar.gz``;
  ``<lang>/<split>/`` and ``<lang>/audio/`` are searched too). ``pair_id``
  is FLEURS' ``id``: the same sentence in every language (and for every
  speaker who read it).
* **Common Voice**, as written by
  ``speechbrain_sense.synthetic.common_voice`` (``<lang>/<split>.tsv`` with
  ``path`` and ``sentence`` columns, clips in ``<lang>/clips/``). Its
  sentence lists are parallel (sentence *i* of every language means the
  same), so ``pair_id`` is the index of the transcript in
  :func:`load_builtin_sentences` (``b<i>``) or in the phrase grammar's
  :func:`grammar_sentences` (``g<i>``), empty for other sentences.
* **A flat folder** of ``<name>.<ogg|wav|flac|mp3>`` + ``<name>.txt``
  (transcript) with names ``<anything>-<lang>-<number>`` (e.g.
  ``fleurs-de-003.ogg``). Nothing says which clips are translations of
  each other, so ``pair_id`` is empty and speech-to-speech retrieval is
  skipped.

Any CSV with the columns ``wav, text, lang, pair_id`` can be given to the
recipe directly instead (``csv_file``); relative ``wav`` paths are relative
to the CSV's folder.

Authors
 * speechbrain-sense developers 2026
"""

import csv
import json
import re
from collections import Counter
from pathlib import Path

from speechbrain.utils.logger import get_logger

from speechbrain_sense.audio import audio_duration
from speechbrain_sense.synthetic.common_voice import (
    builtin_languages,
    load_builtin_sentences,
    normalize_sentence,
)
from speechbrain_sense.synthetic.phrase_grammar import (
    grammar_languages,
    grammar_sentences,
)

logger = get_logger(__name__)

CSV_COLUMNS = ("ID", "wav", "text", "lang", "pair_id", "duration")
FLEURS_COLUMNS = (
    "id",
    "file_name",
    "raw_transcription",
    "transcription",
    "phonemes",
    "num_samples",
    "gender",
)
AUDIO_SUFFIXES = (".wav", ".ogg", ".flac", ".mp3", ".opus")
# <anything>-<lang>-<number>, lang like "de" or "en_us"
FLAT_NAME = re.compile(
    r"^(?P<stem>.*?)[-_]"
    r"(?P<lang>[a-z]{2,3}(?:[-_][A-Za-z]{2,4})?)"
    r"[-_](?P<num>\d+)$"
)


def detect_layout(data_folder, split):
    """``"fleurs"``, ``"common_voice"`` or ``"flat"`` (see the module doc).

    Arguments
    ---------
    data_folder : str or Path
        The data root.
    split : str
        Split name (``train``, ``dev``, ``test``).

    Returns
    -------
    str
    """
    root = Path(data_folder)
    if not root.is_dir():
        raise FileNotFoundError(f"data_folder {root} does not exist")
    tsvs = sorted(root.glob(f"*/{split}.tsv"))
    if tsvs:
        if any((tsv.parent / "clips").is_dir() for tsv in tsvs):
            return "common_voice"
        return "fleurs"
    if any(root.glob("*.txt")):
        return "flat"
    raise FileNotFoundError(
        f"{root} has neither <lang>/{split}.tsv files (FLEURS or Common "
        "Voice layout) nor <name>.txt transcripts beside audio files"
    )


def prepare_retrieval_manifest(
    data_folder,
    save_folder,
    split="test",
    languages=None,
    text_column="raw_transcription",
    max_per_language=None,
):
    """Writes ``<save_folder>/<split>.csv`` (idempotent).

    Arguments
    ---------
    data_folder : str or Path
        FLEURS, Common Voice or flat-folder root.
    save_folder : str or Path
        Where the manifest goes.
    split : str
        Split to read (ignored for a flat folder).
    languages : list of str, optional
        Keep only these languages (folder names / name codes).
    text_column : str
        FLEURS transcript column: ``raw_transcription`` (cased, punctuated)
        or ``transcription`` (normalised).
    max_per_language : int, optional
        Keep at most this many utterances per language (the first ones).

    Returns
    -------
    Path
        The manifest.
    """
    save_folder = Path(save_folder)
    save_folder.mkdir(parents=True, exist_ok=True)
    manifest = save_folder / f"{split}.csv"
    options = {
        "data_folder": str(Path(data_folder).resolve()),
        "split": split,
        "languages": list(languages) if languages else None,
        "text_column": text_column,
        "max_per_language": max_per_language,
    }
    options_file = save_folder / f"{split}_options.json"
    if manifest.is_file() and options_file.is_file():
        if json.loads(options_file.read_text()) == options:
            logger.info(f"{manifest} is up to date")
            return manifest
    layout = detect_layout(data_folder, split)
    readers = {
        "fleurs": _fleurs_rows,
        "common_voice": _common_voice_rows,
        "flat": _flat_rows,
    }
    rows = readers[layout](Path(data_folder), split, text_column)
    if languages:
        wanted = set(languages)
        rows = [row for row in rows if row["lang"] in wanted]
        missing = wanted - {row["lang"] for row in rows}
        if missing:
            raise ValueError(
                f"{data_folder} has no {split} data for {sorted(missing)}"
            )
    if max_per_language:
        kept = Counter()
        limited = []
        for row in rows:
            if kept[row["lang"]] < max_per_language:
                kept[row["lang"]] += 1
                limited.append(row)
        rows = limited
    if not rows:
        raise ValueError(f"no {split} utterance found in {data_folder}")
    root = Path(data_folder)
    for row in rows:
        row["duration"] = f"{audio_duration(root / row['wav']):.3f}"
        row["wav"] = f"$data_root/{row['wav']}"
    with open(manifest, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    options_file.write_text(json.dumps(options))
    counts = Counter(row["lang"] for row in rows)
    paired = sum(1 for row in rows if row["pair_id"])
    logger.info(
        f"{layout} layout, {split}: "
        + ", ".join(f"{lang} {n}" for lang, n in sorted(counts.items()))
        + f" utterances ({paired} with a pair_id) -> {manifest}"
    )
    return manifest


def _find_fleurs_audio(lang_dir, split, file_name):
    """The clip under the layouts FLEURS is shipped in, or None."""
    for candidate in (
        lang_dir / "audio" / split / file_name,
        lang_dir / split / file_name,
        lang_dir / "audio" / file_name,
    ):
        if candidate.is_file():
            return candidate
    return None


def _fleurs_rows(root, split, text_column):
    """Manifest rows of a FLEURS tree (``<lang>/<split>.tsv``)."""
    if text_column not in ("raw_transcription", "transcription"):
        raise ValueError(
            f"text_column must be raw_transcription or transcription, not "
            f"{text_column!r}"
        )
    rows = []
    for tsv in sorted(root.glob(f"*/{split}.tsv")):
        lang = tsv.parent.name
        missing = 0
        with open(tsv, encoding="utf-8", newline="") as f:
            reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            for line, fields in enumerate(reader, start=1):
                if len(fields) < 4:
                    raise ValueError(
                        f"{tsv}:{line}: expected the FLEURS columns "
                        f"{', '.join(FLEURS_COLUMNS)}; got {len(fields)} "
                        "field(s)"
                    )
                record = dict(zip(FLEURS_COLUMNS, fields))
                audio = _find_fleurs_audio(
                    tsv.parent, split, record["file_name"]
                )
                if audio is None:
                    missing += 1
                    continue
                rows.append(
                    {
                        "ID": f"{lang}_{Path(record['file_name']).stem}",
                        "wav": audio.relative_to(root).as_posix(),
                        "text": record[text_column],
                        "lang": lang,
                        "pair_id": record["id"],
                    }
                )
        if missing:
            logger.warning(f"{tsv}: {missing} audio file(s) not found, skipped")
    return rows


def _parallel_ids(lang):
    """Sentence -> id shared by its translations, for both parallel lists."""
    ids = {}
    if lang in grammar_languages():
        for i, sentence in enumerate(grammar_sentences(lang)):
            ids[normalize_sentence(sentence)] = f"g{i}"
    if lang in builtin_languages():
        for i, sentence in enumerate(load_builtin_sentences(lang)):
            ids[sentence] = f"b{i}"
    return ids


def _common_voice_rows(root, split, text_column):
    """Manifest rows of a CV-layout tree with parallel sentence ids."""
    rows = []
    for tsv in sorted(root.glob(f"*/{split}.tsv")):
        lang = tsv.parent.name
        index = _parallel_ids(lang)
        with open(tsv, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            if not {"path", "sentence"} <= set(reader.fieldnames or ()):
                raise ValueError(
                    f"{tsv}:1: a Common Voice TSV needs the columns path and "
                    f"sentence, got {reader.fieldnames}"
                )
            for row in reader:
                text = normalize_sentence(row["sentence"])
                rows.append(
                    {
                        "ID": f"{lang}_{Path(row['path']).stem}",
                        "wav": f"{lang}/clips/{row['path']}",
                        "text": text,
                        "lang": lang,
                        "pair_id": index.get(text, ""),
                    }
                )
    return rows


def _flat_rows(root, split, text_column):
    """Manifest rows of a flat folder of ``<id>.txt`` + audio pairs."""
    rows = []
    for txt in sorted(root.glob("*.txt")):
        audio = next(
            (
                txt.with_suffix(suffix)
                for suffix in AUDIO_SUFFIXES
                if txt.with_suffix(suffix).is_file()
            ),
            None,
        )
        if audio is None:
            continue  # e.g. a README
        match = FLAT_NAME.match(txt.stem)
        if match is None:
            raise ValueError(
                f"{audio}: name does not follow <anything>-<lang>-<number>, "
                "so its language is unknown; write a CSV with the columns "
                "wav, text, lang, pair_id instead"
            )
        text = " ".join(txt.read_text(encoding="utf-8").split())
        if not text:
            raise ValueError(f"{txt} is empty")
        rows.append(
            {
                "ID": txt.stem,
                "wav": audio.name,
                "text": text,
                "lang": match.group("lang"),
                "pair_id": "",
            }
        )
    return rows


def read_manifest(csv_path, data_root=None):
    """Rows of a retrieval manifest, with absolute audio paths.

    Arguments
    ---------
    csv_path : str or Path
        CSV with at least ``wav, text, lang, pair_id``; ``ID`` and
        ``duration`` are optional.
    data_root : str or Path, optional
        Replaces ``$data_root`` in ``wav``; relative paths are relative to
        the CSV's folder.

    Returns
    -------
    list of dict
        ``ID, wav, text, lang, pair_id`` and ``duration`` (float or
        ``None``) per utterance.
    """
    csv_path = Path(csv_path)
    rows = []
    with open(csv_path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        needed = {"wav", "text", "lang", "pair_id"}
        if not needed <= set(reader.fieldnames or ()):
            raise ValueError(
                f"{csv_path}:1: the header must include "
                f"{', '.join(sorted(needed))}; got {reader.fieldnames}"
            )
        for line, row in enumerate(reader, start=2):
            wav = row["wav"]
            if "$data_root" in wav:
                if data_root is None:
                    raise ValueError(
                        f"{csv_path}:{line}: $data_root in wav but no "
                        "data_folder given"
                    )
                wav = wav.replace("$data_root", str(data_root))
            path = Path(wav)
            if not path.is_absolute():
                path = csv_path.parent / path
            if not row["text"].strip() or not row["lang"].strip():
                raise ValueError(f"{csv_path}:{line}: empty text or lang")
            if not path.is_file():
                raise FileNotFoundError(
                    f"{csv_path}:{line}: audio file {path} not found"
                )
            duration = row.get("duration") or None
            rows.append(
                {
                    "ID": row.get("ID") or f"utt{line - 1}",
                    "wav": str(path),
                    "text": row["text"],
                    "lang": row["lang"].strip(),
                    "pair_id": row["pair_id"].strip(),
                    "duration": float(duration) if duration else None,
                }
            )
    if not rows:
        raise ValueError(f"{csv_path} lists no utterance")
    return rows
