"""Readers for parallel sentences in the three usual distribution formats.

* ``tsv``: one pair per line, ``source<TAB>target`` (exactly two fields).
* ``moses``: two line-aligned plain-text files, ``corpus.en`` /
  ``corpus.fr`` (also the LASER Tatoeba test sets).
* ``manythings``: the ManyThings.org Tatoeba exports (``fra.txt``),
  ``English<TAB>Other[<TAB>attribution]``; the attribution column is
  optional because older exports do not have it.

Every reader returns :class:`ParallelPair` records that remember where they
came from (``file:line``), and raises :class:`ParallelFormatError` naming
the file and the line for malformed input: a wrong number of fields, bytes
that are not UTF-8, or Moses files whose line counts differ. Empty sides are
not errors (real corpora have them); filtering is the caller's choice.

Authors
 * speechbrain-sense developers 2026
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "FORMATS",
    "ParallelFormatError",
    "ParallelPair",
    "normalize_sentence",
    "read_manythings",
    "read_moses",
    "read_parallel",
    "read_tsv_pairs",
    "utf8_lines",
]

FORMATS = ("tsv", "moses", "manythings")


class ParallelFormatError(ValueError):
    """Malformed parallel data; the message starts with ``file:line``."""


@dataclass(frozen=True)
class ParallelPair:
    """A source sentence, its translation, and where they were read.

    Arguments
    ---------
    src : str
        Source-language sentence (English in SENSIA).
    tgt : str
        Target-language sentence.
    origin : str
        ``file:line`` (Moses: the source file's).
    """

    src: str
    tgt: str
    origin: str


def normalize_sentence(text):
    """NFC, whitespace collapsed and stripped: the form used for matching.

    Arguments
    ---------
    text : str
        A sentence.

    Returns
    -------
    str
        ``text`` in Unicode NFC, runs of whitespace made one space, and
        leading/trailing whitespace removed.

    Example
    -------
    >>> normalize_sentence("  Je  suis\\tla. ")
    'Je suis la.'
    """
    return re.sub(r"\s+", " ", unicodedata.normalize("NFC", text)).strip()


def utf8_lines(path, error_class=None):
    """Yields ``(line_number, text)`` of a UTF-8 text file.

    A byte order mark before the first line is dropped, and so are line
    ends.

    Arguments
    ---------
    path : str or Path
        The file.
    error_class : type, optional
        The ``ValueError`` subclass raised for bytes that are not UTF-8
        (default :class:`ParallelFormatError`); its message starts with
        ``file:line``.

    Yields
    ------
    (int, str)
        The line number (from 1) and the line.
    """
    error_class = error_class or ParallelFormatError
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise error_class(
                    f"{path}:{number}: not valid UTF-8 ({error.reason} at "
                    f"byte {error.start})"
                ) from None
            if number == 1:
                text = text.removeprefix("\ufeff")
            yield number, text.rstrip("\r\n")


def read_tsv_pairs(path, src_field=0, tgt_field=1, num_fields=2):
    """Pairs from a tab-separated file with exactly ``num_fields`` fields.

    Blank lines are skipped. No quoting: a tab always separates fields.

    Arguments
    ---------
    path : str or Path
        The file.
    src_field, tgt_field : int
        Columns of the source and target sentences.
    num_fields : int or tuple of int
        Accepted field counts; anything else is an error.

    Returns
    -------
    list of ParallelPair

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "pairs.tsv")
    >>> _ = open(path, "w").write("Hello.\\tBonjour.\\n")
    >>> read_tsv_pairs(path)[0].tgt
    'Bonjour.'
    """
    accepted = (num_fields,) if isinstance(num_fields, int) else num_fields
    pairs = []
    for number, line in utf8_lines(path):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) not in accepted:
            want = " or ".join(str(n) for n in accepted)
            raise ParallelFormatError(
                f"{path}:{number}: expected {want} tab-separated fields, got "
                f"{len(fields)}: {line[:80]!r}"
            )
        pairs.append(
            ParallelPair(
                fields[src_field].strip(),
                fields[tgt_field].strip(),
                f"{path}:{number}",
            )
        )
    return pairs


def read_manythings(path):
    """Pairs from a ManyThings.org Tatoeba export (``fra.txt`` & co).

    Columns: English, the other language, and (newer exports) an
    attribution, which is dropped.

    Arguments
    ---------
    path : str or Path
        The ``<lang>.txt`` file.

    Returns
    -------
    list of ParallelPair
        English as ``src``.
    """
    return read_tsv_pairs(path, num_fields=(2, 3))


def read_moses(src_path, tgt_path):
    """Pairs from two line-aligned files (Moses / LASER Tatoeba layout).

    Arguments
    ---------
    src_path, tgt_path : str or Path
        Source- and target-language files, one sentence per line.

    Returns
    -------
    list of ParallelPair
        ``origin`` is the source file's ``file:line``.

    Raises
    ------
    ParallelFormatError
        When the files have different numbers of lines; the message names
        the first line that has no counterpart.
    """
    src = list(utf8_lines(src_path))
    tgt = list(utf8_lines(tgt_path))
    if len(src) != len(tgt):
        longer, n = (
            (src_path, len(tgt))
            if len(src) > len(tgt)
            else (
                tgt_path,
                len(src),
            )
        )
        raise ParallelFormatError(
            f"{longer}:{n + 1}: line has no counterpart; {src_path} has "
            f"{len(src)} lines but {tgt_path} has {len(tgt)} (Moses files "
            "must be line-aligned)"
        )
    return [
        ParallelPair(s.strip(), t.strip(), f"{src_path}:{number}")
        for (number, s), (_, t) in zip(src, tgt)
    ]


def read_parallel(fmt, path=None, src_path=None, tgt_path=None):
    """Dispatch on ``fmt`` ("tsv", "moses" or "manythings").

    Arguments
    ---------
    fmt : str
        One of :data:`FORMATS`.
    path : str or Path, optional
        The file, for "tsv" and "manythings".
    src_path, tgt_path : str or Path, optional
        The two files, for "moses".

    Returns
    -------
    list of ParallelPair
    """
    if fmt not in FORMATS:
        raise ValueError(
            f"unknown parallel format {fmt!r}; use one of {FORMATS}"
        )
    if fmt == "moses":
        if src_path is None or tgt_path is None:
            raise ValueError("the moses format needs src_path and tgt_path")
        for p in (src_path, tgt_path):
            if not Path(p).is_file():
                raise FileNotFoundError(f"parallel file {p} not found")
        return read_moses(src_path, tgt_path)
    if path is None:
        raise ValueError(f"the {fmt} format needs path")
    if not Path(path).is_file():
        raise FileNotFoundError(f"parallel file {path} not found")
    if fmt == "tsv":
        return read_tsv_pairs(path)
    return read_manythings(path)
