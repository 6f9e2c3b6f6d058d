"""ROUGE and BERTScore for the summarization recipe."""

import pytest

from speechbrain_sense.metrics.summarization import (
    BERTScore,
    rouge_description,
    rouge_scores,
)
from speechbrain_sense.testing.tiny_text_models import save_tiny_bert


@pytest.fixture(scope="module")
def tiny_bert_dir(tmp_path_factory):
    return save_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


def f1(precision, recall):
    return 2 * precision * recall / (precision + recall)


def test_rouge_l_against_a_hand_computed_lcs():
    reference = "the cat was found under the bed"
    hypothesis = "the cat was under a bed today"
    # reference: the cat was found under the bed       (7 tokens)
    # hypothesis: the cat was under a bed today        (7 tokens)
    # LCS: "the cat was under bed" -> 5 tokens
    # (the, cat, was, under in order; then "bed": ref pos 7, hyp pos 6)
    lcs = 5
    expected = f1(lcs / 7, lcs / 7)  # P = R = 5/7 -> F = 5/7
    scores = rouge_scores([hypothesis], [reference])
    assert scores["rougeL"] == pytest.approx(100 * expected)
    assert scores["rougeL"] == pytest.approx(100 * 5 / 7)


def test_rouge_1_and_2_known_counts():
    reference = "police killed the gunman"
    hypothesis = "the gunman police killed"
    # unigrams: all 4 shared -> P = R = 4/4
    # bigrams ref: police killed, killed the, the gunman  (3)
    # bigrams hyp: the gunman, gunman police, police killed  (3)
    # shared: "police killed", "the gunman" -> P = R = 2/3
    # LCS: "police killed" or "the gunman" -> 2 -> P = R = 2/4
    scores = rouge_scores([hypothesis], [reference], return_per_summary=True)
    assert scores["rouge1"] == pytest.approx(100.0)
    assert scores["rouge2"] == pytest.approx(100 * 2 / 3)
    assert scores["rougeL"] == pytest.approx(50.0)
    # precision vs recall with unequal lengths: hyp 2 tokens, ref 4
    precision = rouge_scores(
        ["police killed"], [reference], measure="precision"
    )
    recall = rouge_scores(["police killed"], [reference], measure="recall")
    assert precision["rouge1"] == pytest.approx(100.0)
    assert recall["rouge1"] == pytest.approx(50.0)
    # corpus score = mean of the per-summary scores
    both = rouge_scores([hypothesis, "nothing shared"], [reference] * 2)
    assert both["rouge1"] == pytest.approx(50.0)


def test_rouge_stemming_option():
    reference = "the dogs were running"
    hypothesis = "the dog was run"
    plain = rouge_scores([hypothesis], [reference])
    stemmed = rouge_scores([hypothesis], [reference], use_stemmer=True)
    assert plain["rouge1"] == pytest.approx(25.0)  # "the" only
    # Porter: dogs -> dog, running -> run; "were" / "was" stay different
    assert stemmed["rouge1"] == pytest.approx(75.0)
    assert "Porter stemming" in rouge_description(use_stemmer=True)
    assert "no stemming" in rouge_description()


def test_length_mismatch_and_bad_input_are_errors(tiny_bert_dir):
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        rouge_scores(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="no summary"):
        rouge_scores([], [])
    with pytest.raises(ValueError, match="measure"):
        rouge_scores(["a"], ["a"], measure="f1")
    with pytest.raises(TypeError, match="hypothesis 0"):
        rouge_scores([None], ["a"])
    scorer = BERTScore(tiny_bert_dir, num_layers=2, device="cpu")
    with pytest.raises(ValueError, match="1 hypotheses but 2 references"):
        scorer(["a"], ["a", "b"])


def test_bertscore_identical_is_one_and_different_is_lower(tiny_bert_dir):
    scorer = BERTScore(tiny_bert_dir, num_layers=1, device="cpu")
    same = "my grandmother grows tomatoes in her small garden"
    scores = scorer([same, same], [same, same], return_per_summary=True)
    assert scores["bertscore_f1"] == pytest.approx(100.0, abs=1e-3)
    assert scores["per_summary_f1"] == pytest.approx([1.0, 1.0], abs=1e-5)
    different = scorer(
        [same, "the library opens at nine"],
        [same, "we are going to the beach"],
        return_per_summary=True,
    )
    assert different["per_summary_f1"][0] == pytest.approx(1.0, abs=1e-5)
    assert different["per_summary_f1"][1] < 0.99
    assert different["bertscore_f1"] < 100.0
    # An empty hypothesis (a decoder that stops at once) scores, low.
    empty = scorer([""], [same], return_per_summary=True)
    assert 0 <= empty["per_summary_f1"][0] < 0.99
    assert scorer.description == (
        f"BERTScore F1 ({tiny_bert_dir}, layer 1, not rescaled)"
    )


def test_bertscore_rescaling_with_a_baseline_file(tiny_bert_dir, tmp_path):
    # bert-score's baseline format: one row per layer, columns P, R, F.
    baseline = tmp_path / "baseline.tsv"
    baseline.write_text(
        "LAYER,P,R,F\n0,0.5,0.5,0.5\n1,0.5,0.5,0.5\n2,0.5,0.5,0.5\n"
    )
    plain = BERTScore(tiny_bert_dir, num_layers=2, device="cpu")
    rescaled = BERTScore(
        tiny_bert_dir,
        num_layers=2,
        rescale_with_baseline=True,
        baseline_path=baseline,
        device="cpu",
    )
    hyps, refs = ["the library opens at nine"], ["the beach is warm"]
    raw = plain(hyps, refs)["bertscore_f1"] / 100
    # (s - b) / (1 - b) with b = 0.5
    assert rescaled(hyps, refs)["bertscore_f1"] / 100 == pytest.approx(
        (raw - 0.5) / 0.5, abs=1e-5
    )
    assert f"rescaled with baseline {baseline}" in rescaled.description


def test_bertscore_configuration_errors(tiny_bert_dir, tmp_path):
    with pytest.raises(ValueError, match="give num_layers"):
        BERTScore(tiny_bert_dir, device="cpu")
    with pytest.raises(FileNotFoundError, match="give baseline_path"):
        BERTScore(
            tiny_bert_dir,
            num_layers=1,
            rescale_with_baseline=True,
            device="cpu",
        )
    with pytest.raises(FileNotFoundError, match="not found"):
        BERTScore(
            tiny_bert_dir,
            num_layers=1,
            rescale_with_baseline=True,
            baseline_path=tmp_path / "missing.tsv",
            device="cpu",
        )
