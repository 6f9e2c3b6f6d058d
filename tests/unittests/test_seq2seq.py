"""Text decoders over speech frames (scratch Transformer and HF mBART-50)."""

import pytest
import sentencepiece as spm
import torch

from speechbrain_sense.synthetic.common_voice import load_builtin_sentences
from speechbrain_sense.tasks.seq2seq import (
    PretrainedTextDecoder,
    TransformerTextDecoder,
    label_smoothed_nll,
)
from speechbrain_sense.testing.tiny_text_models import save_tiny_mbart50

TEXTS = ["the cat sleeps", "a dog runs in the park"]


def english_sentences():
    return list(load_builtin_sentences("en"))


@pytest.fixture(scope="module")
def spm_model(tmp_path_factory):
    """A SentencePiece model with the recipes' ids: pad 0 bos 1 eos 2."""
    prefix = tmp_path_factory.mktemp("spm") / "target"
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(english_sentences() + TEXTS),
        model_prefix=str(prefix),
        vocab_size=120,
        model_type="unigram",
        character_coverage=1.0,
        pad_id=0,
        bos_id=1,
        eos_id=2,
        unk_id=3,
        minloglevel=2,
    )
    return prefix.with_suffix(".model")


def tiny_decoder(**options):
    torch.manual_seed(0)
    config = {
        "vocab_size": 120,
        "memory_dim": 6,
        "d_model": 16,
        "nhead": 2,
        "num_layers": 2,
        "d_ffn": 32,
        "dropout": 0.0,
        "max_decode_steps": 8,
    }
    config.update(options)
    return TransformerTextDecoder(**config).eval()


def test_outputs_do_not_depend_on_batch_padding():
    decoder = tiny_decoder()
    lengths = [9, 4, 6]
    memories = [torch.randn(n, 6) for n in lengths]
    tokens = torch.randint(4, 120, (3, 5))
    batch = torch.full((3, 9, 6), 1e3)  # garbage in the padding
    for i, x in enumerate(memories):
        batch[i, : len(x)] = x
    batched = decoder(batch, torch.tensor(lengths), tokens)
    for i, x in enumerate(memories):
        alone = decoder(x[None], torch.tensor([len(x)]), tokens[i : i + 1])
        torch.testing.assert_close(batched[i], alone[0], atol=1e-5, rtol=0)
    hyps = decoder.decode_ids(batch, torch.tensor(lengths), beam_size=3)
    for i, x in enumerate(memories):
        alone = decoder.decode_ids(x[None], torch.tensor([len(x)]), beam_size=3)
        assert hyps[i] == alone[0]


def test_step_u_ignores_later_tokens():
    decoder = tiny_decoder()
    memory, counts = torch.randn(1, 7, 6), torch.tensor([7])
    tokens = torch.randint(4, 120, (1, 6))
    changed = tokens.clone()
    changed[0, 3:] = torch.randint(4, 120, (3,))
    a = decoder(memory, counts, tokens)
    b = decoder(memory, counts, changed)
    torch.testing.assert_close(a[0, :3], b[0, :3])
    assert not torch.allclose(a[0, 3:], b[0, 3:])


def test_log_probs_normalised_and_loss_matches_manual_nll():
    decoder = tiny_decoder(label_smoothing=0.0)
    memory, counts = torch.randn(2, 5, 6), torch.tensor([5, 2])
    targets = torch.tensor([[7, 8, 2], [9, 2, 0]])
    target_counts = torch.tensor([3, 2])
    inputs = decoder.decoder_inputs(targets)
    assert inputs.tolist() == [[1, 7, 8], [1, 9, 2]]
    log_probs = decoder(memory, counts, inputs)
    torch.testing.assert_close(
        log_probs.exp().sum(-1), torch.ones(2, 3), atol=1e-5, rtol=0
    )
    manual = (
        -(
            log_probs[0, 0, 7]
            + log_probs[0, 1, 8]
            + log_probs[0, 2, 2]
            + log_probs[1, 0, 9]
            + log_probs[1, 1, 2]
        )
        / 5
    )
    loss = decoder.loss(memory, counts, targets, target_counts)
    torch.testing.assert_close(loss, manual)


def test_label_smoothing_known_value():
    log_probs = torch.log(torch.tensor([[[0.5, 0.25, 0.25]]]))
    value = label_smoothed_nll(
        log_probs, torch.tensor([[1]]), torch.tensor([1]), 0.1
    )
    uniform = -(torch.log(torch.tensor([0.5, 0.25, 0.25]))).mean()
    expected = 0.9 * torch.log(torch.tensor(4.0)) + 0.1 * uniform
    torch.testing.assert_close(value, expected)


def manual_greedy(decoder, memory, counts, steps):
    """Argmax decoding written out, the reference for the searchers."""
    prefix = torch.tensor([[decoder.bos_index]])
    out = []
    for _ in range(steps):
        token = int(decoder(memory, counts, prefix)[0, -1].argmax())
        if token == decoder.eos_index:
            break
        out.append(token)
        prefix = torch.cat([prefix, torch.tensor([[token]])], dim=1)
    return out


def test_beam_of_one_is_greedy_and_greedy_is_argmax():
    decoder = tiny_decoder()
    # A bias towards eos so that some hypotheses stop before the cap.
    with torch.no_grad():
        decoder.output_projection.bias[decoder.eos_index] = 2.0
    torch.manual_seed(0)
    memory = torch.randn(4, 10, 6)
    counts = torch.tensor([10, 3, 7, 5])
    greedy = decoder.decode_ids(memory, counts, greedy=True)
    beam1 = decoder.decode_ids(memory, counts, beam_size=1)
    assert greedy == beam1
    lengths = set()
    for i in range(4):
        n = int(counts[i])
        expected = manual_greedy(
            decoder, memory[i : i + 1, :n], counts[i : i + 1], 8
        )
        assert greedy[i] == expected
        lengths.add(len(expected))
    assert len(lengths) > 1, "test needs both stopped and capped hypotheses"


def test_decode_length_caps():
    decoder = tiny_decoder(max_decode_steps=3)
    hyps = decoder.decode_ids(torch.randn(2, 10, 6), torch.tensor([10, 4]))
    assert all(len(h) <= 3 for h in hyps)
    decoder = tiny_decoder(max_decode_steps=50, max_decode_ratio=0.5)
    hyps = decoder.decode_ids(torch.randn(2, 10, 6), torch.tensor([10, 4]))
    assert all(len(h) <= 5 for h in hyps)
    assert max(len(h) for h in hyps) == 5  # a random decoder runs on


def test_targets_round_trip_and_decode_returns_strings(spm_model):
    decoder = tiny_decoder(tokenizer=str(spm_model))
    targets, counts = decoder.encode_targets(TEXTS)
    for row, n, text in zip(targets, counts, TEXTS):
        assert row[n - 1] == decoder.eos_index
        assert (row[n:] == decoder.pad_index).all()
        assert decoder.tokenizer.decode(row[: n - 1].tolist()) == text
    hyps = decoder.decode(torch.randn(2, 5, 6), torch.tensor([5, 3]))
    assert len(hyps) == 2 and all(isinstance(h, str) for h in hyps)


def test_overfits_two_pairs_and_beam_search_recovers_them(spm_model):
    """Memorising two translations is the end-to-end check of the path:
    targets, teacher forcing, loss, searcher, detokenisation."""
    decoder = tiny_decoder(tokenizer=str(spm_model), max_decode_steps=20)
    decoder.train()
    torch.manual_seed(1)
    memory, counts = torch.randn(2, 6, 6), torch.tensor([6, 4])
    targets, target_counts = decoder.encode_targets(TEXTS)
    optimizer = torch.optim.Adam(decoder.parameters(), lr=1e-2)
    for _ in range(150):
        optimizer.zero_grad()
        loss = decoder.loss(memory, counts, targets, target_counts)
        loss.backward()
        optimizer.step()
    decoder.eval()
    assert decoder.decode(memory, counts, beam_size=3) == TEXTS
    assert decoder.decode(memory, counts, greedy=True) == TEXTS


def test_bad_inputs_are_errors(spm_model):
    decoder = tiny_decoder()
    with pytest.raises(ValueError, match="at least one frame"):
        decoder(
            torch.randn(2, 4, 6), torch.tensor([4, 0]), torch.ones(2, 1).long()
        )
    with pytest.raises(ValueError, match="exceed"):
        decoder(
            torch.randn(1, 4, 6), torch.tensor([5]), torch.ones(1, 1).long()
        )
    with pytest.raises(ValueError, match="no tokenizer"):
        decoder.encode_targets(["a"])
    wrong = tiny_decoder(vocab_size=99, tokenizer=str(spm_model))
    with pytest.raises(ValueError, match="vocab_size=99"):
        wrong.encode_targets(["a"])


# --------------------------------------------------- pretrained HF decoder
@pytest.fixture(scope="module")
def tiny_mbart50_dir(tmp_path_factory):
    """A random mBART-50 (2 tiny layers) with a real mBART-50 tokenizer."""
    return save_tiny_mbart50(
        tmp_path_factory.mktemp("mbart50"), texts=english_sentences()
    )


def hf_decoder(path, **options):
    torch.manual_seed(0)
    config = {
        "memory_dim": 6,
        "target_language": "en_XX",
        "beam_size": 3,
        "max_new_tokens": 8,
        "label_smoothing": 0.0,
    }
    config.update(options)
    return PretrainedTextDecoder(str(path), **config).eval()


def test_hf_targets_carry_the_language_code(tiny_mbart50_dir):
    decoder = hf_decoder(tiny_mbart50_dir)
    en = decoder.tokenizer.convert_tokens_to_ids("en_XX")
    assert decoder.forced_bos_token_id == en
    targets, counts = decoder.encode_targets(TEXTS)
    eos, pad = decoder.tokenizer.eos_token_id, decoder.tokenizer.pad_token_id
    for row, n, text in zip(targets, counts, TEXTS):
        assert row[0] == en and row[n - 1] == eos and (row[n:] == pad).all()
        assert decoder.tokenizer.decode(row, skip_special_tokens=True) == text
    # mBART-50 starts decoding from </s>, then the language code.
    assert decoder.decoder_inputs(targets)[:, :2].tolist() == [[eos, en]] * 2
    assert len(decoder.model.get_encoder().layers) == 0
    # Only the shared token embedding of the text encoder still trains.
    trainable = [
        name
        for name, p in decoder.model.get_encoder().named_parameters()
        if p.requires_grad
    ]
    assert trainable == ["embed_tokens.weight"]
    assert decoder.model.get_input_embeddings().weight.requires_grad


def test_hf_decoder_padding_invariance_and_loss(tiny_mbart50_dir):
    decoder = hf_decoder(tiny_mbart50_dir)
    targets, target_counts = decoder.encode_targets(TEXTS)
    inputs = decoder.decoder_inputs(targets)
    lengths = [7, 3]
    batch = torch.full((2, 7, 6), 1e3)
    memories = [torch.randn(n, 6) for n in lengths]
    for i, x in enumerate(memories):
        batch[i, : len(x)] = x
    batched = decoder(batch, torch.tensor(lengths), inputs)
    for i, x in enumerate(memories):
        alone = decoder(x[None], torch.tensor([len(x)]), inputs[i : i + 1])
        torch.testing.assert_close(batched[i], alone[0], atol=1e-4, rtol=0)
    loss = decoder.loss(batch, torch.tensor(lengths), targets, target_counts)
    mask = torch.arange(targets.shape[1]) < target_counts[:, None]
    picked = batched.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(loss, -(picked * mask).sum() / mask.sum())


def test_hf_generate_forces_language_and_returns_strings(tiny_mbart50_dir):
    decoder = hf_decoder(tiny_mbart50_dir)
    memory, counts = torch.randn(2, 5, 6), torch.tensor([5, 2])
    en = decoder.tokenizer.convert_tokens_to_ids("en_XX")
    for greedy in (True, False):
        ids = decoder.decode_ids(memory, counts, greedy=greedy)
        assert all(row[1] == en for row in ids)
    hyps = decoder.decode(memory, counts)
    assert len(hyps) == 2 and all(isinstance(h, str) for h in hyps)
    assert all("en_XX" not in h for h in hyps)


def test_hf_decoder_learns_two_pairs(tiny_mbart50_dir):
    decoder = hf_decoder(tiny_mbart50_dir, max_new_tokens=20)
    decoder.train()
    torch.manual_seed(1)
    memory, counts = torch.randn(2, 6, 6), torch.tensor([6, 4])
    targets, target_counts = decoder.encode_targets(TEXTS)
    optimizer = torch.optim.Adam(decoder.parameters(), lr=1e-2)
    for _ in range(150):
        optimizer.zero_grad()
        decoder.loss(memory, counts, targets, target_counts).backward()
        optimizer.step()
    decoder.eval()
    assert decoder.decode(memory, counts) == TEXTS


def test_hf_unknown_language_is_an_error(tiny_mbart50_dir):
    with pytest.raises(ValueError, match="xx_YY"):
        hf_decoder(tiny_mbart50_dir, target_language="xx_YY")
