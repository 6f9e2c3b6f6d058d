"""Tiny, randomly initialised but real HuggingFace models saved to disk.

The recipes load every pretrained component from a hub id *or* a local
directory through ``from_pretrained``. There is no model hub on CI, so the
tests (and ``make demo``) write miniature versions of the real architectures
to a directory and load them through exactly the code path a user's
``facebook/w2v-bert-2.0`` or ``BAAI/bge-m3`` would take:

* :func:`save_tiny_w2v_bert`: a ``Wav2Vec2BertModel`` (the w2v-BERT 2.0
  Conformer) plus its ``SeamlessM4TFeatureExtractor`` config, so that
  SpeechBrain's ``W2VBert`` and ``AutoFeatureExtractor`` load it;
* :func:`save_tiny_xls_r`: a ``Wav2Vec2Model`` with XLS-R's settings and
  its ``Wav2Vec2FeatureExtractor`` (the SAMU-XLSR baseline's student);
* :func:`save_tiny_xlm_roberta`: an ``XLMRobertaModel`` (BGE-M3's
  architecture) with a real unigram tokenizer trained by SentencePiece on the
  package's multilingual sentence lists.

Both take milliseconds per forward pass on a CPU.

Authors
 * speechbrain-sense developers 2026
"""

import io
from pathlib import Path

import torch

SENTENCE_DIR = (
    Path(__file__).resolve().parent.parent / "synthetic" / "sentences"
)

# Used only when the packaged sentence lists are missing (e.g. a partial
# checkout); enough text for SentencePiece to learn a small vocabulary.
_FALLBACK_TEXT = [
    "the weather is nice today and we are going to the park",
    "le temps est beau aujourd'hui et nous allons au parc",
    "das Wetter ist heute schön und wir gehen in den Park",
    "hace buen tiempo hoy y vamos al parque",
    "сегодня хорошая погода и мы идём в парк",
    "امروز هوا خوب است و ما به پارک می‌رویم",
]


def save_tiny_w2v_bert(
    out_dir,
    hidden_size=32,
    num_layers=2,
    num_heads=2,
    intermediate_size=64,
    conv_kernel_size=5,
    seed=0,
):
    """Writes a tiny random w2v-BERT 2.0 model and its feature extractor.

    Same architecture family as ``facebook/w2v-bert-2.0`` (Conformer layers,
    relative-key attention, 80-bin fbank stacked by 2 into 160-d frames at
    50 Hz), only narrower and shallower.

    Arguments
    ---------
    out_dir : str or Path
        Directory to write ``config.json``, the weights and
        ``preprocessor_config.json`` into (created if missing).
    hidden_size : int
        Model width (1024 in w2v-BERT 2.0).
    num_layers : int
        Number of Conformer layers (24 in w2v-BERT 2.0).
    num_heads : int
        Attention heads (16 in w2v-BERT 2.0).
    intermediate_size : int
        Feed-forward width (4096 in w2v-BERT 2.0).
    conv_kernel_size : int
        Depthwise convolution kernel of the Conformer (31 in the real one).
    seed : int
        Seed of the random initialisation (same seed, same weights).

    Returns
    -------
    Path
        ``out_dir``, ready for ``from_pretrained``.

    Example
    -------
    >>> import tempfile
    >>> from transformers import Wav2Vec2BertModel
    >>> d = save_tiny_w2v_bert(tempfile.mkdtemp())
    >>> Wav2Vec2BertModel.from_pretrained(d).config.hidden_size
    32
    """
    from transformers import (
        SeamlessM4TFeatureExtractor,
        Wav2Vec2BertConfig,
        Wav2Vec2BertModel,
    )

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = Wav2Vec2BertConfig(
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=intermediate_size,
        output_hidden_size=hidden_size,
        conv_depthwise_kernel_size=conv_kernel_size,
        # Same positional scheme and masking defaults as the real model.
        position_embeddings_type="relative_key",
        left_max_position_embeddings=64,
        right_max_position_embeddings=8,
        add_adapter=False,
        layerdrop=0.0,
    )
    torch.manual_seed(seed)
    save_model_files(Wav2Vec2BertModel(config), out_dir)
    SeamlessM4TFeatureExtractor(
        feature_size=80,
        num_mel_bins=80,
        sampling_rate=16000,
        stride=2,
        padding_value=1.0,
    ).save_pretrained(out_dir)
    return out_dir


def save_tiny_xls_r(
    out_dir,
    hidden_size=32,
    num_layers=2,
    num_heads=2,
    intermediate_size=64,
    conv_dim=16,
    seed=0,
):
    """Writes a tiny random XLS-R (wav2vec 2.0) model and its extractor.

    The architecture of ``facebook/wav2vec2-xls-r-300m``: the standard
    7-layer convolutional encoder with layer norm (320-sample hop),
    pre-norm ("stable layer norm") Transformer layers and a grouped
    convolutional position embedding, only narrower and shallower.

    Arguments
    ---------
    out_dir : str or Path
        Directory to write ``config.json``, the weights and
        ``preprocessor_config.json`` into (created if missing).
    hidden_size : int
        Model width (1024 in XLS-R 300M).
    num_layers : int
        Transformer layers (24 in XLS-R 300M).
    num_heads : int
        Attention heads (16 in XLS-R 300M).
    intermediate_size : int
        Feed-forward width (4096 in XLS-R 300M).
    conv_dim : int
        Channels of every convolutional layer (512 in XLS-R).
    seed : int
        Seed of the random initialisation.

    Returns
    -------
    Path
        ``out_dir``, ready for ``from_pretrained``.

    Example
    -------
    >>> import tempfile
    >>> from transformers import Wav2Vec2Model
    >>> d = save_tiny_xls_r(tempfile.mkdtemp())
    >>> Wav2Vec2Model.from_pretrained(d).config.feat_extract_norm
    'layer'
    """
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2Model,
    )

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = Wav2Vec2Config(
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=intermediate_size,
        conv_dim=(conv_dim,) * 7,
        # XLS-R's settings (the defaults are wav2vec2-base's).
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
        conv_bias=True,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
        layerdrop=0.0,
        mask_time_prob=0.05,
    )
    torch.manual_seed(seed)
    save_model_files(Wav2Vec2Model(config), out_dir)
    Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=16000,
        padding_value=0.0,
        do_normalize=True,
        return_attention_mask=True,
    ).save_pretrained(out_dir)
    return out_dir


def save_model_files(model, out_dir):
    """Writes ``config.json`` and ``model.safetensors`` of a HF model.

    ``PreTrainedModel.save_pretrained`` silently writes nothing on ranks
    other than 0 once ``torch.distributed`` is initialised, which would
    leave a DDP rank that builds a tiny model with an empty directory. The
    files written here are the ones ``from_pretrained`` reads.

    Tied weights (BART's shared embeddings) are stored once, as
    ``save_pretrained`` stores them.

    Arguments
    ---------
    model : transformers.PreTrainedModel
        Model to save.
    out_dir : Path
        Existing directory.
    """
    from safetensors.torch import save_model

    model.config.save_pretrained(out_dir)
    save_model(
        model, str(Path(out_dir) / "model.safetensors"), {"format": "pt"}
    )


def _tokenizer_training_text():
    """Tokenizer training text.

    Returns
    -------
    bool
        True if so.
    """
    files = sorted(SENTENCE_DIR.glob("*.txt"))
    lines = []
    for path in files:
        lines.extend(
            line.strip()
            for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()
        )
    return lines or list(_FALLBACK_TEXT)


def train_unigram_vocab(sentences, vocab_size=600):
    """Trains a SentencePiece unigram model and returns XLM-R's vocabulary.

    The layout follows XLM-RoBERTa's: ``<s> <pad> </s> <unk>``, then the
    SentencePiece pieces, then ``<mask>``.

    Arguments
    ---------
    sentences : list of str
        Training text.
    vocab_size : int
        Upper bound on the SentencePiece vocabulary (soft limit, small
        corpora give fewer pieces).

    Returns
    -------
    list of (str, float)
        Pieces with their unigram log-probabilities.
    """
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=model,
        vocab_size=vocab_size,
        model_type="unigram",
        character_coverage=1.0,
        hard_vocab_limit=False,
        minloglevel=2,
    )
    processor = spm.SentencePieceProcessor(model_proto=model.getvalue())
    vocab = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    for i in range(processor.get_piece_size()):
        if processor.is_unknown(i) or processor.is_control(i):
            continue
        vocab.append((processor.id_to_piece(i), processor.get_score(i)))
    vocab.append(("<mask>", 0.0))
    return vocab


def save_tiny_xlm_roberta(
    out_dir,
    hidden_size=32,
    num_layers=2,
    num_heads=2,
    intermediate_size=64,
    max_position_embeddings=130,
    vocab_size=600,
    seed=0,
):
    """Writes a tiny random XLM-RoBERTa encoder (BGE-M3's architecture).

    Arguments
    ---------
    out_dir : str or Path
        Directory to write the model and its tokenizer into.
    hidden_size : int
        Model width (1024 in BGE-M3).
    num_layers : int
        Transformer layers (24 in BGE-M3).
    num_heads : int
        Attention heads (16 in BGE-M3).
    intermediate_size : int
        Feed-forward width (4096 in BGE-M3).
    max_position_embeddings : int
        Position table size; XLM-R reserves ``pad_token_id + 1`` of them,
        so the longest input is two less.
    vocab_size : int
        SentencePiece vocabulary bound (BGE-M3: 250002).
    seed : int
        Seed of the random initialisation.

    Returns
    -------
    Path
        ``out_dir``, ready for ``AutoModel``/``AutoTokenizer``.

    Example
    -------
    >>> import tempfile
    >>> from transformers import AutoTokenizer
    >>> d = save_tiny_xlm_roberta(tempfile.mkdtemp())
    >>> tok = AutoTokenizer.from_pretrained(d)
    >>> ids = tok("hello world")["input_ids"]
    >>> ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
    True
    """
    from transformers import (
        XLMRobertaConfig,
        XLMRobertaModel,
        XLMRobertaTokenizer,
    )

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    vocab = train_unigram_vocab(_tokenizer_training_text(), vocab_size)
    tokenizer = XLMRobertaTokenizer(
        vocab=vocab, model_max_length=max_position_embeddings - 2
    )
    tokenizer.save_pretrained(out_dir)
    config = XLMRobertaConfig(
        vocab_size=len(vocab),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=max_position_embeddings,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    save_model_files(XLMRobertaModel(config), out_dir)
    return out_dir


def ensure_tiny_w2v_bert(out_dir, **options):
    """Returns ``out_dir`` holding a tiny w2v-BERT, writing it if missing.

    Meant for ``!apply:`` in a yaml file (``sense_tiny.yaml``), where it runs
    while the hyperparameters load, before the encoder that reads the
    directory is built. A file lock serialises concurrent processes (DDP
    ranks) and writing goes through a temporary sibling directory and an
    atomic rename, so no process ever sees half a model.

    Arguments
    ---------
    out_dir : str or Path
        Model directory.
    **options
        Passed to :func:`save_tiny_w2v_bert` when the model is created; an
        existing model whose size differs from them is an error.

    Returns
    -------
    str
        ``out_dir``.
    """
    import fcntl
    import json
    import os
    import shutil
    import tempfile

    out_dir = Path(out_dir)
    config_file = out_dir / "config.json"
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # Several processes (DDP ranks) load the same yaml at once: the first to
    # take the lock writes the model, the others wait and reuse it.
    with open(out_dir.parent / f".{out_dir.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not config_file.exists():
            tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=".tiny-"))
            save_tiny_w2v_bert(tmp, **options)
            if out_dir.exists():  # an empty or partial leftover
                shutil.rmtree(out_dir)
            os.replace(tmp, out_dir)
    config = json.loads(config_file.read_text())
    expected = {
        "hidden_size": options.get("hidden_size"),
        "num_hidden_layers": options.get("num_layers"),
        "num_attention_heads": options.get("num_heads"),
        "intermediate_size": options.get("intermediate_size"),
    }
    for key, value in expected.items():
        if value is not None and config[key] != value:
            raise ValueError(
                f"{config_file} has {key}={config[key]} but {value} was asked;"
                " delete the directory to regenerate it"
            )
    return str(out_dir)
