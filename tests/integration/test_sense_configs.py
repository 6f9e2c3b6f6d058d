"""Each SENSE config builds with tiny models, trains two steps, and holds
the settings that define it (``sense_cv.yaml``: ours; ``sense_cv_authors
.yaml``: the authors' recipe at speechbrain/speechbrain@aca5e41)."""

import sys
from pathlib import Path

import pytest
import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.core import Stage

from speechbrain_sense.testing.tiny_models import save_tiny_xlm_roberta

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sense_ddp_step import RECIPE, random_batch  # noqa: E402

pytestmark = pytest.mark.integration

# languages of upstream recipes/CommonVoice/SENSE/hparams/train_sense.yaml
# at aca5e41a34b3bcbe532640f2d3d0f6de3fd50ebe, in its order.
AUTHORS_LOCALES = (
    "af am ar as ast az ba be bg bn br ca ckb cs cv cy da de dv el en eo es "
    "et fa fi fr fy-NL ga-IE gl gn he hi hsb ht hu ia id is it ja ka kab kk "
    "ko ky lt lo lv ml mn mhr mk mr mt ne-NP nl nn-NO oc or os pa-IN pl ps "
    "pt ro ru sah sc sk sl sr sv-SE sw ta te th ti tk tr tt ug uk ur uz vi "  # codespell:ignore te
    "yi yo zh-HK zu"
).split()


@pytest.fixture(scope="module")
def tiny_teacher_dir(tmp_path_factory):
    return save_tiny_xlm_roberta(tmp_path_factory.mktemp("xlmr"))


def build(config, tmp_path, encoder, teacher):
    """The config's SENSEBrain on a tiny encoder and teacher (32-d)."""
    sys.path.insert(0, str(RECIPE))
    import train

    overrides = {
        "output_folder": str(tmp_path / "out"),
        "data_folder": str(tmp_path),
        "encoder_source": str(encoder),
        "encoder_dim": 32,
        "teacher_source": str(teacher),
        "teacher_dim": 32,
    }
    with open(RECIPE / "hparams" / config, encoding="utf-8") as f:
        hparams = load_hyperpyyaml(f, overrides)
    brain = train.SENSEBrain(
        modules=hparams["modules"],
        hparams=hparams,
        run_opts={"device": "cpu"},
        checkpointer=hparams["checkpointer"],
    )
    return brain, hparams


@pytest.mark.parametrize(
    ("config", "scale", "reduction", "annealed_on"),
    [
        ("sense_cv.yaml", 1.0, "mean", "retrieval"),
        ("sense_cv_authors.yaml", 50.0, "sum", "loss"),
    ],
)
def test_config_trains_two_steps_with_its_defining_settings(
    config,
    scale,
    reduction,
    annealed_on,
    tmp_path,
    tiny_w2v_bert_dir,
    tiny_teacher_dir,
):
    brain, hparams = build(
        config, tmp_path, tiny_w2v_bert_dir, tiny_teacher_dir
    )
    assert list(hparams["languages"]) == AUTHORS_LOCALES
    assert hparams["language_filter"] is None
    # Both load the authors' checkpoint layout: pooling, no projection.
    head = brain.modules.student.head
    assert head.projection_type == "none" and head.projection is None

    brain.on_fit_start()
    brain.modules.train()
    student = brain.modules.student
    before = [p.detach().clone() for p in student.parameters()]
    batch = random_batch(3, hparams["teacher_dim"], seed=0)
    with torch.no_grad():
        predictions = brain.compute_forward(batch, Stage.TRAIN)
        loss = brain.compute_objectives(predictions, batch, Stage.TRAIN)
    # The loss, by hand: scale * (1 - cos) reduced over the batch.
    distance = 1 - torch.nn.functional.cosine_similarity(
        predictions, batch.teacher_embedding.data, dim=-1
    )
    by_hand = scale * (
        distance.sum() if reduction == "sum" else distance.mean()
    )
    torch.testing.assert_close(loss, by_hand)
    for step in range(2):
        loss = brain.fit_batch(random_batch(3, hparams["teacher_dim"], step))
        assert torch.isfinite(loss)
    assert all(
        not torch.equal(b, p.detach())
        for b, p in zip(before, student.parameters())
        if p.requires_grad
    )

    # One validation epoch end: NewBob sees 1 - R@1 or the dev loss.
    dev = random_batch(4, hparams["teacher_dim"], seed=9)
    brain.teacher_cache = dict(
        zip(dev.sentence, dev.teacher_embedding.data, strict=True)
    )
    brain.on_stage_end(Stage.TRAIN, 0.5, 1)
    brain.on_stage_start(Stage.VALID, 1)
    with torch.no_grad():
        brain.compute_objectives(
            brain.compute_forward(dev, Stage.VALID), dev, Stage.VALID
        )
    brain.on_stage_end(Stage.VALID, 0.375, 1)
    (seen,) = hparams["lr_annealing"]["head_optimizer"].metric_values
    if annealed_on == "loss":
        assert seen == 0.375
    else:
        assert 0.0 <= seen <= 1.0 and seen != 0.375


def test_authors_config_holds_the_authors_settings(
    tmp_path, tiny_w2v_bert_dir, tiny_teacher_dir
):
    """train_sense.yaml and train.py at aca5e41, setting by setting."""
    brain, h = build(
        "sense_cv_authors.yaml", tmp_path, tiny_w2v_bert_dir, tiny_teacher_dir
    )
    assert h["seed"] == 2422 and h["number_of_epochs"] == 100
    assert h["max_batch_size"] == 2  # batch_size: 2
    assert h["max_batch_seconds"] >= 2 * h["max_duration"]  # always 2 fit
    assert h["max_duration"] == 10.0  # DURATION_MAX
    assert h["precision"] == "fp32" and h["grad_accumulation_factor"] == 1
    assert h["loss_scale"] == 50 and h["loss_reduction"] == "sum"
    assert h["language_alpha"] == 0.05  # sampling_alpha
    assert h["teacher"].dtype == "float16"  # use_fp16: True
    encoder = brain.modules.student.encoder
    assert encoder.model.config.apply_spec_augment is False
    assert not h["freeze_encoder"]
    brain.on_fit_start()
    head_opt = brain.optimizers_dict["head_optimizer"]
    assert isinstance(head_opt, torch.optim.Adadelta)
    assert head_opt.defaults["lr"] == 1.5  # lr
    assert head_opt.defaults["rho"] == 0.95
    assert head_opt.defaults["eps"] == 1e-8
    encoder_opt = brain.optimizers_dict["encoder_optimizer"]
    assert isinstance(encoder_opt, torch.optim.Adam)
    assert encoder_opt.defaults["lr"] == 1e-5  # lr_wav2vec
    head_newbob = h["lr_annealing"]["head_optimizer"]
    encoder_newbob = h["lr_annealing"]["encoder_optimizer"]
    assert (head_newbob.annealing_factor, head_newbob.patient) == (0.5, 2)
    assert (encoder_newbob.annealing_factor, encoder_newbob.patient) == (0.9, 0)
    for newbob in (head_newbob, encoder_newbob):
        assert newbob.improvement_threshold == 0.0025
    assert h["annealing_metric"] == "loss"


@pytest.fixture(scope="module")
def tiny_xls_r_dir(tmp_path_factory):
    from speechbrain_sense.testing.tiny_models import save_tiny_xls_r

    return save_tiny_xls_r(tmp_path_factory.mktemp("xls_r"))


@pytest.fixture(scope="module")
def tiny_labse_dir(tmp_path_factory):
    from speechbrain_sense.testing.tiny_text_models import save_tiny_bert

    return save_tiny_bert(tmp_path_factory.mktemp("bert"))


def test_samu_xlsr_config_is_xls_r_labse_and_linear_tanh(
    tmp_path, tiny_xls_r_dir, tiny_labse_dir
):
    from speechbrain_sense.encoders.xls_r import SenseXLSR, XLSRFeatures

    brain, h = build("samu_xlsr.yaml", tmp_path, tiny_xls_r_dir, tiny_labse_dir)
    student = brain.modules.student
    assert isinstance(student.encoder, SenseXLSR)
    assert h["encoder_features"] is XLSRFeatures
    assert student.head.projection_type == "linear_tanh"
    assert h["teacher"].pooling == "pooler"  # LaBSE's sentence embedding
    assert list(h["languages"]) == AUTHORS_LOCALES
    # The convolutional feature encoder is fixed, the rest trains.
    conv = student.encoder.model.feature_extractor
    assert not any(p.requires_grad for p in conv.parameters())
    assert all(
        p.requires_grad for p in student.encoder.model.encoder.parameters()
    )

    featurize = XLSRFeatures(tiny_xls_r_dir)
    generator = torch.Generator().manual_seed(0)
    waves = [0.1 * torch.randn(n, generator=generator) for n in (9000, 16000)]
    inputs = [featurize(w) for w in waves]
    counts = torch.tensor([len(x) for x in inputs])
    padded = torch.nn.utils.rnn.pad_sequence(inputs, batch_first=True)
    student.eval()
    with torch.no_grad():
        batched = student(padded, counts)
        alone = torch.cat(
            [student(x[None], c[None]) for x, c in zip(inputs, counts)]
        )
    # Padding is invisible: the short clip embeds as it does alone.
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=0)

    brain.on_fit_start()
    student.train()
    before = [p.detach().clone() for p in student.parameters()]
    batch = xls_r_batch(inputs, h["teacher_dim"])
    for _ in range(2):
        assert torch.isfinite(brain.fit_batch(batch))
    moved = [
        not torch.equal(b, p.detach())
        for b, p in zip(before, student.parameters())
        if p.requires_grad
    ]
    assert moved and all(moved)


def xls_r_batch(inputs, teacher_dim):
    from speechbrain.dataio.batch import PaddedBatch

    generator = torch.Generator().manual_seed(1)
    return PaddedBatch(
        [
            {
                "id": f"utt{i}",
                "features": x,
                "num_frames": len(x),
                "teacher_embedding": torch.nn.functional.normalize(
                    torch.randn(teacher_dim, generator=generator), dim=0
                ),
                "sentence": f"sentence {i}",
                "lang": "en",
            }
            for i, x in enumerate(inputs)
        ]
    )


def test_samu_xlsr_recipe_trains_from_the_manifests(
    tmp_path, tiny_xls_r_dir, tiny_labse_dir
):
    """The whole recipe: XLS-R input computed in the workers' pipeline."""
    import os
    import subprocess

    from speechbrain_sense.synthetic.common_voice import make_synthetic_cv

    corpus = tmp_path / "cv"
    make_synthetic_cv(corpus, ["en", "fr"], per_language=8, seed=4)
    out = tmp_path / "exp"
    result = subprocess.run(
        [
            sys.executable,
            "train.py",
            "hparams/samu_xlsr.yaml",
            f"--data_folder={corpus}",
            f"--output_folder={out}",
            "--languages=[en, fr]",
            f"--encoder_source={tiny_xls_r_dir}",
            "--encoder_dim=32",
            f"--teacher_source={tiny_labse_dir}",
            "--teacher_dim=32",
            "--number_of_epochs=1",
            "--num_workers=0",
            "--max_batch_seconds=20",
            "--min_duration=0",
            "--common_voice_release=null",
            "--precision=fp32",
        ],
        cwd=RECIPE,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    import json

    metrics = json.loads((out / "test_metrics.json").read_text())
    assert set(metrics) >= {"en", "fr", "mean"}
    (checkpoint,) = (out / "save").glob("CKPT+*")
    state = torch.load(checkpoint / "student.ckpt")
    assert "head.projection.0.weight" in state
    assert any(k.startswith("encoder.model.feature_extractor") for k in state)


def test_an_xls_r_student_exports_and_embeds_as_trained(
    tmp_path, tiny_xls_r_dir, tiny_labse_dir
):
    """samu_xlsr.yaml's student, trained two steps and checkpointed by the
    recipe's checkpointer, exports as an XLS-R model that embeds raw padded
    waveforms as the student embeds the workers' input."""
    from speechbrain_sense.encoders.export import export_model
    from speechbrain_sense.encoders.inference import SenseEncoder, pad_waveforms
    from speechbrain_sense.encoders.pretrained import XLSRFromConfig
    from speechbrain_sense.encoders.xls_r import XLSRFeatures

    brain, h = build("samu_xlsr.yaml", tmp_path, tiny_xls_r_dir, tiny_labse_dir)
    student = brain.modules.student
    featurize = XLSRFeatures(tiny_xls_r_dir)
    generator = torch.Generator().manual_seed(0)
    waves = [0.1 * torch.randn(n, generator=generator) for n in (9000, 16000)]
    inputs = [featurize(w) for w in waves]
    brain.on_fit_start()
    student.train()
    for _ in range(2):
        batch = xls_r_batch(inputs, h["teacher_dim"])
        assert torch.isfinite(brain.fit_batch(batch))
    brain.checkpointer.save_checkpoint()

    model_dir = export_model(
        tmp_path / "out" / "save",
        tmp_path / "model",
        encoder_source=str(tiny_xls_r_dir),
    )
    card = (model_dir / "README.md").read_text()
    assert "XLS-R (wav2vec 2.0) architecture" in card
    assert "- xls-r\n" in card and "w2v-bert" not in card
    model = SenseEncoder.from_hparams(
        str(model_dir), savedir=str(tmp_path / "fetched")
    )
    assert isinstance(model.mods.embedding_model.encoder, XLSRFromConfig)
    assert model.mods.embedding_model.head.projection_type == "linear_tanh"
    padded, lens = pad_waveforms(waves)
    emb = model.encode_batch(padded, lens)

    student.eval()
    counts = torch.tensor([len(x) for x in inputs])
    with torch.no_grad():
        expected = student(
            torch.nn.utils.rnn.pad_sequence(inputs, batch_first=True), counts
        )
    torch.testing.assert_close(emb[:, 0], expected, atol=1e-5, rtol=0)
