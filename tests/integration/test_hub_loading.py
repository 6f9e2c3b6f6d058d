"""Exported models load from the Hub the way users load them.

There is no Hub here: an exported folder is written into a HuggingFace
cache laid out as a download leaves it (``blobs/`` named by hash,
``snapshots/<commit>/`` symlinks or copies, ``refs/main``), holding only
the files SpeechBrain fetches, and loaded as ``source="org/name"`` with
``HF_HUB_OFFLINE=1`` in fresh interpreters. The no-package loads run with
``speechbrain_sense`` made unimportable, as on a machine that only has
SpeechBrain.
"""

import os
import re
import subprocess
import sys
import textwrap

import pytest
import torch

from speechbrain_sense.encoders.export import (
    LOADING_FILES,
    export_student,
    usage_snippet,
)
from speechbrain_sense.encoders.inference import SenseEncoder
from speechbrain_sense.encoders.pooling import SenseEmbeddingHead
from speechbrain_sense.encoders.student import SenseStudent
from speechbrain_sense.encoders.w2v_bert import SenseW2VBert
from speechbrain_sense.testing.hub_cache import make_hub_cache

pytestmark = pytest.mark.integration

REPO = "org/sense-tiny"
COPY_REPO = "org/sense-tiny-copies"
LENGTHS = (16000, 9000, 23001)

# Prepended to the no-package scripts: any import of the package fails,
# whatever sys.path or the editable install's finder say.
BLOCK_PACKAGE = textwrap.dedent(
    """
    import importlib.abc
    import sys


    class _NoSpeechbrainSense(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] == "speechbrain_sense":
                raise ModuleNotFoundError("speechbrain_sense is blocked")


    sys.meta_path.insert(0, _NoSpeechbrainSense())
    """
)

NOISE = textwrap.dedent(
    f"""
    import torch

    _generator = torch.Generator().manual_seed(0)
    _wavs = [0.1 * torch.randn(n, generator=_generator) for n in {LENGTHS}]
    WAVS = torch.nn.utils.rnn.pad_sequence(_wavs, batch_first=True)
    LENS = torch.tensor([len(w) / WAVS.shape[1] for w in _wavs])
    """
)


def noise():
    """The padded batch every script embeds (same seed as ``NOISE``).

    Returns
    -------
    wavs : torch.Tensor
        ``[3, T]`` padded noise.
    lens : torch.Tensor
        ``[3]`` relative lengths.
    """
    namespace = {}
    exec(NOISE, namespace)
    return namespace["WAVS"], namespace["LENS"]


@pytest.fixture(scope="module")
def hub(tiny_w2v_bert_dir, tmp_path_factory):
    """An exported model in a HuggingFace cache, two ways, and its env.

    Arguments
    ---------
    tiny_w2v_bert_dir : Path
        The tiny random w2v-BERT (conftest).
    tmp_path_factory : pytest.TempPathFactory
        Temporary folders.

    Returns
    -------
    dict
        ``model_dir``, ``cache``, ``env`` (offline, cache set) and
        ``reference`` (the local load's embeddings of :func:`noise`).
    """
    source = str(tiny_w2v_bert_dir)
    torch.manual_seed(5)
    student = SenseStudent(
        SenseW2VBert(source, source), SenseEmbeddingHead(32, 24)
    ).eval()
    with torch.no_grad():  # a peaked attention, so that pooling matters
        student.head.pooling.attn_pooling_w.weight.mul_(20.0)
    model_dir = export_student(
        student.state_dict(), source, tmp_path_factory.mktemp("model")
    )
    cache = tmp_path_factory.mktemp("hf") / "hub"
    make_hub_cache(model_dir, cache, REPO, files=list(LOADING_FILES))
    make_hub_cache(
        model_dir, cache, COPY_REPO, files=list(LOADING_FILES), symlinks=False
    )
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.update(
        HF_HUB_OFFLINE="1",
        HF_HUB_CACHE=str(cache),
        HF_HOME=str(cache.parent / "home"),
        TRANSFORMERS_OFFLINE="1",
    )
    wavs, lens = noise()
    local = SenseEncoder.from_hparams(
        str(model_dir), savedir=tmp_path_factory.mktemp("local")
    )
    reference = local.encode_batch(wavs, lens)[:, 0]
    return {
        "model_dir": model_dir,
        "cache": cache,
        "env": env,
        "reference": reference,
    }


def run_script(script, env, cwd, timeout=300):
    """Runs ``python -c script`` in ``cwd``; fails the test on an error.

    Arguments
    ---------
    script : str
        Python source.
    env : dict
        Its environment.
    cwd : Path
        Working folder (not the repository, so ``""`` on ``sys.path`` is
        no way in to the package).
    timeout : float
        Seconds.

    Returns
    -------
    str
        Its stdout.
    """
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    return result.stdout


def test_the_cache_holds_only_what_speechbrain_fetches(hub):
    snapshot = next((hub["cache"] / "models--org--sense-tiny").glob("s*/*"))
    assert sorted(p.name for p in snapshot.iterdir()) == sorted(LOADING_FILES)
    # The yaml's real path is a blob: nothing next to it to !include.
    real = (snapshot / "hyperparams.yaml").resolve()
    assert real.parent.name == "blobs"
    assert not re.search(r"^[^#\n]*!include", real.read_text(), flags=re.M)


def test_loads_from_the_hub_with_speechbrain_only(hub, tmp_path):
    out = tmp_path / "embeddings.pt"
    script = (
        BLOCK_PACKAGE
        + NOISE
        + textwrap.dedent(
            f"""
            from speechbrain.inference.classifiers import EncoderClassifier
            from speechbrain.inference.interfaces import foreign_class
            from speechbrain.utils.fetching import LocalStrategy, fetch

            results = {{}}
            for name, repo, strategy in (
                ("symlinks", {REPO!r}, LocalStrategy.SYMLINK),
                ("copies", {COPY_REPO!r}, LocalStrategy.COPY),
            ):
                model = foreign_class(
                    source=repo,
                    pymodule_file="custom.py",
                    classname="SenseEncoderInterface",
                    savedir="pretrained/" + name,
                    local_strategy=strategy,
                )
                results[name] = model.encode_batch(WAVS, LENS)[:, 0]
                frames, counts = model.encode_frames(WAVS, LENS)
                results[name + "_counts"] = counts

            # Stock EncoderClassifier: custom.py's folder on sys.path.
            custom = fetch("custom.py", source={REPO!r}, savedir="stock")
            sys.path.insert(0, str(custom.parent))
            model = EncoderClassifier.from_hparams(
                source={REPO!r}, savedir="stock"
            )
            results["stock"] = model.encode_batch(WAVS, LENS)[:, 0]
            assert "speechbrain_sense" not in {{
                m.split(".")[0] for m in sys.modules
            }}
            torch.save(results, {str(out)!r})
            """
        )
    )
    run_script(script, hub["env"], tmp_path)
    results = torch.load(out)
    for name in ("symlinks", "copies", "stock"):
        assert torch.allclose(results[name], hub["reference"], atol=1e-5), name
    assert results["symlinks_counts"].tolist() == [49, 27, 71]


def test_model_card_snippet_runs_as_written(hub, tmp_path):
    snippet = usage_snippet(REPO)
    assert f'source="{REPO}"' in snippet
    stdout = run_script(BLOCK_PACKAGE + snippet, hub["env"], tmp_path)
    assert "torch.Size([2, 1, 24])" in stdout


def test_package_loaders_accept_a_hub_id(hub, tmp_path):
    out = tmp_path / "embeddings.pt"
    script = NOISE + textwrap.dedent(
        f"""
        from speechbrain_sense.tasks.downstream import SenseFrameEncoder
        from speechbrain_sense.encoders.inference import SenseEncoder
        from speechbrain_sense.encoders.pretrained import SenseEncoderInterface

        model = SenseEncoder.from_hparams({REPO!r}, savedir="sense")
        encoder = SenseFrameEncoder.from_pretrained({REPO!r}, savedir="frames")
        interface = SenseEncoderInterface.from_hparams({COPY_REPO!r})
        torch.save(
            {{
                "sense": model.encode_batch(WAVS, LENS)[:, 0],
                "interface": interface.encode_batch(WAVS, LENS)[:, 0],
                "frame_dim": encoder.output_dim,
                "custom_loaded": "custom" in sys.modules,
            }},
            {str(out)!r},
        )
        """
    )
    run_script("import sys\n" + script, hub["env"], tmp_path)
    results = torch.load(out)
    assert torch.allclose(results["sense"], hub["reference"], atol=1e-5)
    assert torch.allclose(results["interface"], hub["reference"], atol=1e-5)
    assert results["frame_dim"] == 32
    # The package's classes were used: the repo's custom.py never ran.
    assert results["custom_loaded"] is False
