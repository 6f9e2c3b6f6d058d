"""Tokenizers for Backpack LMs: GPT-2 BPE from disk, or a SentencePiece.

The published ``stanfordnlp/backpack-gpt2`` reads GPT-2's byte-level BPE;
:meth:`BackpackTokenizer.from_pretrained` loads it (or any other
``transformers`` tokenizer) from a local directory. When no such directory
is given, :meth:`BackpackTokenizer.train_sentencepiece` trains a
SentencePiece model on the training text instead. Both are used through the
same small interface: ``encode`` / ``decode``, the special ids, and
``save_pretrained`` into the directory that holds the model weights, so a
Backpack directory is self-contained.

Sentences are framed as ``[bos] pieces [eos]`` by :meth:`encode_sentence`;
the pretraining recipe packs such frames into blocks, so a sentence seen at
adaptation time looks like a document seen at pretraining time.

Authors
 * speechbrain-sense developers 2026
"""

from __future__ import annotations

import io
import json
from pathlib import Path

__all__ = ["SENTENCEPIECE_FILE", "BackpackTokenizer", "build_tokenizer"]

# The file name ``transformers`` uses for SentencePiece models (Llama, T5).
SENTENCEPIECE_FILE = "tokenizer.model"
# SentencePiece special ids; pad is 0 so padded batches need no remapping.
_SP_SPECIALS = {"pad_id": 0, "unk_id": 1, "bos_id": 2, "eos_id": 3}


class BackpackTokenizer:
    """Text <-> token ids, backed by SentencePiece or ``transformers``.

    Build it with :meth:`from_pretrained` or :meth:`train_sentencepiece`.

    Arguments
    ---------
    backend : sentencepiece.SentencePieceProcessor or PreTrainedTokenizer
        The wrapped tokenizer.
    source : str or Path, optional
        Where it was loaded from (for messages and ``save_pretrained``).

    Example
    -------
    >>> texts = ["the cat sat on the mat", "le chat est sur le tapis"] * 20
    >>> tok = BackpackTokenizer.train_sentencepiece(texts, vocab_size=40)
    >>> ids = tok.encode_sentence("the cat")
    >>> ids[0] == tok.bos_id and ids[-1] == tok.eos_id
    True
    >>> tok.decode(ids)
    'the cat'
    """

    def __init__(self, backend, source=None):
        self.backend = backend
        self.source = source
        self.kind = "sentencepiece" if _is_sentencepiece(backend) else "hf"
        if self.kind == "sentencepiece":
            self.bos_id = backend.bos_id()
            self.eos_id = backend.eos_id()
            self.pad_id = backend.pad_id()
            self.vocab_size = backend.get_piece_size()
        else:
            # GPT-2 has one special token, <|endoftext|>, used as both.
            eos = backend.eos_token_id
            bos = backend.bos_token_id
            if eos is None:
                raise ValueError(
                    f"tokenizer in {source} has no eos token; a Backpack "
                    "needs one to frame sentences"
                )
            self.eos_id = eos
            self.bos_id = eos if bos is None else bos
            pad = backend.pad_token_id
            self.pad_id = eos if pad is None else pad
            self.vocab_size = len(backend)

    @classmethod
    def from_pretrained(cls, path) -> BackpackTokenizer:
        """Load a tokenizer from a local directory (or a ``.model`` file).

        A directory holding ``tokenizer.model`` and no ``tokenizer.json`` is
        read as SentencePiece; anything else goes to
        ``transformers.AutoTokenizer`` with ``local_files_only`` (e.g. the
        ``gpt2`` or ``stanfordnlp/backpack-gpt2`` tokenizer files).

        Arguments
        ---------
        path : str or Path
            Directory, or a SentencePiece ``.model`` file.

        Returns
        -------
        BackpackTokenizer
        """
        path = Path(path)
        sp_file = None
        if path.is_file() and path.suffix == ".model":
            sp_file = path
        elif (path / SENTENCEPIECE_FILE).is_file() and not (
            path / "tokenizer.json"
        ).is_file():
            sp_file = path / SENTENCEPIECE_FILE
        if sp_file is not None:
            import sentencepiece as spm

            return cls(
                spm.SentencePieceProcessor(model_file=str(sp_file)), path
            )
        if not path.is_dir():
            raise FileNotFoundError(f"no tokenizer directory at {path}")
        from transformers import AutoTokenizer

        return cls(
            AutoTokenizer.from_pretrained(path, local_files_only=True), path
        )

    @classmethod
    def train_sentencepiece(
        cls,
        texts,
        vocab_size,
        save_dir=None,
        model_type="unigram",
        character_coverage=1.0,
        max_sentences=2_000_000,
        seed=0,
    ) -> BackpackTokenizer:
        """Train a SentencePiece model on an iterable of sentences.

        ``vocab_size`` is an upper bound: on a small corpus the model keeps
        as many pieces as the text supports (``hard_vocab_limit=False``), so
        tiny test corpora work with any setting.

        Arguments
        ---------
        texts : iterable of str
            Training sentences (one per item).
        vocab_size : int
            Maximum number of pieces, specials included.
        save_dir : str or Path, optional
            Also write ``tokenizer.model`` there.
        model_type : str
            "unigram" or "bpe".
        character_coverage : float
            1.0 keeps every character (accented Latin letters included).
        max_sentences : int
            Sentences sampled for training when the corpus is larger.
        seed : int
            Seed of that sampling.

        Returns
        -------
        BackpackTokenizer
        """
        import sentencepiece as spm

        sentences = [t.strip() for t in texts if t.strip()]
        if not sentences:
            raise ValueError("no text to train the SentencePiece model on")
        model = io.BytesIO()
        spm.set_random_generator_seed(seed)
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences),
            model_writer=model,
            vocab_size=vocab_size,
            hard_vocab_limit=False,
            model_type=model_type,
            character_coverage=character_coverage,
            input_sentence_size=max_sentences,
            shuffle_input_sentence=True,
            # Long WikiText paragraphs would otherwise be skipped.
            max_sentence_length=1 << 16,
            num_threads=1,
            minloglevel=2,
            **_SP_SPECIALS,
        )
        processor = spm.SentencePieceProcessor(model_proto=model.getvalue())
        tokenizer = cls(processor)
        if save_dir is not None:
            tokenizer.save_pretrained(save_dir)
        return tokenizer

    def encode(self, text) -> list[int]:
        """Token ids of ``text``, without specials.

        Arguments
        ---------
        text : str
            The text.

        Returns
        -------
        list of int
        """
        if self.kind == "sentencepiece":
            return self.backend.encode(text)
        return self.backend.encode(text, add_special_tokens=False)

    def encode_sentence(self, text, max_length=None) -> list[int]:
        """``[bos] + encode(text) + [eos]``, truncated to ``max_length``.

        Truncation keeps the final ``eos``, whose state is the sentence's
        context view.

        Arguments
        ---------
        text : str
            The sentence.
        max_length : int, optional
            Most ids kept, ``bos`` and ``eos`` included (at least 2).

        Returns
        -------
        list of int
        """
        ids = [self.bos_id, *self.encode(text), self.eos_id]
        if max_length is not None and len(ids) > max_length:
            if max_length < 2:
                raise ValueError(f"max_length={max_length} < 2")
            ids = ids[: max_length - 1] + [self.eos_id]
        return ids

    def encode_word(self, word) -> list[int]:
        """Ids of ``word`` as it is tokenised inside a sentence.

        SentencePiece marks word starts itself; byte-level BPE needs the
        leading space that a word after another word carries.

        Arguments
        ---------
        word : str
            One word, without spaces.

        Returns
        -------
        list of int
        """
        if self.kind == "sentencepiece":
            return self.backend.encode(word)
        return self.backend.encode(" " + word, add_special_tokens=False)

    def decode(self, ids) -> str:
        """Text of ``ids``, specials dropped.

        Arguments
        ---------
        ids : iterable of int
            Token ids (a tensor works too).

        Returns
        -------
        str
        """
        ids = [int(i) for i in ids]
        if self.kind == "sentencepiece":
            specials = {self.bos_id, self.eos_id, self.pad_id}
            return self.backend.decode([i for i in ids if i not in specials])
        return self.backend.decode(ids, skip_special_tokens=True)

    def save_pretrained(self, save_dir):
        """Write the tokenizer files into ``save_dir`` (created if needed).

        Arguments
        ---------
        save_dir : str or Path
            The folder; :meth:`from_pretrained` reads it back.
        """
        save_dir = Path(save_dir)
        save_dir.mkdir(parents=True, exist_ok=True)
        if self.kind == "sentencepiece":
            target = save_dir / SENTENCEPIECE_FILE
            proto = self.backend.serialized_model_proto()
            if not (target.is_file() and target.read_bytes() == proto):
                target.write_bytes(proto)
        else:
            self.backend.save_pretrained(save_dir)

    def __len__(self):
        """Vocabulary size, specials included.

        Returns
        -------
        int
        """
        return self.vocab_size

    def __repr__(self):
        """Kind, vocabulary size and source, e.g. for logs.

        Returns
        -------
        str
        """
        return (
            f"BackpackTokenizer(kind={self.kind!r}, "
            f"vocab_size={self.vocab_size}, source={self.source!r})"
        )


def build_tokenizer(
    save_dir,
    source=None,
    text_file=None,
    vocab_size=8000,
    model_type="unigram",
    seed=0,
):
    """The tokenizer of a training run, made once and kept in ``save_dir``.

    With ``source`` (a local GPT-2 BPE directory, say), that tokenizer is
    copied into ``save_dir``; otherwise a SentencePiece model is trained on
    ``text_file`` (one sentence a line). A second call with the same
    arguments reuses ``save_dir``; changed arguments rebuild it.

    Arguments
    ---------
    save_dir : str or Path
        Where the tokenizer files (and ``tokenizer_options.json``) go.
    source : str or Path, optional
        Existing tokenizer directory or ``.model`` file.
    text_file : str or Path, optional
        Training text for SentencePiece (needed when ``source`` is None).
    vocab_size : int
        SentencePiece vocabulary bound.
    model_type : str
        SentencePiece "unigram" or "bpe".
    seed : int
        SentencePiece sampling seed.

    Returns
    -------
    BackpackTokenizer
    """
    save_dir = Path(save_dir)
    options = {
        "source": None if source is None else str(Path(source).resolve()),
        "text_file": None if text_file is None else str(text_file),
        "vocab_size": vocab_size,
        "model_type": model_type,
        "seed": seed,
    }
    options_file = save_dir / "tokenizer_options.json"
    if (
        options_file.is_file()
        and json.loads(options_file.read_text()) == options
    ):
        return BackpackTokenizer.from_pretrained(save_dir)
    if source is not None:
        tokenizer = BackpackTokenizer.from_pretrained(source)
        tokenizer.save_pretrained(save_dir)
    else:
        if text_file is None:
            raise ValueError("build_tokenizer needs a source or a text_file")
        with open(text_file, encoding="utf-8") as f:
            tokenizer = BackpackTokenizer.train_sentencepiece(
                f, vocab_size, save_dir, model_type=model_type, seed=seed
            )
    options_file.write_text(json.dumps(options, indent=1))
    return BackpackTokenizer.from_pretrained(save_dir)


def _is_sentencepiece(backend):
    """Whether ``backend`` is a SentencePiece processor."""
    try:
        import sentencepiece as spm
    except ImportError:  # pragma: no cover - installed with the package
        return False
    return isinstance(backend, spm.SentencePieceProcessor)
