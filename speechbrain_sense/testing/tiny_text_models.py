"""Tiny random text models (BART, mBART-50, BERT) for the recipes' tests.

The summarization recipe loads its text decoder (``facebook/bart-large``)
and its BERTScore model (``roberta-large``), the speech translation recipe
its optional mBART-50 decoder, by hub id or local directory.
With no hub on CI, the tests and the tiny configuration write miniature
versions of the same architectures, with real tokenizers trained on the
package's English sentences, and load them through ``from_pretrained``:

* :func:`save_tiny_bart`: ``BartForConditionalGeneration`` with a
  byte-level BPE tokenizer (BART's tokenizer type);
* :func:`save_tiny_mbart50`: ``MBartForConditionalGeneration`` with a
  real ``MBart50Tokenizer`` (a SentencePiece model trained here, the 52
  language codes appended by the tokenizer);
* :func:`save_tiny_bert`: ``BertModel`` with a WordPiece tokenizer
  (whole words of the sentences + single characters), for BERTScore.

:func:`ensure_tiny_bart` / :func:`ensure_tiny_bert` write them once, for
``!apply:`` in a yaml file.

Authors
 * speechbrain-sense developers 2026
"""

import re
from pathlib import Path

import torch

from speechbrain_sense.testing.tiny_models import SENTENCE_DIR, save_model_files


def _english_sentences():
    """The built-in English sentences, blank lines dropped."""
    path = SENTENCE_DIR / "en.txt"
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip()]


def save_tiny_bart(
    out_dir,
    d_model=32,
    layers=1,
    heads=2,
    ffn_dim=64,
    vocab_size=400,
    max_positions=256,
    seed=0,
    texts=None,
):
    """Writes a tiny random BART (``facebook/bart-large``'s architecture).

    Arguments
    ---------
    out_dir : str or Path
        Directory for the model and its tokenizer (created if missing).
    d_model : int
        Model width (1024 in bart-large).
    layers : int
        Encoder and decoder layers (12 each in bart-large).
    heads : int
        Attention heads.
    ffn_dim : int
        Feed-forward width.
    vocab_size : int
        Byte-level BPE vocabulary size (bart-large: 50265).
    max_positions : int
        Longest sequence.
    seed : int
        Seed of the random initialisation.
    texts : list of str, optional
        Tokenizer training text added to the built-in English sentences.

    Returns
    -------
    Path
        ``out_dir``, loadable with ``AutoModelForSeq2SeqLM`` and
        ``AutoTokenizer``.

    Example
    -------
    >>> import tempfile
    >>> from transformers import AutoTokenizer
    >>> d = save_tiny_bart(tempfile.mkdtemp())
    >>> tok = AutoTokenizer.from_pretrained(d)
    >>> tok.decode(tok("The train leaves.")["input_ids"], skip_special_tokens=True)
    'The train leaves.'
    """
    from tokenizers import ByteLevelBPETokenizer
    from transformers import (
        BartConfig,
        BartForConditionalGeneration,
        BartTokenizer,
    )

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        _english_sentences() + list(texts or []),
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        show_progress=False,
    )
    bpe.save_model(str(out_dir))
    tokenizer = BartTokenizer(
        vocab=str(out_dir / "vocab.json"),
        merges=str(out_dir / "merges.txt"),
        model_max_length=max_positions,
    )
    tokenizer.save_pretrained(out_dir)
    config = BartConfig(
        vocab_size=len(tokenizer),
        d_model=d_model,
        encoder_layers=layers,
        decoder_layers=layers,
        encoder_attention_heads=heads,
        decoder_attention_heads=heads,
        encoder_ffn_dim=ffn_dim,
        decoder_ffn_dim=ffn_dim,
        max_position_embeddings=max_positions,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        # bart-large's generation setup: start from </s>, then force <s>.
        decoder_start_token_id=tokenizer.eos_token_id,
        forced_bos_token_id=tokenizer.bos_token_id,
        forced_eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    save_model_files(BartForConditionalGeneration(config), out_dir)
    return out_dir


def save_tiny_mbart50(
    out_dir,
    d_model=16,
    encoder_layers=1,
    decoder_layers=2,
    vocab_size=200,
    src_lang="fr_XX",
    tgt_lang="en_XX",
    seed=0,
    texts=None,
):
    """Writes a tiny random mBART-50 with a real mBART-50 tokenizer.

    Arguments
    ---------
    out_dir : str or Path
        Directory for the model and its tokenizer (created if missing).
    d_model : int
        Model width (1024 in mbart-large-50).
    encoder_layers : int
        Text encoder layers (the speech recipes drop them).
    decoder_layers : int
        Decoder layers.
    vocab_size : int
        SentencePiece pieces before the language codes (a soft limit).
    src_lang : str
        Tokenizer's source language code.
    tgt_lang : str
        Tokenizer's target language code.
    seed : int
        Weight initialisation seed.
    texts : list of str, optional
        Tokenizer training text (default: the package's English sentences).

    Returns
    -------
    Path
        ``out_dir``.
    """
    import io

    import sentencepiece as spm
    from transformers import (
        MBart50Tokenizer,
        MBartConfig,
        MBartForConditionalGeneration,
    )

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_proto = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts or _english_sentences()),
        model_writer=model_proto,
        vocab_size=vocab_size,
        model_type="unigram",
        character_coverage=1.0,
        hard_vocab_limit=False,
        minloglevel=2,
    )
    processor = spm.SentencePieceProcessor(model_proto=model_proto.getvalue())
    # SentencePiece order (<unk> <s> </s> ...): the tokenizer re-maps it
    # to fairseq's and appends the 52 language codes and <mask>.
    vocab = [
        (processor.id_to_piece(i), processor.get_score(i))
        for i in range(processor.get_piece_size())
    ]
    tokenizer = MBart50Tokenizer(
        vocab=vocab, src_lang=src_lang, tgt_lang=tgt_lang
    )
    tokenizer.save_pretrained(out_dir)
    config = MBartConfig(
        vocab_size=len(tokenizer),
        d_model=d_model,
        encoder_layers=encoder_layers,
        decoder_layers=decoder_layers,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=2 * d_model,
        decoder_ffn_dim=2 * d_model,
        max_position_embeddings=64,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.eos_token_id,
        forced_eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    save_model_files(MBartForConditionalGeneration(config), out_dir)
    return out_dir


def save_tiny_bert(
    out_dir,
    hidden_size=32,
    num_layers=2,
    num_heads=2,
    intermediate_size=64,
    max_positions=128,
    seed=0,
):
    """Writes a tiny random BERT encoder with a word-level WordPiece vocab.

    Arguments
    ---------
    out_dir : str or Path
        Directory for the model and its tokenizer.
    hidden_size : int
        Model width.
    num_layers : int
        Transformer layers.
    num_heads : int
        Attention heads.
    intermediate_size : int
        Feed-forward width.
    max_positions : int
        Position table size (the tokenizer truncates 2 below it).
    seed : int
        Seed of the random initialisation.

    Returns
    -------
    Path
        ``out_dir``, loadable with ``AutoModel`` and ``AutoTokenizer``.

    Example
    -------
    >>> import tempfile
    >>> from transformers import AutoTokenizer
    >>> tok = AutoTokenizer.from_pretrained(save_tiny_bert(tempfile.mkdtemp()))
    >>> tok.unk_token_id in tok("the garden")["input_ids"]
    False
    """
    from transformers import BertConfig, BertModel, BertTokenizer

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    words = set()
    for sentence in _english_sentences():
        words.update(re.findall(r"[a-z0-9]+", sentence.lower()))
    letters = "abcdefghijklmnopqrstuvwxyz0123456789"
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokens += sorted(words - set(letters))
    tokens += list(letters + ".,;:!?'\"-()")
    tokens += [f"##{c}" for c in letters]
    tokenizer = BertTokenizer(
        vocab={token: i for i, token in enumerate(tokens)},
        model_max_length=max_positions - 2,
    )
    tokenizer.save_pretrained(out_dir)
    config = BertConfig(
        vocab_size=len(tokens),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=max_positions,
        pad_token_id=0,
    )
    torch.manual_seed(seed)
    save_model_files(BertModel(config), out_dir)
    return out_dir


def _ensure(out_dir, writer, options):
    """Writes a model once, atomically, under a file lock (DDP ranks)."""
    import fcntl
    import os
    import shutil
    import tempfile

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(out_dir.parent / f".{out_dir.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out_dir / "config.json").exists():
            tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=".tiny-"))
            writer(tmp, **options)
            if out_dir.exists():  # an empty or partial leftover
                shutil.rmtree(out_dir)
            os.replace(tmp, out_dir)
    return str(out_dir)


def ensure_tiny_bart(out_dir, **options):
    """``out_dir`` holding :func:`save_tiny_bart`'s model (written if missing).

    Arguments
    ---------
    out_dir : str or Path
        Model directory.
    **options
        Passed to :func:`save_tiny_bart`.

    Returns
    -------
    str
        ``out_dir``.
    """
    return _ensure(out_dir, save_tiny_bart, options)


def ensure_tiny_bert(out_dir, **options):
    """``out_dir`` holding :func:`save_tiny_bert`'s model (written if missing).

    Arguments
    ---------
    out_dir : str or Path
        Model directory.
    **options
        Passed to :func:`save_tiny_bert`.

    Returns
    -------
    str
        ``out_dir``.
    """
    return _ensure(out_dir, save_tiny_bert, options)
