"""Tests for ``speechbrain_sense.sensia.analysis`` with known answers."""

import json
import math

import pytest
import torch

from speechbrain_sense.sensia.analysis import (
    ABLATIONS,
    analyze,
    corpus_sense_entropy,
    dice_lexicon,
    global_structure,
    local_topology,
    main,
    mix_senses,
    orthogonal_procrustes,
    procrustes_cosine,
    sense_mixture_ablation,
    sense_similarity,
    sense_similarity_correlation,
    sentence_batches,
    spearman_rho,
    word_senses,
)

# The words of conftest.py's tokenizer and bitext.
EN = "the a cat dog house tree sees takes big small".split()
FR = "le un chat chien maison arbre voit prend grand petit".split()

# ----------------------------------------------------------------------
# Spearman rho and local topology
# ----------------------------------------------------------------------


def test_spearman_textbook_value():
    # No ties: rho = 1 - 6 sum d^2 / (n (n^2 - 1)) = 1 - 6 * 4 / 120.
    x = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    y = torch.tensor([2.0, 1.0, 4.0, 3.0, 5.0])
    assert spearman_rho(x, y) == pytest.approx(0.8)
    assert spearman_rho(x, x.exp()) == pytest.approx(1.0)
    assert spearman_rho(x, -x) == pytest.approx(-1.0)


def test_spearman_ties_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    x = torch.tensor([1.0, 2.0, 2.0, 3.0, 5.0, 5.0, 5.0, 0.0])
    y = torch.tensor([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0])
    want = stats.spearmanr(x.numpy(), y.numpy()).statistic
    assert spearman_rho(x, y) == pytest.approx(want, abs=1e-12)
    assert math.isnan(spearman_rho(x, torch.ones(8)))
    with pytest.raises(ValueError):
        spearman_rho(x, y[:3])


def _unit(degrees):
    rad = torch.tensor(degrees, dtype=torch.float64) * math.pi / 180
    return torch.stack([rad.cos(), rad.sin()], dim=-1)


def test_sense_similarity_correlation_constructed_value():
    # Ours (uncentred). Senses at 0, 30, 90 degrees: pair similarities (01,
    # 02, 12) are (.87, 0, .5) -> ranks (3, 1, 2). At 0, 80, 90 degrees:
    # (.17, 0, .98) -> ranks (2, 1, 3). d = (1, 0, -1): rho = 1 - 6 * 2 / 24.
    src = _unit([0.0, 30.0, 90.0])[None]  # [1, K=3, d=2]
    tgt = _unit([0.0, 80.0, 90.0])[None]
    out = sense_similarity_correlation(src, tgt)
    assert out["rho"] == pytest.approx(0.5)
    assert out["pairs"] == 1


def test_local_topology_constructed_value():
    # Centred senses v = (2, 0), (0, 1), (-2, -1): cosines (01, 02, 12) are
    # (0, -2/sqrt5, -1/sqrt5) -> ranks (3, 1, 2); w = (1, 0), (0, 2),
    # (-1, -2): (0, -1/sqrt5, -2/sqrt5) -> ranks (3, 2, 1). d = (0, -1, 1):
    # rho = 1 - 6 * 2 / 24 = 0.5. Each word's senses are then shifted by a
    # vector of its own, which centring removes.
    v = torch.tensor(
        [[2.0, 0.0], [0.0, 1.0], [-2.0, -1.0]], dtype=torch.float64
    )
    w = torch.tensor(
        [[1.0, 0.0], [0.0, 2.0], [-1.0, -2.0]], dtype=torch.float64
    )
    src = (v + torch.tensor([5.0, -3.0], dtype=torch.float64))[None]
    tgt = (w + torch.tensor([-7.0, 4.0], dtype=torch.float64))[None]
    torch.testing.assert_close(
        sense_similarity(src, centre=True)[0, 0],
        torch.tensor([1.0, 0.0, -2 / math.sqrt(5)]),
    )
    out = local_topology(src, tgt)
    assert out["rho"] == pytest.approx(0.5)
    assert out["rho_median"] == out["rho_min"] == out["rho_max"] == out["rho"]
    assert out["pairs"] == 1 and math.isnan(out["rho_std"])
    # Uncentred, the shifts dominate: both orders become (3, 2, 1), rho 1.
    assert sense_similarity_correlation(src, tgt)["rho"] == pytest.approx(1.0)


def test_local_topology_summary_and_undefined_pairs():
    torch.manual_seed(0)
    a = torch.randn(3, 4, 6, dtype=torch.float64)
    b = torch.randn(3, 4, 6, dtype=torch.float64)
    per_word = [
        local_topology(a[i : i + 1], b[i : i + 1])["rho"] for i in range(3)
    ]
    out = local_topology(a, b)
    assert out["per_pair"] == pytest.approx(per_word)
    assert out["rho"] == pytest.approx(sum(per_word) / 3)
    assert out["rho_median"] == pytest.approx(sorted(per_word)[1])
    assert out["rho_std"] == pytest.approx(torch.tensor(per_word).std().item())
    assert (out["rho_min"], out["rho_max"]) == (min(per_word), max(per_word))
    # A word whose senses all coincide has no centred structure: its rho is
    # undefined and counts as 0, as in the authors' code.
    collapsed = torch.ones(1, 4, 6, dtype=torch.float64)
    out = local_topology(collapsed, a[:1])
    assert out["per_pair"] == [0.0] and out["pairs"] == 1
    with pytest.raises(ValueError):
        local_topology(a, b[:, :3])
    with pytest.raises(ValueError):
        local_topology(a[:, :2], b[:, :2])


@pytest.mark.parametrize(
    "measure", [local_topology, sense_similarity_correlation]
)
def test_topology_invariances(measure):
    torch.manual_seed(0)
    senses = torch.randn(6, 5, 8, dtype=torch.float64)
    rotation = torch.linalg.qr(torch.randn(8, 8, dtype=torch.float64))[0]
    # Rotating or rescaling a word's senses keeps its sense topology...
    same = measure(senses, 3.0 * senses @ rotation)
    assert same["rho"] == pytest.approx(1.0)
    # ... and the target space may have another width.
    wide = torch.cat([senses, torch.zeros(6, 5, 4, dtype=torch.float64)], -1)
    assert measure(senses, wide)["rho"] == pytest.approx(1.0)
    # Unrelated senses: rho near 0 on average.
    other = torch.randn(200, 5, 8, dtype=torch.float64)
    rand = measure(torch.randn(200, 5, 8, dtype=torch.float64), other)
    assert abs(rand["rho"]) < 0.1
    with pytest.raises(ValueError):
        measure(senses, senses[:, :3])


def test_only_local_topology_ignores_a_shift_of_the_senses():
    torch.manual_seed(0)
    senses = torch.randn(20, 6, 8, dtype=torch.float64)
    shifted = senses + 2.0 * torch.randn(20, 1, 8, dtype=torch.float64)
    assert local_topology(senses, shifted)["rho"] == pytest.approx(1.0)
    assert sense_similarity_correlation(senses, shifted)["rho"] < 0.9


def test_shared_component_inflates_only_the_uncentred_measure():
    # Senses of unrelated words: a component shared by a word's K senses
    # plus random directions whose size depends on the sense index only
    # (the same profile for every word). Uncentred cosines then order the
    # sense pairs by that profile, the same way for any two words; centred
    # cosines keep only a weak trace of it.
    g = torch.Generator().manual_seed(0)
    profile = torch.linspace(0.5, 2.0, 16, dtype=torch.float64)[:, None]

    def unrelated_words(n=100, d=64):
        shared = torch.randn(n, 1, d, generator=g, dtype=torch.float64)
        own = torch.randn(n, 16, d, generator=g, dtype=torch.float64)
        return shared + profile * torch.nn.functional.normalize(own, dim=-1)

    src, tgt = unrelated_words(), unrelated_words()
    assert sense_similarity_correlation(src, tgt)["rho"] > 0.85
    assert local_topology(src, tgt)["rho"] < 0.3


# ----------------------------------------------------------------------
# Procrustes
# ----------------------------------------------------------------------


def test_procrustes_recovers_planted_rotation():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 16, generator=g, dtype=torch.float64)
    q = torch.linalg.qr(torch.randn(16, 16, generator=g, dtype=torch.float64))[
        0
    ]
    y = x @ q + 0.01 * torch.randn(300, 16, generator=g, dtype=torch.float64)
    rotation = orthogonal_procrustes(x, y)
    torch.testing.assert_close(rotation, q, atol=5e-3, rtol=0)
    eye = torch.eye(16, dtype=torch.float64)
    torch.testing.assert_close(rotation.T @ rotation, eye)
    assert procrustes_cosine(x, y, rotation) > 0.999
    assert procrustes_cosine(x, y, eye) < 0.5


def test_global_structure_heldout():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(100, 8, generator=g, dtype=torch.float64) + 2.0
    q = torch.linalg.qr(torch.randn(8, 8, generator=g, dtype=torch.float64))[0]
    out = global_structure(x, x @ q, heldout_fraction=0.2, seed=0)
    assert out["train_pairs"] == 80 and out["heldout_pairs"] == 20
    assert out["train_cosine"] == pytest.approx(1.0)
    assert out["heldout_cosine"] == pytest.approx(1.0)
    # Unrelated spaces: the fit overfits the anchors, held out stays ~0.
    y = torch.randn(100, 8, generator=g, dtype=torch.float64)
    out = global_structure(x, y, heldout_fraction=0.3, seed=0)
    assert out["train_cosine"] > out["heldout_cosine"] + 0.1
    assert abs(out["heldout_cosine"]) < 0.3
    with pytest.raises(ValueError):
        global_structure(x[:2], y[:2], heldout_fraction=0.5)


# ----------------------------------------------------------------------
# Sense-mixture ablation
# ----------------------------------------------------------------------


def test_mix_senses_constructed_case():
    # One target, two sources, K = 2. Source 0 gets alpha (0.3, 0.1), source
    # 1 gets (0.2, 0.4): masses 0.4 and 0.6.
    senses = torch.tensor(
        [[[[1.0, 0.0], [0.0, 1.0]], [[2.0, 0.0], [0.0, 3.0]]]]
    )  # [B=1, K=2, S=2, d=2]
    alpha = torch.tensor([[[[0.3, 0.2]], [[0.1, 0.4]]]])  # [1, K, T=1, S]
    full = 0.3 * senses[0, 0, 0] + 0.2 * senses[0, 0, 1]
    full = full + 0.1 * senses[0, 1, 0] + 0.4 * senses[0, 1, 1]
    top1 = 0.4 * senses[0, 0, 0] + 0.6 * senses[0, 1, 1]
    uniform = 0.2 * (senses[0, 0, 0] + senses[0, 1, 0])
    uniform = uniform + 0.3 * (senses[0, 0, 1] + senses[0, 1, 1])
    for mode, want in zip(ABLATIONS, (full, top1, uniform)):
        torch.testing.assert_close(mix_senses(senses, alpha, mode)[0, 0], want)
    with pytest.raises(ValueError):
        mix_senses(senses, alpha, "median")


def test_full_mix_reproduces_the_model(tiny_backpack):
    model = tiny_backpack()
    ids = torch.randint(0, 60, (2, 6))
    mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2])
    out = model(ids, attention_mask=mask, return_senses=True)
    hidden = mix_senses(out.senses, out.contextualization, "full")
    torch.testing.assert_close(model.lm_head(hidden), out.logits)


def test_ablation_is_a_no_op_with_one_sense(tiny_backpack):
    model = tiny_backpack(num_senses=1)
    batches = [
        (torch.randint(0, 60, (3, 7)), torch.ones(3, 7, dtype=torch.long))
    ]
    out = sense_mixture_ablation(model, batches)
    assert out["tokens"] == 18
    assert out["delta_top1"] == pytest.approx(0.0, abs=1e-6)
    assert out["delta_uniform"] == pytest.approx(0.0, abs=1e-6)
    assert corpus_sense_entropy(model, batches) == pytest.approx(0.0, abs=1e-6)


def test_ablation_changes_cross_entropy(tiny_backpack):
    model = tiny_backpack()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.5)
    batches = [
        (torch.randint(0, 60, (4, 8)), torch.ones(4, 8, dtype=torch.long))
    ]
    out = sense_mixture_ablation(model, batches)
    assert out["ce_full"] > 0
    assert abs(out["delta_top1"]) > 1e-4 and abs(out["delta_uniform"]) > 1e-4
    entropy = corpus_sense_entropy(model, batches, temperature=0.7)
    assert 0 < entropy < math.log(4)


# ----------------------------------------------------------------------
# Words, lexicon, analyze and the CLI
# ----------------------------------------------------------------------


def test_dice_lexicon_recovers_translations():
    import random

    rng = random.Random(0)
    bitext = []
    for _ in range(300):
        idx = rng.sample(range(2, 10), 3)
        det = rng.randrange(2)
        bitext.append(
            (
                " ".join([EN[det]] + [EN[i] for i in idx]),
                " ".join([FR[det]] + [FR[i] for i in idx]) + " Tom",
            )
        )
    bitext = [(e + " Tom", f) for e, f in bitext]
    lexicon = dice_lexicon(bitext, min_count=5)
    assert {(e, f) for e, f, _ in lexicon} == set(zip(EN, FR)) - {("a", "un")}
    # "a" is shorter than min_length=2; "tom" is spelt the same on both sides.
    with_names = dice_lexicon(bitext, exclude_identical=False, min_length=1)
    assert ("tom", "tom") in {(e, f) for e, f, _ in with_names}
    assert ("a", "un") in {(e, f) for e, f, _ in with_names}
    assert len(dice_lexicon(bitext, max_pairs=3)) == 3
    assert all(d == 1.0 for _, _, d in lexicon)


def test_word_senses_average_subword_tokens(tiny_backpack, tokenizer):
    model = tiny_backpack()
    words = ["cat", "maison", "catmaison"]
    senses = word_senses(model, tokenizer, words)
    assert senses.shape == (3, 4, 16)
    ids = tokenizer.encode_word("catmaison")
    want = model.sense_vectors(torch.tensor(ids)).mean(dim=0)
    torch.testing.assert_close(senses[2], want)


def test_sentence_batches(tokenizer):
    batches = sentence_batches(tokenizer, ["the cat", "le chien voit"], 1)
    assert len(batches) == 2
    ids, mask = batches[1]
    assert ids[0, 0] == tokenizer.bos_id and ids[0, -1] == tokenizer.eos_id
    assert mask.sum() == ids.shape[1]


def test_analyze_model_against_itself(tiny_backpack, tokenizer):
    # d = 8 < 16 anchor pairs: the rotation is determined (identity).
    model = tiny_backpack(n_embd=8)
    lexicon = [(w, w) for w in EN + FR]
    out = analyze(
        model, model, tokenizer, lexicon, ["le chat voit le chien"] * 3
    )
    assert out["local_topology"]["rho"] == pytest.approx(1.0)
    assert out["local_topology"]["pairs"] == len(lexicon)
    assert out["sense_similarity_correlation"]["rho"] == pytest.approx(1.0)
    assert out["global_structure"]["heldout_cosine"] == pytest.approx(1.0)
    assert out["global_structure"]["identity_heldout_cosine"] == pytest.approx(
        1.0
    )
    assert 0 < out["sense_entropy"] <= out["max_entropy"] == math.log(4)
    assert set(out["ablation"]) >= {"ce_full", "delta_top1", "delta_uniform"}


def test_cli(tiny_backpack, tmp_path, tokenizer, bitext_file):
    english, adapted = tiny_backpack(0), tiny_backpack(1)
    english.save_pretrained(tmp_path / "en")
    adapted.save_pretrained(tmp_path / "fr")
    tokenizer.save_pretrained(tmp_path / "fr")
    result = main(
        [
            "--model",
            str(tmp_path / "fr"),
            "--english_model",
            str(tmp_path / "en"),
            "--bitext",
            str(bitext_file),
            "--eval_sentences",
            "5",
            "--output",
            str(tmp_path / "analysis.json"),
        ]
    )
    saved = json.loads((tmp_path / "analysis.json").read_text())
    assert saved["lexicon_pairs"] == result["lexicon_pairs"] > 3
    assert saved["sentences"] == 5
    assert -1 <= saved["local_topology"]["rho"] <= 1
    assert -1 <= saved["sense_similarity_correlation"]["rho"] <= 1
