"""Train (1 tiny epoch), export, load in a fresh process with stock
SpeechBrain, and compare with the training-time embedding."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from speechbrain_sense.audio import load_audio
from speechbrain_sense.encoders.pooling import SenseEmbeddingHead
from speechbrain_sense.encoders.student import SenseStudent
from speechbrain_sense.encoders.w2v_bert import SenseW2VBert, W2VBertFeatures
from speechbrain_sense.synthetic.common_voice import make_synthetic_cv

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes/CommonVoice/SENSE"

pytestmark = pytest.mark.integration


def run(args, cwd, timeout=300):
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    return output


def test_recipe_checkpoint_exports_and_loads_in_a_fresh_process(tmp_path):
    corpus = tmp_path / "cv"
    make_synthetic_cv(corpus, ["en", "fr"], per_language=8, seed=3)
    out = tmp_path / "exp"
    run(
        [
            "train.py",
            "hparams/sense_tiny.yaml",
            f"--data_folder={corpus}",
            f"--output_folder={out}",
            "--number_of_epochs=1",
            "--languages=[en, fr]",
            "--encoder_dim=32",
            "--max_batch_seconds=20",
            "--num_workers=0",
            "--min_duration=0",
        ],
        cwd=RECIPE,
    )
    model_dir = tmp_path / "model"
    log = run(
        [
            "-m",
            "speechbrain_sense.encoders.export",
            "--checkpoint",
            str(out / "save"),
            "--out",
            str(model_dir),
        ],
        cwd=tmp_path,
    )
    assert "Exported" in log
    card = (model_dir / "README.md").read_text()
    for fact in ("en, fr", "universal_sentence_encoder", "dev R@1", "| en |"):
        assert fact in card, fact

    clips = sorted((corpus / "en" / "clips").glob("*.mp3"))[:3]
    # A fresh interpreter, SpeechBrain's loader and the folder's custom.py,
    # another working folder.
    embeddings = tmp_path / "embeddings.pt"
    script = textwrap.dedent(
        f"""
        import torch
        from speechbrain.inference.interfaces import foreign_class
        from speechbrain_sense.audio import load_audio

        model = foreign_class(
            source={str(model_dir)!r},
            pymodule_file="custom.py",
            classname="SenseEncoderInterface",
            savedir="fetched",
        )
        wavs = [load_audio(p) for p in {[str(c) for c in clips]!r}]
        longest = max(len(w) for w in wavs)
        batch = torch.zeros(len(wavs), longest)
        for i, w in enumerate(wavs):
            batch[i, : len(w)] = w
        lens = torch.tensor([len(w) / longest for w in wavs])
        torch.save(model.encode_batch(batch, lens), {str(embeddings)!r})
        """
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run(["-c", script], cwd=elsewhere)
    emb = torch.load(embeddings)
    assert emb.shape == (3, 1, 512)

    # The training code path: per-utterance features, SenseStudent.
    encoder_dir = str(out / "tiny_w2v_bert_32d")
    student = SenseStudent(
        SenseW2VBert(encoder_dir, encoder_dir),
        SenseEmbeddingHead(32, 512, projection="linear_tanh"),
    )
    checkpoint = next((out / "save").glob("CKPT+*"))
    student.load_state_dict(torch.load(checkpoint / "student.ckpt"))
    student.eval()
    features = W2VBertFeatures(encoder_dir)
    feats = [features(load_audio(c)) for c in clips]
    counts = torch.tensor([len(f) for f in feats])
    padded = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)
    with torch.no_grad():
        expected = student(padded, counts)
    assert torch.allclose(emb[:, 0], expected, atol=1e-5)
