"""ROUGE and BERTScore for the summarization recipe."""

import pytest

from speechbrain_sense.metrics.summarization import (
    BERTScore,
    baseline_rescaled,
    read_bertscore_baseline,
    rouge_description,
    rouge_scores,
    shipped_bertscore_baseline,
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
        f"BERTScore F1 ({tiny_bert_dir}, layer 1, raw: not rescaled)"
    )


# bert-score's baseline format (a CSV named .tsv): one row per layer
# (0: embeddings), columns P, R, F; different values on every row, so a
# scorer reading the wrong layer's row gives other numbers.
TINY_BASELINE = """LAYER,P,R,F
0,0.10,0.20,0.30
1,0.40,0.45,0.50
2,0.62,0.55,0.58
"""


@pytest.fixture()
def tiny_baseline(tmp_path):
    path = tmp_path / "tiny_bert.tsv"
    path.write_text(TINY_BASELINE)
    return path


HYPS = ["the library opens at nine", "my grandmother grows tomatoes"]
REFS = ["the beach is warm today", "my grandmother grows small tomatoes"]


def test_rescaled_equals_bert_score_own_rescaling(tiny_bert_dir, tiny_baseline):
    """Raw once, rescaled derived: equal to bert-score rescaling itself."""
    from bert_score import BERTScorer

    scorer = BERTScore(
        tiny_bert_dir,
        num_layers=2,
        rescale_with_baseline=True,
        baseline_path=tiny_baseline,
        device="cpu",
    )
    scores = scorer(HYPS, REFS, return_per_summary=True)
    reference = {
        rescale: BERTScorer(
            model_type=str(tiny_bert_dir),
            num_layers=2,
            lang="en",
            rescale_with_baseline=rescale,
            baseline_path=str(tiny_baseline),
            device="cpu",
        ).score(HYPS, REFS)
        for rescale in (False, True)
    }
    for i, name in enumerate(("precision", "recall", "f1")):
        raw, rescaled = reference[False][i], reference[True][i]
        assert scores[f"bertscore_{name}"] == pytest.approx(
            100 * raw.mean().item(), abs=1e-4
        )
        assert scores[f"bertscore_{name}_rescaled"] == pytest.approx(
            100 * rescaled.mean().item(), abs=1e-4
        )
    assert scores["per_summary_f1"] == pytest.approx(
        reference[False][2].tolist(), abs=1e-6
    )
    assert scores["per_summary_f1_rescaled"] == pytest.approx(
        reference[True][2].tolist(), abs=1e-6
    )
    # The known answer: (s - b) / (1 - b) with layer 2's F baseline, 0.58.
    raw_f1 = scores["bertscore_f1"] / 100
    assert scores["bertscore_f1_rescaled"] / 100 == pytest.approx(
        (raw_f1 - 0.58) / 0.42, abs=1e-6
    )
    assert scores["bertscore_f1_rescaled"] < scores["bertscore_f1"]
    # The model ran once: rescaling is bert-score's scorer left raw.
    assert scorer.scorer.rescale_with_baseline is False
    assert scorer.descriptions == {
        "bertscore_f1": (
            f"BERTScore F1 ({tiny_bert_dir}, layer 2, raw: not rescaled)"
        ),
        "bertscore_f1_rescaled": (
            f"BERTScore F1 ({tiny_bert_dir}, layer 2, rescaled with "
            f"baseline {tiny_baseline})"
        ),
    }


def test_baseline_row_is_the_scored_layer(tiny_baseline):
    assert read_bertscore_baseline(tiny_baseline, 1) == {
        "precision": 0.40,
        "recall": 0.45,
        "f1": 0.50,
    }
    with pytest.raises(ValueError, match="no baseline row for layer 5"):
        read_bertscore_baseline(tiny_baseline, 5)
    bad = tiny_baseline.parent / "bad.tsv"
    bad.write_text("layer\tP\tR\tF\n0\t0.1\t0.2\t0.3\n")
    with pytest.raises(ValueError, match="not a bert-score baseline"):
        read_bertscore_baseline(bad, 0)
    assert baseline_rescaled(0.79, 0.58) == pytest.approx(0.5)
    assert baseline_rescaled(0.58, 0.58) == 0.0
    assert baseline_rescaled(0.37, 0.58) == pytest.approx(-0.5)


def test_raw_only_without_rescaling(tiny_bert_dir):
    scorer = BERTScore(tiny_bert_dir, num_layers=2, device="cpu")
    scores = scorer(HYPS, REFS, return_per_summary=True)
    assert not [key for key in scores if "rescaled" in key]
    assert scorer.rescaled_description is None
    assert list(scorer.descriptions) == ["bertscore_f1"]


def test_shipped_baseline_lookup(tmp_path):
    # bert-score ships roberta-large's English baseline; a local directory
    # named like the hub model finds it too.
    local = tmp_path / "roberta-large"
    local.mkdir()
    assert shipped_bertscore_baseline(local) == shipped_bertscore_baseline(
        "roberta-large"
    )
    assert shipped_bertscore_baseline("roberta-large").is_file()
    assert not shipped_bertscore_baseline("roberta-large", "sw").is_file()


def test_bertscore_configuration_errors(tiny_bert_dir, tiny_baseline, tmp_path):
    with pytest.raises(ValueError, match="give num_layers"):
        BERTScore(tiny_bert_dir, device="cpu")
    # No shipped baseline for the tiny model: the error names the file.
    shipped = shipped_bertscore_baseline(tiny_bert_dir)
    with pytest.raises(FileNotFoundError, match="give baseline_path") as error:
        BERTScore(
            tiny_bert_dir,
            num_layers=1,
            rescale_with_baseline=True,
            device="cpu",
        )
    assert str(shipped) in str(error.value)
    missing = tmp_path / "missing.tsv"
    with pytest.raises(FileNotFoundError, match=f"{missing} not found"):
        BERTScore(
            tiny_bert_dir,
            num_layers=1,
            rescale_with_baseline=True,
            baseline_path=missing,
            device="cpu",
        )
    # A baseline without rescaling is a contradiction, not ignored.
    with pytest.raises(ValueError, match="rescale_with_baseline is False"):
        BERTScore(tiny_bert_dir, num_layers=1, baseline_path=tiny_baseline)
