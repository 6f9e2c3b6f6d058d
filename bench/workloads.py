"""What the benchmarks run on: a synthetic corpus, models, teachers.

Everything is generated offline, once, into a work folder (default
``$TMPDIR/speechbrain-sense-bench``) and reused by later runs:

* a synthetic Common Voice corpus (eSpeak NG speech of the compositional
  "grammar" sentences, 48 kHz MP3, CV layout) and the SENSE recipe's own
  manifests of it (``common_voice_sense_prepare.py``);
* the student encoder, a randomly initialised w2v-BERT 2.0, either tiny
  (``sense_tiny.yaml``: 96-d, 2 Conformer layers, 4 heads, FFN 192) or the
  real architecture (``Wav2Vec2BertConfig()`` defaults: 24 layers,
  d=1024, FFN 4096, ~580M parameters);
* the teacher, a randomly initialised XLM-RoBERTa encoder with BGE-M3's
  dense recipe (CLS token, L2-normalised), tiny (the student's size) or
  BGE-M3's size (24 layers, d=1024, vocabulary 250002); or the offline
  multilingual Universal Sentence Encoder of ``make demo``.

Random weights cost exactly what trained ones cost, which is all a speed
benchmark needs. The tokenizer of the XLM-R teachers is a small
SentencePiece unigram model trained on the package's sentences (BGE-M3's
own needs the hub): it cuts sentences into somewhat more tokens than
BGE-M3's 250k vocabulary would, which makes per-batch teacher passes (the
upstream recipe's) slightly more expensive than with the real tokenizer.

Authors
 * speechbrain-sense developers 2026
"""

import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
RECIPE_DIR = REPO_ROOT / "recipes" / "CommonVoice" / "SENSE"
DEFAULT_WORK_DIR = Path(tempfile.gettempdir()) / "speechbrain-sense-bench"

# sense_tiny.yaml's encoder; the tiny teacher has the same shape, so that
# (like w2v-BERT 2.0 and BGE-M3) student and teacher cost about the same
# per token.
TINY_SIZE = {
    "hidden_size": 96,
    "num_layers": 2,
    "num_heads": 4,
    "intermediate_size": 192,
}
TEACHERS = ("xlmr", "use")


def load_recipe_module(name):
    """Imports a module of the SENSE recipe folder (``train``...).

    Arguments
    ---------
    name : str
        File name without ``.py`` in ``recipes/CommonVoice/SENSE``.

    Returns
    -------
    module
        The imported module (``__main__`` blocks do not run).
    """
    spec = importlib.util.spec_from_file_location(
        f"sense_recipe_{name}", RECIPE_DIR / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _build_once(folder, build):
    """Runs ``build(tmp)`` into a sibling folder, then renames it.

    A folder that exists is complete (the rename is the last step), so
    interrupted runs never leave half a model or corpus behind.
    """
    folder = Path(folder)
    if folder.exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
    try:
        build(tmp)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def synthetic_corpus(work_dir, languages, per_language, seed=0):
    """A synthetic Common Voice release and the recipe's manifests of it.

    Arguments
    ---------
    work_dir : str or Path
        Work folder (created).
    languages : list of str
        Common Voice locales, e.g. ``["en", "fr"]``.
    per_language : int
        Clips per language over the three splits (80% train).
    seed : int
        Corpus seed.

    Returns
    -------
    dict
        ``data_folder``, ``save_folder``, ``train_csv``, ``dev_csv``,
        ``test_csv`` and ``language_ratios_file`` paths (str).
    """
    from speechbrain_sense.synthetic.common_voice import make_synthetic_cv

    name = f"cv-{'-'.join(languages)}-{per_language}-seed{seed}"
    root = Path(work_dir) / name
    data_folder = _build_once(
        root / "data",
        lambda tmp: make_synthetic_cv(
            tmp, languages, per_language, seed=seed, sentences="grammar"
        ),
    )
    save_folder = root / "manifests"
    prepare = load_recipe_module(
        "common_voice_sense_prepare"
    ).prepare_common_voice
    prepare(
        data_folder=str(data_folder),
        save_folder=str(save_folder),
        languages=list(languages),
    )
    paths = {"data_folder": data_folder, "save_folder": save_folder}
    for split in ("train", "dev", "test"):
        paths[f"{split}_csv"] = save_folder / f"{split}.csv"
    paths["language_ratios_file"] = save_folder / "language_ratios.json"
    return {key: str(value) for key, value in paths.items()}


def student_source(work_dir, config):
    """Directory of the random w2v-BERT 2.0 student (``from_pretrained``).

    Arguments
    ---------
    work_dir : str or Path
        Work folder.
    config : str
        ``"tiny"`` (``sense_tiny.yaml``) or ``"full"`` (w2v-BERT 2.0's
        architecture, layer drop off so every step does the same work).

    Returns
    -------
    str
        Model directory.
    """
    from speechbrain_sense.testing.tiny_models import save_tiny_w2v_bert

    if config == "tiny":
        folder = Path(work_dir) / "w2v-bert-tiny"
        return str(
            _build_once(
                folder,
                lambda tmp: save_tiny_w2v_bert(tmp, **TINY_SIZE, seed=0),
            )
        )

    def build(tmp):
        """Saves a full-width, random w2v-BERT 2.0 encoder into ``tmp``."""
        import torch
        from transformers import (
            SeamlessM4TFeatureExtractor,
            Wav2Vec2BertConfig,
            Wav2Vec2BertModel,
        )

        torch.manual_seed(0)
        config = Wav2Vec2BertConfig(layerdrop=0.0)
        Wav2Vec2BertModel(config).save_pretrained(tmp)
        SeamlessM4TFeatureExtractor(
            feature_size=80,
            num_mel_bins=80,
            sampling_rate=16000,
            stride=2,
            padding_value=1.0,
        ).save_pretrained(tmp)

    return str(_build_once(Path(work_dir) / "w2v-bert-2.0-random", build))


def teacher_source(work_dir, config):
    """Directory of the random XLM-R teacher (BGE-M3's architecture).

    Arguments
    ---------
    work_dir : str or Path
        Work folder.
    config : str
        ``"tiny"`` (the tiny student's size) or ``"full"`` (BGE-M3's size).

    Returns
    -------
    str
        Model and tokenizer directory.
    """
    from speechbrain_sense.testing.tiny_models import save_tiny_xlm_roberta

    if config == "tiny":
        return str(
            _build_once(
                Path(work_dir) / "xlmr-tiny",
                lambda tmp: save_tiny_xlm_roberta(tmp, **TINY_SIZE, seed=0),
            )
        )

    def build(tmp):
        """Saves a BGE-M3-shaped, random XLM-R encoder into ``tmp``."""
        import torch
        from transformers import XLMRobertaConfig, XLMRobertaModel

        # The tokenizer of a small model, then BGE-M3's encoder in its place.
        save_tiny_xlm_roberta(tmp, vocab_size=8000, seed=0)
        tiny = json.loads((tmp / "config.json").read_text())
        config = XLMRobertaConfig(
            vocab_size=250002,
            hidden_size=1024,
            num_hidden_layers=24,
            num_attention_heads=16,
            intermediate_size=4096,
            max_position_embeddings=8194,
            type_vocab_size=1,
            layer_norm_eps=1e-5,
            pad_token_id=tiny["pad_token_id"],
            bos_token_id=tiny["bos_token_id"],
            eos_token_id=tiny["eos_token_id"],
        )
        torch.manual_seed(0)
        XLMRobertaModel(config).save_pretrained(tmp)

    return str(_build_once(Path(work_dir) / "xlmr-large-random", build))


def load_teacher(kind, work_dir, config, threads=2):
    """The frozen teacher of a benchmark.

    Arguments
    ---------
    kind : str
        ``"xlmr"``: :class:`~speechbrain_sense.teachers.sentence_encoders.HFSentenceEncoder`
        with BGE-M3's recipe on a random XLM-R (:func:`teacher_source`);
        ``"use"``: the multilingual Universal Sentence Encoder (512-d,
        NumPy), the teacher of ``make demo``.
    work_dir : str or Path
        Work folder.
    config : str
        ``"tiny"`` or ``"full"`` (XLM-R size; ignored for ``"use"``).
    threads : int
        BLAS threads of the Universal Sentence Encoder.

    Returns
    -------
    object
        A teacher with ``encode``, ``identity`` and ``dim``.
    """
    if kind == "use":
        from speechbrain_sense.teachers.sentence_encoders import (
            universal_sentence_encoder,
        )

        return universal_sentence_encoder(threads=threads)
    if kind != "xlmr":
        raise ValueError(f"teacher must be one of {TEACHERS}, not {kind!r}")
    from speechbrain_sense.teachers.sentence_encoders import HFSentenceEncoder

    return HFSentenceEncoder(
        teacher_source(work_dir, config),
        pooling="cls",
        normalize=True,
        max_length=512,
        name=f"bge-m3-architecture-{config}-random",
    )


def recipe_head(input_dim, output_dim):
    """The SENSE head the recipes build for these widths.

    ``sense_cv.yaml`` (equal 1024-d widths) keeps the pooled vector
    (``projection: none``); ``sense_tiny.yaml`` (96-d encoder, 512-d
    teacher) projects with a Linear + tanh.

    Arguments
    ---------
    input_dim : int
        Encoder width.
    output_dim : int
        Teacher width.

    Returns
    -------
    speechbrain_sense.encoders.pooling.SenseEmbeddingHead
        Randomly initialised.
    """
    from speechbrain_sense.encoders.pooling import SenseEmbeddingHead

    projection = "none" if input_dim == output_dim else "linear_tanh"
    return SenseEmbeddingHead(input_dim, output_dim, projection=projection)


def quiet_libraries():
    """Silences progress bars and warnings that would bury the tables."""
    import warnings

    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
