"""Tests for ``speechbrain_sense.sensia.parallel_data`` and
``speechbrain_sense.sensia.bitext_retrieval``."""

import pytest
import torch

from speechbrain_sense.sensia.bitext_retrieval import bitext_recall
from speechbrain_sense.sensia.parallel_data import (
    ParallelFormatError,
    normalize_sentence,
    read_manythings,
    read_moses,
    read_parallel,
    read_tsv_pairs,
)


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return path


def test_tsv_pairs(tmp_path):
    path = write(tmp_path / "p.tsv", "\ufeffHi.\tSalut.\n\nGo!\t Va ! \r\n")
    pairs = read_tsv_pairs(path)
    assert [(p.src, p.tgt) for p in pairs] == [
        ("Hi.", "Salut."),
        ("Go!", "Va !"),
    ]
    assert pairs[0].origin == f"{path}:1"
    assert pairs[1].origin == f"{path}:3"  # the blank line still counts


def test_tsv_wrong_field_count_names_file_and_line(tmp_path):
    path = write(tmp_path / "p.tsv", "a\tb\nc\td\te\n")
    with pytest.raises(
        ParallelFormatError, match=rf"{path}:2: expected 2 .* got 3"
    ):
        read_tsv_pairs(path)
    path = write(tmp_path / "q.tsv", "a\tb\nno tab here\n")
    with pytest.raises(ParallelFormatError, match=rf"{path}:2:"):
        read_parallel("tsv", path=path)


def test_manythings_two_or_three_columns(tmp_path):
    path = write(
        tmp_path / "fra.txt",
        "Go.\tVa !\tCC-BY 2.0 (France) Attribution: tatoeba.org #2877272\n"
        "Run!\tCours !\n",
    )
    pairs = read_manythings(path)
    assert [(p.src, p.tgt) for p in pairs] == [
        ("Go.", "Va !"),
        ("Run!", "Cours !"),
    ]
    bad = write(tmp_path / "bad.txt", "Go.\tVa !\n1\t2\t3\t4\n")
    with pytest.raises(ParallelFormatError, match=rf"{bad}:2: expected 2 or 3"):
        read_parallel("manythings", path=bad)


def test_moses(tmp_path):
    src = write(tmp_path / "c.en", "Hello.\nBye.\n")
    tgt = write(tmp_path / "c.fr", "Bonjour.\nAu revoir.\n")
    pairs = read_parallel("moses", src_path=src, tgt_path=tgt)
    assert [(p.src, p.tgt) for p in pairs] == [
        ("Hello.", "Bonjour."),
        ("Bye.", "Au revoir."),
    ]
    assert pairs[1].origin == f"{src}:2"


def test_moses_line_count_mismatch_names_file_and_line(tmp_path):
    src = write(tmp_path / "c.en", "a\nb\nc\n")
    tgt = write(tmp_path / "c.fr", "x\ny\n")
    with pytest.raises(ParallelFormatError, match=rf"^{src}:3: .*3 lines .* 2"):
        read_moses(src, tgt)
    with pytest.raises(ParallelFormatError, match=rf"^{src}:3:"):
        read_moses(tgt, src)


def test_undecodable_bytes_name_file_and_line(tmp_path):
    path = write(tmp_path / "p.tsv", b"ok\tok\ncaf\xe9\tcafe\n")
    with pytest.raises(
        ParallelFormatError, match=rf"{path}:2: not valid UTF-8"
    ):
        read_tsv_pairs(path)


def test_read_parallel_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown parallel format"):
        read_parallel("xml", path="x")
    with pytest.raises(ValueError, match="src_path and tgt_path"):
        read_parallel("moses", path="x")
    with pytest.raises(FileNotFoundError):
        read_parallel("tsv", path=tmp_path / "missing.tsv")


def test_normalize_sentence():
    assert normalize_sentence(" Cafe\u0301  au\tlait ") == "Café au lait"


def test_bitext_recall_known_answer():
    src = torch.eye(4)
    # Pairs 2 and 3 mostly swapped: each is its translation's runner-up.
    tgt = torch.eye(4)[[0, 1, 3, 2]] + 0.5 * torch.eye(4)
    out = bitext_recall(src, tgt)
    assert out["src2tgt"]["R@1"] == pytest.approx(0.5)
    assert out["tgt2src"]["R@1"] == pytest.approx(0.5)
    assert bitext_recall(src, tgt, ks=(1, 2))["mean"]["R@2"] == 1.0
    # Ties count against the query: constant embeddings never retrieve.
    constant = torch.ones(4, 3)
    assert bitext_recall(constant, constant)["mean"]["R@1"] == 0.0
    with pytest.raises(ValueError):
        bitext_recall(src, tgt[:3])
