"""Tests for the Backpack LM port (``speechbrain_sense.backpack.model``).

The naive reference below is written from the ``stanfordnlp/backpack-gpt2``
checkpoint layout only (raw HF key names, GPT-2 ``Conv1D`` weights as
[in, out], explicit loops), so it shares no code with the module under test.
"""

import json
import math

import pytest
import torch

from speechbrain_sense.backpack import BackpackConfig, BackpackLM
from speechbrain_sense.backpack.model import CausalSelfAttention

TINY = {
    "vocab_size": 50,
    "n_positions": 16,
    "n_embd": 16,
    "n_layer": 2,
    "n_head": 2,
    "num_senses": 4,
    "dropout": 0.0,
}


def tiny_model(seed=0, **overrides):
    torch.manual_seed(seed)
    model = BackpackLM(BackpackConfig(**{**TINY, **overrides})).eval()
    with torch.no_grad():
        # Init-scale weights make every path nearly linear; larger ones let
        # a wrong transpose or LayerNorm order show in the logits.
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    return model.double()


# ----------------------------------------------------------------------
# Independent naive implementation on raw HF-layout tensors
# ----------------------------------------------------------------------


def hf_layout_state(cfg, seed=0, with_buffers=True):
    """Random weights under the reference key names and shapes."""
    g = torch.Generator().manual_seed(seed)
    d, K, V, P = cfg.n_embd, cfg.num_senses, cfg.vocab_size, cfg.n_positions
    si = cfg.sense_intermediate_scale

    def rnd(*shape, scale=0.3):
        return torch.randn(*shape, generator=g) * scale

    def ln(prefix):
        return {
            prefix + ".weight": 1.0 + rnd(d, scale=0.1),
            prefix + ".bias": rnd(d, scale=0.1),
        }

    def conv1d(prefix, n_in, n_out):
        return {
            prefix + ".weight": rnd(n_in, n_out),  # Conv1D: [in, out]
            prefix + ".bias": rnd(n_out, scale=0.1),
        }

    gpt = "backpack.gpt2_model."
    sd = {gpt + "wte.weight": rnd(V, d), gpt + "wpe.weight": rnd(P, d)}
    for i in range(cfg.n_layer):
        h = f"{gpt}h.{i}."
        sd.update(ln(h + "ln_1"))
        sd.update(conv1d(h + "attn.c_attn", d, 3 * d))
        sd.update(conv1d(h + "attn.c_proj", d, d))
        sd.update(ln(h + "ln_2"))
        sd.update(conv1d(h + "mlp.c_fc", d, 4 * d))
        sd.update(conv1d(h + "mlp.c_proj", 4 * d, d))
        if with_buffers:
            # transformers < 4.31 saved GPT-2's causal-mask buffers.
            sd[h + "attn.bias"] = torch.ones(1, 1, P, P).tril().bool()
            sd[h + "attn.masked_bias"] = torch.tensor(-1e4)
    sd.update(ln(gpt + "ln_f"))
    sn = "backpack.sense_network."
    sd.update(ln(sn + "block.ln_1"))
    sd.update(ln(sn + "block.ln_2"))
    sd.update(conv1d(sn + "block.mlp.c_fc", d, 4 * d))
    sd.update(conv1d(sn + "block.mlp.c_proj", 4 * d, d))
    sd.update(ln(sn + "ln"))
    sd.update(conv1d(sn + "final_mlp.c_fc", d, si * d))
    sd.update(conv1d(sn + "final_mlp.c_proj", si * d, K * d))
    hs = d // K
    # nn.Linear, not Conv1D: [out, in].
    sd["backpack.sense_weight_net.c_attn.weight"] = rnd(2 * K * hs, d)
    sd["backpack.sense_weight_net.c_attn.bias"] = rnd(2 * K * hs, scale=0.1)
    # The reference's state_dict repeats tied tensors under these names.
    sd["backpack.word_embeddings.weight"] = sd[gpt + "wte.weight"]
    sd["backpack.position_embeddings.weight"] = sd[gpt + "wpe.weight"]
    sd["lm_head.weight"] = sd[gpt + "wte.weight"]
    return sd


def _gelu_new(x):
    return (
        0.5
        * x
        * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    )


def _ln(x, sd, prefix, eps=1e-5):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * sd[prefix + ".weight"] + sd[
        prefix + ".bias"
    ]


def _conv1d(x, sd, prefix):
    return x @ sd[prefix + ".weight"] + sd[prefix + ".bias"]


def _softmax(xs):
    m = max(xs)
    e = [math.exp(x - m) for x in xs]
    return [v / sum(e) for v in e]


def naive_attention(x, sd, prefix, n_head, layer_idx, inverse_layer_scale):
    """GPT-2 causal self-attention on one sequence, with loops."""
    T, d = x.shape
    hd = d // n_head
    qkv = _conv1d(x, sd, prefix + "c_attn")
    q, k, v = qkv[:, :d], qkv[:, d : 2 * d], qkv[:, 2 * d :]
    out = torch.zeros(T, d, dtype=x.dtype)
    div = math.sqrt(hd) * ((layer_idx + 1) if inverse_layer_scale else 1)
    for h in range(n_head):
        sl = slice(h * hd, (h + 1) * hd)
        for t in range(T):
            w = _softmax(
                [float(q[t, sl] @ k[s, sl]) / div for s in range(t + 1)]
            )
            out[t, sl] = sum(w[s] * v[s, sl] for s in range(t + 1))
    return _conv1d(out, sd, prefix + "c_proj")


def naive_backpack(sd, cfg, ids):
    """Reference forward for one unpadded sequence ``ids`` [T].

    Returns logits [T, V], alpha [K, T, T] and senses [K, T, d].
    """
    sd = {k: v.double() for k, v in sd.items() if v.is_floating_point()}
    T, d, K = len(ids), cfg.n_embd, cfg.num_senses
    gpt, sn = "backpack.gpt2_model.", "backpack.sense_network."
    emb = sd[gpt + "wte.weight"][ids]  # [T, d]

    # Sense network (BackpackSenseNetwork + BackpackNoMixBlock).
    residual = emb
    hidden = _ln(residual, sd, sn + "ln")
    residual = hidden + residual
    hidden = _ln(residual, sd, sn + "block.ln_1")
    mlp = _conv1d(
        _gelu_new(_conv1d(hidden, sd, sn + "block.mlp.c_fc")),
        sd,
        sn + "block.mlp.c_proj",
    )
    hidden = _ln(mlp + residual, sd, sn + "block.ln_2")
    flat = _conv1d(
        _gelu_new(_conv1d(hidden, sd, sn + "final_mlp.c_fc")),
        sd,
        sn + "final_mlp.c_proj",
    )  # [T, K*d]
    senses = torch.stack([flat[:, k * d : (k + 1) * d] for k in range(K)])

    # GPT-2 contextualisation.
    x = emb + sd[gpt + "wpe.weight"][:T]
    for i in range(cfg.n_layer):
        h = f"{gpt}h.{i}."
        x = x + naive_attention(
            _ln(x, sd, h + "ln_1"),
            sd,
            h + "attn.",
            cfg.n_head,
            i,
            cfg.scale_attn_by_inverse_layer_idx,
        )
        x = x + _conv1d(
            _gelu_new(_conv1d(_ln(x, sd, h + "ln_2"), sd, h + "mlp.c_fc")),
            sd,
            h + "mlp.c_proj",
        )
    ctx = _ln(x, sd, gpt + "ln_f")

    # Weight network (nn.Linear: x @ W^T + b); first half queries.
    w = "backpack.sense_weight_net.c_attn."
    qk = ctx @ sd[w + "weight"].T + sd[w + "bias"]
    hs = d // K
    alpha = torch.zeros(K, T, T, dtype=torch.float64)
    for k in range(K):
        q = qk[:, k * hs : (k + 1) * hs]
        key = qk[:, d + k * hs : d + (k + 1) * hs]
        for t in range(T):
            row = [float(q[t] @ key[s]) / math.sqrt(hs) for s in range(t + 1)]
            alpha[k, t, : t + 1] = torch.tensor(_softmax(row))

    out = torch.zeros(T, d, dtype=torch.float64)
    for t in range(T):
        for k in range(K):
            for s in range(t + 1):
                out[t] += alpha[k, t, s] * senses[k, s]
    logits = out @ sd[gpt + "wte.weight"].T
    return logits, alpha, senses


def write_checkpoint(tmp_path, cfg, sd, fmt="bin"):
    with open(tmp_path / "config.json", "w") as f:
        json.dump(cfg.to_hf_dict(), f)
    if fmt == "bin":
        torch.save(sd, tmp_path / "pytorch_model.bin")
    else:
        from safetensors.torch import save_file

        # safetensors refuses aliased tensors; store each once.
        save_file(
            {k: v.clone().contiguous() for k, v in sd.items()},
            tmp_path / "model.safetensors",
        )
    return tmp_path


# ----------------------------------------------------------------------
# Forward pass
# ----------------------------------------------------------------------


def test_logits_are_the_sense_mixture_through_tied_embeddings():
    model = tiny_model()
    ids = torch.randint(0, 50, (2, 6))
    out = model(ids, return_senses=True)
    B, K, T, d = out.senses.shape
    wte = model.wte.weight
    for b in range(B):
        for t in range(T):
            h = torch.zeros(d, dtype=torch.float64)
            for k in range(K):
                for s in range(T):
                    h += out.contextualization[b, k, t, s] * out.senses[b, k, s]
            torch.testing.assert_close(out.hidden[b, t], h, atol=1e-5, rtol=0)
            torch.testing.assert_close(
                out.logits[b, t], h @ wte.T, atol=1e-5, rtol=0
            )


@pytest.mark.parametrize("fmt", ["bin", "safetensors"])
def test_from_pretrained_matches_naive_reference(tmp_path, fmt):
    # sense_intermediate_scale != 4 separates the two sense-network MLPs.
    cfg = BackpackConfig(**{**TINY, "sense_intermediate_scale": 2})
    sd = hf_layout_state(cfg, with_buffers=fmt == "bin")
    model = BackpackLM.from_pretrained(write_checkpoint(tmp_path, cfg, sd, fmt))
    model = model.eval().double()
    ids = torch.tensor([3, 17, 42, 0, 9, 17, 23])
    out = model(ids[None], return_senses=True)
    logits, alpha, senses = naive_backpack(sd, cfg, ids.tolist())
    torch.testing.assert_close(out.senses[0], senses, atol=1e-5, rtol=0)
    torch.testing.assert_close(
        out.contextualization[0], alpha, atol=1e-5, rtol=0
    )
    torch.testing.assert_close(out.logits[0], logits, atol=1e-5, rtol=0)


def test_causality():
    model = tiny_model()
    ids = torch.randint(0, 50, (1, 8))
    changed = ids.clone()
    changed[0, 5] = (ids[0, 5] + 1) % 50
    a, b = model(ids), model(changed)
    torch.testing.assert_close(a.logits[:, :5], b.logits[:, :5])
    assert not torch.allclose(a.logits[:, 5:], b.logits[:, 5:])


@pytest.mark.parametrize("side", ["right", "left"])
def test_padding_invariance(side):
    model = tiny_model()
    alone = torch.randint(1, 50, (1, 5))
    other = torch.randint(1, 50, (1, 8))
    pad = torch.zeros(1, 3, dtype=torch.long)
    real = torch.ones(1, 5, dtype=torch.long)
    if side == "right":
        padded = torch.cat([alone, pad], 1)
        mask = torch.cat([real, pad], 1)
        where = slice(0, 5)
    else:
        padded = torch.cat([pad, alone], 1)
        mask = torch.cat([pad, real], 1)
        where = slice(3, 8)
    batch = torch.cat([padded, other])
    mask = torch.cat([mask, torch.ones(1, 8, dtype=torch.long)])
    out = model(batch, attention_mask=mask)
    ref = model(alone)
    torch.testing.assert_close(out.logits[0, where], ref.logits[0])
    torch.testing.assert_close(
        out.contextualization[0][:, where, where], ref.contextualization[0]
    )
    torch.testing.assert_close(out.logits[1], model(other).logits[0])
    # Padded positions are neither sources nor targets of the mixture.
    pad_pos = mask[0] == 0
    assert out.contextualization[0][:, :, pad_pos].abs().max() == 0
    assert out.hidden[0, pad_pos].abs().max() == 0


def test_alpha_rows_are_causal_distributions():
    model = tiny_model()
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    alpha = model(
        torch.randint(0, 50, (2, 6)), attention_mask=mask
    ).contextualization  # [B, K, T, S]
    T = alpha.shape[-1]
    future = torch.ones(T, T, dtype=torch.bool).triu(1)
    assert (alpha >= 0).all()
    assert alpha[..., future].abs().max() == 0
    sums = alpha.sum(-1)  # [B, K, T]
    torch.testing.assert_close(sums[0], torch.ones_like(sums[0]))
    torch.testing.assert_close(sums[1, :, :4], torch.ones_like(sums[1, :, :4]))
    assert sums[1, :, 4:].abs().max() == 0


def test_scale_attn_by_inverse_layer_idx_formula():
    cfg = BackpackConfig(**{**TINY, "scale_attn_by_inverse_layer_idx": True})
    torch.manual_seed(0)
    attn = CausalSelfAttention(cfg, layer_idx=1).eval().double()
    with torch.no_grad():
        for p in attn.parameters():
            p.normal_(0.0, 0.5)
    x = torch.randn(1, 5, 16, dtype=torch.float64)
    sd = {
        "a.c_attn.weight": attn.c_attn.weight.detach().T,
        "a.c_attn.bias": attn.c_attn.bias.detach(),
        "a.c_proj.weight": attn.c_proj.weight.detach().T,
        "a.c_proj.bias": attn.c_proj.bias.detach(),
    }
    for inverse in (True, False):
        want = naive_attention(x[0], sd, "a.", 2, 1, inverse)
        attn.scale = 1 / math.sqrt(8) / (2 if inverse else 1)
        torch.testing.assert_close(attn(x)[0], want, atol=1e-10, rtol=0)
    assert CausalSelfAttention(cfg, layer_idx=3).scale == pytest.approx(
        1 / math.sqrt(8) / 4
    )


def test_scale_attn_by_inverse_layer_idx_only_changes_deeper_layers():
    ids = torch.randint(0, 50, (1, 6))
    for n_layer, changes in ((1, False), (2, True)):
        on = tiny_model(n_layer=n_layer, scale_attn_by_inverse_layer_idx=True)
        off = tiny_model(n_layer=n_layer, scale_attn_by_inverse_layer_idx=False)
        off.load_state_dict(on.state_dict())
        same = torch.allclose(on(ids).logits, off(ids).logits)
        assert same != changes


def test_every_parameter_gets_a_gradient_in_training_mode():
    model = tiny_model(dropout=0.1).train()
    ids = torch.randint(0, 50, (2, 6))
    mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2])
    model(ids, attention_mask=mask).logits.sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
        assert torch.isfinite(p.grad).all(), name


# ----------------------------------------------------------------------
# Senses
# ----------------------------------------------------------------------


def test_sense_vectors_match_forward():
    model = tiny_model()
    ids = torch.tensor([[4, 8, 15, 16, 23, 42]])
    senses = model(ids, return_senses=True).senses[0]  # [K, T, d]
    torch.testing.assert_close(
        model.sense_vectors(ids[0]), senses.transpose(0, 1)
    )
    assert model(ids).senses is None


def test_sense_top_tokens_is_chunk_invariant_and_correct():
    model = tiny_model()
    ids = torch.tensor([1, 5, 9, 13, 2])
    scores, top = model.sense_top_tokens(ids, top_k=3, chunk_size=2)
    proj = model.sense_vectors(ids) @ model.wte.weight.T  # [N, K, V]
    want_scores, want_top = proj.topk(3, dim=-1)
    torch.testing.assert_close(scores, want_scores)
    assert torch.equal(top, want_top)
    low, _ = model.sense_top_tokens(ids, top_k=3, largest=False)
    torch.testing.assert_close(low, proj.topk(3, dim=-1, largest=False)[0])


# ----------------------------------------------------------------------
# Checkpoint layout
# ----------------------------------------------------------------------


def test_missing_key_is_named(tmp_path):
    cfg = BackpackConfig(**TINY)
    sd = hf_layout_state(cfg)
    del sd["backpack.sense_weight_net.c_attn.bias"]
    write_checkpoint(tmp_path, cfg, sd)
    with pytest.raises(ValueError, match=r"missing keys: .*sense_weight_net"):
        BackpackLM.from_pretrained(tmp_path)


def test_unexpected_and_misshaped_keys_are_named(tmp_path):
    cfg = BackpackConfig(**TINY)
    sd = hf_layout_state(cfg)
    sd["backpack.extra.weight"] = torch.zeros(3)
    # A weight in nn.Linear orientation where the reference has Conv1D.
    key = "backpack.gpt2_model.h.1.mlp.c_fc.weight"
    sd[key] = sd[key].T.contiguous()
    write_checkpoint(tmp_path, cfg, sd)
    with pytest.raises(ValueError) as err:
        BackpackLM.from_pretrained(tmp_path)
    assert "backpack.extra.weight" in str(err.value)
    assert f"{key}: expected (16, 64), got (64, 16)" in str(err.value)


def test_untied_lm_head_is_refused_when_config_ties(tmp_path):
    cfg = BackpackConfig(**TINY)
    sd = hf_layout_state(cfg)
    sd["lm_head.weight"] = sd["lm_head.weight"] + 1.0
    write_checkpoint(tmp_path, cfg, sd)
    with pytest.raises(ValueError, match="lm_head.weight"):
        BackpackLM.from_pretrained(tmp_path)


def test_canonical_keys_alone_are_enough(tmp_path):
    cfg = BackpackConfig(**TINY)
    sd = hf_layout_state(cfg, with_buffers=False)
    for alias in (
        "backpack.word_embeddings.weight",
        "backpack.position_embeddings.weight",
        "lm_head.weight",
    ):
        del sd[alias]
    model = BackpackLM.from_pretrained(write_checkpoint(tmp_path, cfg, sd))
    assert model.lm_head.weight is model.wte.weight
    assert torch.equal(model.wte.weight, sd["backpack.gpt2_model.wte.weight"])


@pytest.mark.parametrize("safe", [True, False])
@pytest.mark.parametrize("tied", [True, False])
def test_save_load_round_trip(tmp_path, safe, tied):
    model = tiny_model(tie_word_embeddings=tied, sense_intermediate_scale=3)
    model.float()
    model.save_pretrained(tmp_path, safe_serialization=safe)
    loaded = BackpackLM.from_pretrained(tmp_path).eval()
    assert loaded.config == model.config
    assert (loaded.lm_head.weight is loaded.wte.weight) == tied
    for (k, a), (_, b) in zip(
        model.state_dict().items(), loaded.state_dict().items()
    ):
        assert torch.equal(a, b), k
    ids = torch.randint(0, 50, (2, 7))
    assert torch.equal(model(ids).logits, loaded(ids).logits)


def test_saved_layout_uses_reference_names_and_conv1d_shapes(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path, safe_serialization=False)
    sd = torch.load(tmp_path / "pytorch_model.bin", weights_only=True)
    cfg = model.config
    want = hf_layout_state(cfg, with_buffers=False)
    assert set(sd) == set(want)
    for key, value in want.items():
        assert sd[key].shape == value.shape, key
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["num_senses"] == 4 and config["resid_pdrop"] == 0.0


def test_config_from_hf_dict_defaults_and_unsupported():
    cfg = BackpackConfig.from_hf_dict({"n_embd": 96, "resid_pdrop": 0.2})
    assert (cfg.vocab_size, cfg.n_positions, cfg.num_senses) == (50264, 512, 16)
    assert cfg.scale_attn_by_inverse_layer_idx and cfg.dropout == 0.2
    assert BackpackConfig.from_hf_dict({}, dropout=0.0).dropout == 0.0
    with pytest.raises(ValueError, match="n_inner"):
        BackpackConfig.from_hf_dict({"n_embd": 96, "n_inner": 100})
    with pytest.raises(ValueError, match="divisible"):
        BackpackConfig(n_embd=30, n_head=4)
    assert BackpackConfig.small() == BackpackConfig()
