"""The authors' global probes: anchors, Procrustes, mutual information."""

import json
import math
from types import SimpleNamespace

import pytest
import torch

from speechbrain_sense.sensia.analysis import analyze, anchor_sentences, main
from speechbrain_sense.sensia.anchor_probes import (
    AnchorSentence,
    collect_anchors,
    jsd_mutual_information_gap,
    procrustes_fit,
)

# The words of conftest.py's tokenizer and bitext.
EN = "the a cat dog house tree sees takes big small".split()
FR = "le un chat chien maison arbre voit prend grand petit".split()
LEXICON = list(zip(EN, FR))


# ----------------------------------------------------------------------
# Aligned occurrences
# ----------------------------------------------------------------------


def test_alignment_is_one_to_one_and_ignores_case_and_punctuation(tokenizer):
    pairs = [("The cat sees the cat.", "Le chat voit le chat.")]
    ((src, tgt, links),) = anchor_sentences(pairs, LEXICON, tokenizer)
    assert links == [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4)]
    # Each word's span holds exactly its own tokens, in sentence order.
    assert src.ids[0] == tokenizer.bos_id and src.ids[-1] == tokenizer.eos_id
    assert [src.ids[p] for p in src.spans[4]] == tokenizer.encode_word("cat.")
    flat = [p for span in tgt.spans for p in span]
    assert flat == list(range(1, len(tgt.ids) - 1))


def test_alignment_takes_each_target_word_once(tokenizer):
    pairs = [("cat cat cat", "chat maison chat"), ("big tree", "rien")]
    aligned = anchor_sentences(pairs, LEXICON, tokenizer)
    assert len(aligned) == 1  # the pair without a lexicon word is left out
    assert aligned[0][2] == [(0, 0), (1, 2)]


def test_alignment_stops_at_max_length(tokenizer):
    pairs = [("the cat sees the dog", "le chat voit le chien")]
    ((src, tgt, links),) = anchor_sentences(pairs, LEXICON, tokenizer, 5)
    assert len(src.ids) <= 5 and len(tgt.ids) <= 5
    assert all(i < len(src.spans) and j < len(tgt.spans) for i, j in links)
    assert (4, 4) not in links


# ----------------------------------------------------------------------
# Anchors
# ----------------------------------------------------------------------


class TableModel(torch.nn.Module):
    """Senses and context states read from per-token tables."""

    def __init__(self, senses, context):
        super().__init__()
        self.senses, self.context = senses, context  # [V, K, d], [V, d]

    def forward(self, ids, attention_mask=None, return_senses=False):
        return SimpleNamespace(
            senses=self.senses[ids].permute(0, 2, 1, 3),  # [B, K, T, d]
            context_hidden=self.context[ids],  # [B, T, d]
        )


def _one_word(ids):
    side = AnchorSentence([0, *ids, 0], [list(range(1, len(ids) + 1))])
    return [(side, side, [(0, 0)])]


def test_anchor_is_the_context_weighted_sense_mixture():
    # Token 1: senses (1, 0) and (0, 1); context (ln 3, 0): scores
    # (ln 3, 0) -> weights (3/4, 1/4) -> vector (3/4, 1/4).
    senses = torch.zeros(3, 2, 2)
    senses[1] = torch.eye(2)
    context = torch.zeros(3, 2)
    context[1] = torch.tensor([math.log(3.0), 0.0])
    model = TableModel(senses, context)
    english, target = collect_anchors(model, _one_word([1]))
    torch.testing.assert_close(english, torch.tensor([[0.75, 0.25]]))
    torch.testing.assert_close(target, english)
    # Temperature 2 halves the scores: weights (sqrt 3, 1) / (sqrt 3 + 1).
    warm, _ = collect_anchors(model, _one_word([1]), temperature=2.0)
    r = math.sqrt(3.0)
    torch.testing.assert_close(warm, torch.tensor([[r, 1.0]]) / (r + 1))
    uniform, _ = collect_anchors(model, _one_word([1]), weighting="uniform")
    torch.testing.assert_close(uniform, torch.tensor([[0.5, 0.5]]))


def test_anchor_scores_sum_over_the_word_positions():
    # Tokens 1 and 2 make one word. Scores: sense 0 gets 2 + 0, sense 1
    # gets 0 + 0 -> weights softmax(2, 0); the vector mixes the senses'
    # means over the two positions, (1, 0) and (0, 1).
    senses = torch.zeros(3, 2, 2)
    senses[1] = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    senses[2] = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    context = torch.zeros(3, 2)
    context[1] = torch.tensor([1.0, 0.0])
    context[2] = torch.tensor([5.0, 5.0])  # meets zero senses: adds nothing
    english, _ = collect_anchors(TableModel(senses, context), _one_word([1, 2]))
    w0 = math.exp(2.0) / (math.exp(2.0) + 1.0)
    torch.testing.assert_close(english, torch.tensor([[w0, 1.0 - w0]]))


def test_anchors_do_not_change_when_padded_in_a_batch(tiny_backpack, tokenizer):
    model = tiny_backpack()
    short = ("the cat", "le chat")
    long = (
        "the big dog sees the small tree",
        "le grand chien voit le petit arbre",
    )
    alone = anchor_sentences([short], LEXICON, tokenizer)
    batched = anchor_sentences([short, long], LEXICON, tokenizer)
    e1, t1 = collect_anchors(model, alone)
    e2, t2 = collect_anchors(model, batched, batch_size=2)
    torch.testing.assert_close(e2[: len(e1)], e1, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(t2[: len(t1)], t1, atol=1e-5, rtol=1e-5)
    assert len(e2) == 2 + 7


def test_anchors_cap_and_bad_settings(tiny_backpack, tokenizer):
    model = tiny_backpack()
    aligned = anchor_sentences(
        [("the cat sees", "le chat voit")] * 4, LEXICON, tokenizer
    )
    english, target = collect_anchors(
        model, aligned, batch_size=1, max_anchors=5
    )
    assert english.shape == target.shape == (5, 16)
    with pytest.raises(ValueError, match="weighting"):
        collect_anchors(model, aligned, weighting="max")
    with pytest.raises(ValueError, match="temperature"):
        collect_anchors(model, aligned, temperature=0.0)
    with pytest.raises(ValueError, match="no aligned"):
        collect_anchors(model, [])


# ----------------------------------------------------------------------
# Procrustes
# ----------------------------------------------------------------------


def test_procrustes_recovers_a_planted_rotation_after_centring():
    torch.manual_seed(0)
    english = torch.randn(40, 5, dtype=torch.float64)
    q = torch.linalg.qr(torch.randn(5, 5, dtype=torch.float64))[0]
    target = 3.0 + english @ q.T  # shifted: only centring undoes it
    fit = procrustes_fit(english, target)
    torch.testing.assert_close(fit["rotation"], q)
    assert fit["procrustes_cos"] == pytest.approx(1.0)
    assert fit["procrustes_mse"] == pytest.approx(0.0, abs=1e-20)
    assert fit["anchors"] == 40


def test_procrustes_error_of_a_scaled_copy():
    # T = 2 E: Q = I, the mapped rows are 2 E0, the error is mean(E0^2) and
    # the cosine is still 1 (a rotation cannot undo a scale).
    english = torch.tensor([[1.0, 2.0], [-1.0, 0.0], [0.0, -2.0]])
    fit = procrustes_fit(english, 2 * english)
    centred = english - english.mean(dim=0)
    assert fit["procrustes_mse"] == pytest.approx(float((centred**2).mean()))
    assert fit["procrustes_cos"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same"):
        procrustes_fit(english, english[:, :1])
    with pytest.raises(ValueError, match="too few"):
        procrustes_fit(english[:1], english[:1])


# ----------------------------------------------------------------------
# Mutual information
# ----------------------------------------------------------------------

FAST = {"steps": 300, "batch_size": 256, "lr": 1e-3, "hidden": 32}


def test_critic_separates_dependent_from_independent_pairs():
    torch.manual_seed(0)
    x = torch.randn(512, 4)
    q = torch.linalg.qr(torch.randn(4, 4))[0]
    dependent = jsd_mutual_information_gap(
        x, x @ q + 0.1 * torch.randn(512, 4), **FAST
    )
    independent = jsd_mutual_information_gap(x, torch.randn(512, 4), **FAST)
    assert dependent["delta_mi"] > 3.0
    assert abs(independent["delta_mi"]) < 0.5
    # 2 ln 2 is the loss of a critic that cannot tell the pairs apart.
    assert independent["final_loss"] > 1.2 > 0.5 > dependent["final_loss"]
    assert dependent["anchors"] == 512 and dependent["steps"] == 300


def test_critic_is_seeded_and_leaves_the_global_rng_alone():
    x, y = torch.randn(64, 3), torch.randn(64, 3)
    state = torch.get_rng_state()
    first = jsd_mutual_information_gap(x, y, steps=20, seed=3)
    assert torch.equal(state, torch.get_rng_state())
    assert jsd_mutual_information_gap(x, y, steps=20, seed=3) == first
    assert jsd_mutual_information_gap(x, y, steps=20, seed=4) != first


def test_critic_needs_four_anchors():
    out = jsd_mutual_information_gap(torch.ones(3, 2), torch.ones(3, 2))
    assert math.isnan(out["delta_mi"]) and out["anchors"] == 3
    with pytest.raises(ValueError, match="same"):
        jsd_mutual_information_gap(torch.ones(5, 2), torch.ones(4, 2))


# ----------------------------------------------------------------------
# In the analysis and its CLI
# ----------------------------------------------------------------------


def test_analyze_reports_the_authors_probes(tiny_backpack, tokenizer):
    model = tiny_backpack()
    identical = [(" ".join(EN[i : i + 3]),) * 2 for i in range(8)]
    lexicon = [(w, w) for w in EN]
    out = analyze(
        model,
        model,
        tokenizer,
        lexicon,
        ["le chat"],
        anchor_pairs=identical,
        mi_steps=50,
    )
    assert out["procrustes"]["anchors"] == 24
    assert out["procrustes"]["anchor_sentence_pairs"] == 8
    assert out["procrustes"]["procrustes_cos"] == pytest.approx(1.0)
    assert out["procrustes"]["procrustes_mse"] == pytest.approx(0, abs=1e-12)
    assert out["mutual_information"]["steps"] == 50
    assert "procrustes" not in analyze(
        model, model, tokenizer, lexicon, ["le chat"]
    )
    with pytest.raises(ValueError, match="none of the 1 anchor"):
        analyze(
            model,
            model,
            tokenizer,
            lexicon,
            ["le chat"],
            anchor_pairs=[("rien", "rien")],
        )


def test_cli_anchor_files(tiny_backpack, tmp_path, tokenizer, bitext_file):
    model = tiny_backpack()
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    (tmp_path / "dev.en").write_text("the cat sees the dog\nbig tree\n")
    (tmp_path / "dev.fr").write_text("le chat voit le chien\ngrand arbre\n")
    common = [
        "--model",
        str(tmp_path / "model"),
        "--english_model",
        str(tmp_path / "model"),
        "--bitext",
        str(bitext_file),
        "--eval_sentences",
        "5",
        "--mi_steps",
        "10",
    ]
    result = main(
        common
        + [
            "--anchor_src",
            str(tmp_path / "dev.en"),
            "--anchor_tgt",
            str(tmp_path / "dev.fr"),
            "--output",
            str(tmp_path / "out.json"),
        ]
    )
    saved = json.loads((tmp_path / "out.json").read_text())
    assert saved["procrustes"]["anchor_sentence_pairs"] == 2
    assert saved["procrustes"] == result["procrustes"]
    assert (
        saved["mutual_information"]["anchors"]
        == result["procrustes"]["anchors"]
    )
    default = main(common)  # anchors from the bitext's held-out pairs
    assert default["procrustes"]["anchor_sentence_pairs"] == 5
    assert "procrustes" not in main(common + ["--skip_anchor_probes"])
    with pytest.raises(SystemExit):
        main(common + ["--anchor_src", str(tmp_path / "dev.en")])
    # Anchor files that are not line-aligned: the error names the line.
    (tmp_path / "short.fr").write_text("le chat voit le chien\n")
    with pytest.raises(ValueError, match=r"dev\.en:2: line has no counterpart"):
        main(
            common
            + ["--anchor_src", str(tmp_path / "dev.en")]
            + ["--anchor_tgt", str(tmp_path / "short.fr")]
        )
