"""Corpus BLEU and chrF against values worked out by hand."""

import math

import pytest
import sacrebleu

from speechbrain_sense.metrics.translation import (
    corpus_bleu,
    corpus_chrf,
    translation_scores,
)


def test_bleu_equals_hand_computed_precisions_and_brevity_penalty():
    # hyp: the cat sat on the mat (6 words); ref: the cat is on the mat.
    # Matched 1-grams: the, cat, on, the, mat = 5/6; 2-grams: "the cat",
    # "on the", "the mat" = 3/5; 3-grams: "on the mat" = 1/4; 4-grams 0/3,
    # which exponential smoothing turns into 1 / (2 * 3) = 1/6.
    out = corpus_bleu(["the cat sat on the mat"], ["the cat is on the mat"])
    precisions = [5 / 6, 3 / 5, 1 / 4, 1 / 6]
    expected = 100 * math.exp(sum(math.log(p) for p in precisions) / 4)
    assert out["score"] == pytest.approx(expected, abs=1e-9)
    assert out["score"] == pytest.approx(37.9918, abs=1e-4)
    assert out["precisions"] == pytest.approx([100 * p for p in precisions])
    assert out["bp"] == 1.0 and out["hyp_len"] == out["ref_len"] == 6


def test_brevity_penalty_of_a_short_hypothesis():
    # 4 of 8 reference words, all n-grams correct: BLEU = exp(1 - 8 / 4).
    out = corpus_bleu(["a b c d"], ["a b c d e f g h"])
    assert out["precisions"] == [100.0] * 4
    assert out["bp"] == pytest.approx(math.exp(1 - 8 / 4))
    assert out["score"] == pytest.approx(100 * math.exp(-1))


def test_bleu_is_corpus_level_not_a_sentence_average():
    hyps = ["a b c d e", "x y z w v"]
    refs = ["a b c d e", "p q r s t"]
    out = corpus_bleu(hyps, refs)
    # Summed statistics: 1-grams 5/10, 2-grams 4/8, 3-grams 3/6, 4-grams
    # 2/4, so BLEU = 50, whereas the sentence mean would be (100 + 0) / 2.
    assert out["score"] == pytest.approx(50.0)
    assert out["score"] == pytest.approx(
        sacrebleu.corpus_bleu(hyps, [refs]).score
    )


def test_bleu_signature_and_case():
    mixed = corpus_bleu(["The Cat sat down"], ["the cat sat down"])
    lower = corpus_bleu(
        ["The Cat sat down"], ["the cat sat down"], lowercase=True
    )
    assert lower["score"] == pytest.approx(100.0)
    assert mixed["score"] < 100.0
    assert "case:lc" in lower["signature"]
    assert "case:mixed" in mixed["signature"]
    assert f"version:{sacrebleu.__version__}" in mixed["signature"]


def test_chrf_known_value():
    # Without spaces: hyp abcdefg is a prefix of ref abcdefgh, so every
    # character n-gram precision is 1 and the n-gram recall is
    # (8 - n) / (9 - n) for n = 1..6; chrF averages them, then
    # F_beta=2 = 5 P R / (4 P + R).
    recall = sum((8 - n) / (9 - n) for n in range(1, 7)) / 6
    expected = 100 * 5 * recall / (4 + recall)
    out = corpus_chrf(["abcdefg"], ["abcdefgh"])
    assert out["score"] == pytest.approx(expected, abs=1e-9)
    assert out["score"] == pytest.approx(83.0748, abs=1e-4)
    assert out["signature"].startswith("nrefs:1|case:mixed|eff:yes|nc:6|nw:0")
    assert "nw:2" in corpus_chrf(["a b"], ["a b"], word_order=2)["signature"]


def test_empty_hypothesis_scores_zero():
    assert corpus_bleu([""], ["the cat"])["score"] == 0.0
    assert corpus_chrf([""], ["the cat"])["score"] == 0.0
    # An empty line among good ones only costs its own reference length.
    out = corpus_bleu(["a b c d", ""], ["a b c d", "e f g h"])
    assert out["hyp_len"] == 4 and out["ref_len"] == 8
    assert out["score"] == pytest.approx(100 * math.exp(1 - 8 / 4))


def test_mismatched_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        corpus_bleu(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="1 hypotheses but 2 references"):
        corpus_chrf(["a"], ["a", "b"])
    with pytest.raises(ValueError, match="no hypotheses"):
        corpus_bleu([], [])
    with pytest.raises(TypeError, match="pair 1"):
        corpus_bleu(["a", None], ["a", "b"])
    with pytest.raises(ValueError, match="2 languages"):
        translation_scores(["a"], ["a"], ["fr", "de"])


def test_per_language_and_overall_scores():
    hyps = ["a b c d e", "x y z w v", "a b c d"]
    refs = ["a b c d e", "p q r s t", "a b c d"]
    langs = ["fr", "de", "fr"]
    scores = translation_scores(hyps, refs, langs)
    assert list(scores) == ["all", "de", "fr", "signatures"]
    assert scores["fr"]["count"] == 2 and scores["de"]["count"] == 1
    assert scores["fr"]["BLEU"] == pytest.approx(100.0)
    assert scores["de"]["BLEU"] == 0.0
    assert scores["all"]["BLEU"] == pytest.approx(
        corpus_bleu(hyps, refs)["score"]
    )
    assert scores["all"]["chrF"] == pytest.approx(
        corpus_chrf(hyps, refs)["score"]
    )
    assert scores["signatures"]["BLEU"].startswith("nrefs:1")
    assert "nc:6" in scores["signatures"]["chrF"]
