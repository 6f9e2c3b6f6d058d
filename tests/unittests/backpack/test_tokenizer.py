"""Tests for ``speechbrain_sense.backpack.tokenizer``."""

import pytest

from speechbrain_sense.backpack.tokenizer import (
    SENTENCEPIECE_FILE,
    BackpackTokenizer,
    build_tokenizer,
)

TEXTS = [
    "the cat sat on the mat",
    "le chat est sur le tapis",
    "a dog sees the house",
    "un chien voit la maison",
    "élève très âgé, où ça ?",
] * 20


def test_sentencepiece_roundtrip_and_specials(tmp_path):
    # vocab_size is only a bound: this corpus supports far fewer pieces.
    tok = BackpackTokenizer.train_sentencepiece(
        TEXTS, vocab_size=8000, save_dir=tmp_path
    )
    assert tok.kind == "sentencepiece"
    assert (tok.pad_id, tok.bos_id, tok.eos_id) == (0, 2, 3)
    assert 20 < tok.vocab_size < 8000
    for text in TEXTS[:5]:
        ids = tok.encode_sentence(text)
        assert ids[0] == tok.bos_id and ids[-1] == tok.eos_id
        assert tok.decode(ids) == text
    loaded = BackpackTokenizer.from_pretrained(tmp_path)
    assert loaded.encode(TEXTS[4]) == tok.encode(TEXTS[4])
    # The .model file itself works too.
    by_file = BackpackTokenizer.from_pretrained(tmp_path / SENTENCEPIECE_FILE)
    assert by_file.vocab_size == tok.vocab_size


def test_truncation_keeps_eos():
    tok = BackpackTokenizer.train_sentencepiece(TEXTS, vocab_size=40)
    ids = tok.encode_sentence("the cat sat on the mat " * 5, max_length=6)
    assert len(ids) == 6 and ids[0] == tok.bos_id and ids[-1] == tok.eos_id
    with pytest.raises(ValueError):
        tok.encode_sentence("the cat", max_length=1)
    assert tok.encode_word("chat") == tok.encode("chat")


def test_gpt2_style_tokenizer_from_local_dir(tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    transformers = pytest.importorskip("transformers")
    bpe = tokenizers.ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        TEXTS, vocab_size=300, special_tokens=["<|endoftext|>"]
    )
    hf = transformers.GPT2TokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    hf.save_pretrained(tmp_path)
    tok = BackpackTokenizer.from_pretrained(tmp_path)
    assert tok.kind == "hf"
    eot = hf.convert_tokens_to_ids("<|endoftext|>")
    # GPT-2 has no pad or separate bos: <|endoftext|> frames sentences.
    assert tok.bos_id == tok.eos_id == tok.pad_id == eot
    assert tok.vocab_size == len(hf)
    ids = tok.encode_sentence("the cat")
    assert ids[0] == ids[-1] == eot
    assert tok.decode(ids) == "the cat"
    # Inside a sentence a word carries its leading space (byte-level BPE).
    assert tok.encode_word("cat") == hf.encode(" cat")
    tok.save_pretrained(tmp_path / "copy")
    assert BackpackTokenizer.from_pretrained(tmp_path / "copy").kind == "hf"


def test_build_tokenizer_is_idempotent(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("\n".join(TEXTS) + "\n")
    folder = tmp_path / "tok"
    first = build_tokenizer(folder, text_file=text, vocab_size=40)
    model_file = folder / SENTENCEPIECE_FILE
    stamp = model_file.stat().st_mtime_ns
    again = build_tokenizer(folder, text_file=text, vocab_size=40)
    assert model_file.stat().st_mtime_ns == stamp
    assert again.encode(TEXTS[0]) == first.encode(TEXTS[0])
    # A changed option rebuilds.
    bigger = build_tokenizer(folder, text_file=text, vocab_size=60)
    assert bigger.vocab_size > first.vocab_size
    # An existing tokenizer is copied, not retrained.
    copied = build_tokenizer(tmp_path / "copy", source=folder, vocab_size=60)
    assert copied.encode(TEXTS[1]) == bigger.encode(TEXTS[1])
    with pytest.raises(ValueError, match="source or a text_file"):
        build_tokenizer(tmp_path / "none")
    with pytest.raises(FileNotFoundError):
        BackpackTokenizer.from_pretrained(tmp_path / "missing")
