"""Tests for ``speechbrain_sense.sensia.zero_shot`` with known answers.

Fixture files in each public format are written here; the models are a tiny
random Backpack (for agreement with a hand computation from its logits) and
a bigram model whose logits depend on the last input token only, so that
scores are known in closed form whatever the truncation.
"""

import json
import math
import re
import subprocess
import sys

import pytest
import torch
from torch import nn

from speechbrain_sense.backpack import BackpackConfig, BackpackLM
from speechbrain_sense.backpack.tokenizer import BackpackTokenizer
from speechbrain_sense.sensia.zero_shot import (
    BenchmarkFormatError,
    MultipleChoiceItem,
    authors_flores_perplexity,
    continuation_log_likelihoods,
    evaluate_all,
    evaluate_multiple_choice,
    flores_perplexity,
    format_results,
    load_belebele,
    load_flores,
    load_xcopa,
    load_xstorycloze,
    main,
    multiple_choice_metrics,
    score_choices,
)

TINY = {
    "vocab_size": 80,
    "n_positions": 64,
    "n_embd": 16,
    "n_layer": 1,
    "n_head": 2,
    "num_senses": 4,
    "dropout": 0.0,
}
TEXTS = [
    "the man broke his toe because he dropped a hammer",
    "the girl found a bug so she screamed loudly",
    "le garçon avait faim donc il a mangé une pomme",
    "la petite a trouvé un insecte et elle a crié",
]


def tiny_model(seed=0, **overrides):
    torch.manual_seed(seed)
    return BackpackLM(BackpackConfig(**{**TINY, **overrides})).eval()


@pytest.fixture(scope="module")
def tokenizer():
    return BackpackTokenizer.train_sentencepiece(TEXTS * 10, vocab_size=70)


class CharTokenizer:
    """One token per character (code point < 256); specials above."""

    vocab_size = 259
    pad_id, bos_id, eos_id = 256, 257, 258

    def encode(self, text):
        return [ord(c) for c in text]


class BigramLM(nn.Module):
    """Logits of the next token depend on the current token only."""

    def __init__(self, table):
        super().__init__()
        self.table = nn.Parameter(table)  # [V, V]

    def forward(self, ids, attention_mask=None):
        return self.table[ids]  # [B, T] -> [B, T, V]


def preferring(token_bias, vocab=259):
    """A bigram model whose every row is ``token_bias`` on top of zeros."""
    row = torch.zeros(vocab)
    for token, bias in token_bias.items():
        row[token] = bias
    return BigramLM(row.expand(vocab, vocab).clone())


def hand_log_likelihood(model, context_ids, target_ids):
    """Forward of context + target (bar the last), log_softmax, gather."""
    ids = context_ids + target_ids
    with torch.no_grad():
        logits = model(torch.tensor([ids[:-1]])).logits[0]  # [T - 1, V]
    logp = torch.log_softmax(logits.double(), dim=-1)
    return sum(
        float(logp[t - 1, ids[t]]) for t in range(len(context_ids), len(ids))
    )


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def jsonl(records):
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


XCOPA_IT = [
    {
        "premise": "L'uomo si è rotto una gamba.",
        "choice1": "Ha fatto cadere un martello sul piede.",
        "choice2": "Ha rotto il bicchiere.",
        "question": "cause",
        "label": 0,
        "idx": 1,
    },
    {
        "premise": "La ragazza ha trovato un insetto nei cereali.",
        "choice1": "Ha versato il latte.",
        "choice2": "Ha perso l'appetito.",
        "question": "effect",
        "label": 1,
        "idx": 2,
    },
]
BELEBELE = [
    {
        "link": "https://en.wikibooks.org/wiki/x",
        "question_number": 1,
        "flores_passage": "Le chat dort sur le tapis. Il fait beau.",
        "question": " Où dort le chat ? ",
        "mc_answer1": "Sur le lit",
        "mc_answer2": "Sur le tapis",
        "mc_answer3": "Dehors",
        "mc_answer4": "Dans la cuisine",
        "correct_answer_num": "2",
        "dialect": "fra_Latn",
        "ds": "2023-05-03",
    }
]
STORY_HEADER = (
    "InputStoryid\tInputSentence1\tInputSentence2\tInputSentence3\t"
    "InputSentence4\tRandomFifthSentenceQuiz1\tRandomFifthSentenceQuiz2\t"
    "AnswerRightEnding\n"
)
STORY_ROW = (
    "id-1\tКот проснулся.\tОн был голоден.\tОн пошёл на кухню.\t"
    "Миска была пуста.\tОн мяукнул.\tОн полетел.\t1\n"
)


# ----------------------------------------------------------------------
# Loaders
# ----------------------------------------------------------------------


def test_xcopa_prompts_follow_the_harness(tmp_path):
    path = write(tmp_path / "data/it/test.it.jsonl", jsonl(XCOPA_IT) + "\n")
    items = load_xcopa(path)
    assert [i.context for i in items] == [
        "L'uomo si è rotto una gamba perché",
        "La ragazza ha trovato un insetto nei cereali quindi",
    ]
    assert items[0].choices == (
        "ha fatto cadere un martello sul piede.",
        "ha rotto il bicchiere.",
    )
    assert [i.label for i in items] == [0, 1]
    assert items[1].origin == f"{path}:2"
    zh = {
        **XCOPA_IT[0],
        "premise": "男人的脚趾骨折了。",
        "choice1": "他摔了锤子。",
    }
    path = write(tmp_path / "test.zh.jsonl", jsonl([zh]))
    assert load_xcopa(path)[0].context == "男人的脚趾骨折了 因为"
    # No language in the name: English (COPA) connectors.
    path = write(tmp_path / "copa.jsonl", jsonl([XCOPA_IT[1]]))
    assert load_xcopa(path)[0].context.endswith("cereali therefore")
    with pytest.raises(ValueError, match="no XCOPA connectors for .*'xx'"):
        load_xcopa(path, lang="xx")


@pytest.mark.parametrize(
    "line2, message",
    [
        (
            {"premise": "P.", "choice1": "a", "question": "cause", "label": 0},
            "missing field 'choice2'",
        ),
        ({**XCOPA_IT[0], "label": 2}, r"label must be one of \[0, 1\], got 2"),
        ({**XCOPA_IT[0], "label": True}, "label must be one of"),
        ({**XCOPA_IT[0], "question": "why"}, "question must be 'cause'"),
        ({**XCOPA_IT[0], "choice1": "  "}, "field 'choice1' is empty"),
        ([1, 2], "expected a JSON object"),
    ],
    ids=["missing", "label", "bool-label", "question", "empty", "not-object"],
)
def test_xcopa_malformed_names_file_and_line(tmp_path, line2, message):
    path = write(tmp_path / "test.it.jsonl", jsonl([XCOPA_IT[0], line2]))
    with pytest.raises(
        BenchmarkFormatError, match=rf"{re.escape(str(path))}:2: {message}"
    ):
        load_xcopa(path)


def test_jsonl_bad_bytes_bad_json_and_empty_file(tmp_path):
    good = jsonl([XCOPA_IT[0]]).encode()
    path = write(tmp_path / "test.it.jsonl", good + b'{"premise": "\xff"}\n')
    with pytest.raises(
        BenchmarkFormatError,
        match=rf"{re.escape(str(path))}:2: not valid UTF-8",
    ):
        load_xcopa(path)
    path = write(tmp_path / "b.jsonl", "\n" + jsonl(BELEBELE) + "{oops\n")
    with pytest.raises(
        BenchmarkFormatError, match=rf"{re.escape(str(path))}:3: not valid JSON"
    ):
        load_belebele(path)
    path = write(tmp_path / "empty.jsonl", "\n\n")
    with pytest.raises(BenchmarkFormatError, match="no items"):
        load_belebele(path)
    with pytest.raises(FileNotFoundError, match="Belebele file .*not found"):
        load_belebele(tmp_path / "missing.jsonl")


def test_xstorycloze_tsv_csv_and_snake_case(tmp_path):
    path = write(
        tmp_path / "ru/spring2016.val.ru.tsv.split_20_80_eval.tsv",
        STORY_HEADER + STORY_ROW + "\n",
    )
    (item,) = load_xstorycloze(path)
    assert item.context == (
        "Кот проснулся. Он был голоден. Он пошёл на кухню. Миска была пуста."
    )
    assert item.choices == ("Он мяукнул.", "Он полетел.")
    assert item.label == 0
    assert item.origin == f"{path}:2"
    # The English StoryCloze CSV: commas, quoted fields with commas/quotes.
    csv_text = (
        STORY_HEADER.replace("\t", ",")
        + 'a1,Tom woke up.,"He said, ""hi.""",He ate.,He left.,'
        "He was happy.,He was a cat.,2\n"
    )
    (item,) = load_xstorycloze(write(tmp_path / "val.csv", csv_text))
    assert item.context == 'Tom woke up. He said, "hi." He ate. He left.'
    assert item.label == 1
    snake = (
        "story_id\tinput_sentence_1\tinput_sentence_2\tinput_sentence_3\t"
        "input_sentence_4\tsentence_quiz1\tsentence_quiz2\t"
        "answer_right_ending\n"
    )
    path = write(tmp_path / "hf.tsv", snake + STORY_ROW)
    assert load_xstorycloze(path)[0].choices[1] == "Он полетел."


@pytest.mark.parametrize(
    "rows, line, message",
    [
        (
            STORY_ROW + "id-2\tonly\tfour\tcolumns\n",
            3,
            "expected 8 columns, got 4",
        ),
        (STORY_ROW.replace("\t1\n", "\t3\n"), 2, "AnswerRightEnding must be"),
        (STORY_ROW.replace("\t1\n", "\t\n"), 2, "AnswerRightEnding must be"),
        (
            STORY_ROW.replace("Он полетел.", " "),
            2,
            "field 'RandomFifthSentenceQuiz2' is empty",
        ),
    ],
    ids=["columns", "label", "no-label", "empty-ending"],
)
def test_xstorycloze_malformed_names_file_and_line(
    tmp_path, rows, line, message
):
    path = write(tmp_path / "s.tsv", STORY_HEADER + rows)
    with pytest.raises(
        BenchmarkFormatError, match=rf"{re.escape(str(path))}:{line}: {message}"
    ):
        load_xstorycloze(path)


def test_xstorycloze_bad_header_and_bytes(tmp_path):
    path = write(tmp_path / "s.tsv", STORY_ROW)
    with pytest.raises(
        BenchmarkFormatError,
        match=rf"{re.escape(str(path))}:1: not an XStoryCloze header",
    ):
        load_xstorycloze(path)
    path = write(tmp_path / "t.tsv", STORY_HEADER.encode() + b"\xc3(\n")
    with pytest.raises(
        BenchmarkFormatError,
        match=rf"{re.escape(str(path))}:2: not valid UTF-8",
    ):
        load_xstorycloze(path)


def test_belebele_cloze_prompt(tmp_path):
    path = write(tmp_path / "fra_Latn.jsonl", jsonl(BELEBELE))
    (item,) = load_belebele(path)
    assert item.context == (
        "P: Le chat dort sur le tapis. Il fait beau.\nQ: Où dort le chat ?\nA:"
    )
    assert item.choices == (
        "Sur le lit",
        "Sur le tapis",
        "Dehors",
        "Dans la cuisine",
    )
    assert item.label == 1
    bad = [BELEBELE[0], {**BELEBELE[0], "correct_answer_num": "5"}]
    path = write(tmp_path / "bad.jsonl", jsonl(bad))
    with pytest.raises(
        BenchmarkFormatError,
        match=rf"{re.escape(str(path))}:2: correct_answer_num",
    ):
        load_belebele(path)
    missing = {k: v for k, v in BELEBELE[0].items() if k != "mc_answer3"}
    path = write(tmp_path / "bad2.jsonl", jsonl([missing]))
    with pytest.raises(
        BenchmarkFormatError,
        match=rf"{re.escape(str(path))}:1: missing field 'mc_answer3'",
    ):
        load_belebele(path)


def test_flores_folder_file_and_errors(tmp_path):
    root = tmp_path / "flores200_dataset"
    write(root / "dev/fra_Latn.dev", "Une phrase.\nDeux.\n")
    write(root / "devtest/fra_Latn.devtest", "Le test.\nÉté chaud.\nFin.\n")
    assert load_flores(root, "fra_Latn") == ["Le test.", "Été chaud.", "Fin."]
    assert load_flores(root, "fra_Latn", "dev") == ["Une phrase.", "Deux."]
    assert load_flores(root / "dev/fra_Latn.dev") == ["Une phrase.", "Deux."]
    with pytest.raises(
        ValueError, match="is a folder: name the FLORES language"
    ):
        load_flores(root)
    with pytest.raises(FileNotFoundError, match="no FLORES file for deu_Latn"):
        load_flores(root, "deu_Latn")
    path = write(tmp_path / "blank.txt", "one\n\nthree\n")
    with pytest.raises(
        BenchmarkFormatError, match=rf"{re.escape(str(path))}:2: empty line"
    ):
        load_flores(path)
    path = write(tmp_path / "latin1.txt", b"ok\n" + "été\n".encode("latin-1"))
    with pytest.raises(
        BenchmarkFormatError,
        match=rf"{re.escape(str(path))}:2: not valid UTF-8",
    ):
        load_flores(path)


# ----------------------------------------------------------------------
# Scoring
# ----------------------------------------------------------------------


def test_choice_log_likelihood_matches_hand_computation(tokenizer):
    model = tiny_model()
    item = MultipleChoiceItem(
        "the man broke his toe because", ("he dropped a hammer", "so she"), 0
    )
    scores = score_choices(model, tokenizer, [item])[0]
    context = [tokenizer.bos_id, *tokenizer.encode(item.context)]
    for choice, score in zip(item.choices, scores):
        target = tokenizer.encode(" " + choice)
        assert len(target) >= 2
        want = hand_log_likelihood(model, context, target)
        assert score == pytest.approx(want, abs=1e-5)
    assert scores[0] != pytest.approx(scores[1], abs=1e-3)


def test_scores_do_not_depend_on_batching_or_padding(tokenizer):
    model = tiny_model(seed=1)
    items = [
        MultipleChoiceItem("the girl", ("found a bug so she screamed", "a"), 0),
        MultipleChoiceItem(
            "le garçon avait faim donc il a mangé",
            ("une pomme", "la petite"),
            1,
        ),
        MultipleChoiceItem("la", ("petite a trouvé un insecte", "le"), 0),
    ]
    batched = score_choices(model, tokenizer, items, batch_size=6)
    one_by_one = score_choices(model, tokenizer, items, batch_size=1)
    alone = [score_choices(model, tokenizer, [item])[0] for item in items]
    for a, b, c in zip(batched, one_by_one, alone):
        assert a == pytest.approx(b, abs=1e-5)
        assert a == pytest.approx(c, abs=1e-5)


def test_eval_mode_no_grad_and_mode_restored(tokenizer):
    model = tiny_model(seed=2, dropout=0.5).train()
    item = MultipleChoiceItem("the man", ("broke his toe", "found"), 0)
    first = score_choices(model, tokenizer, [item])
    second = score_choices(model, tokenizer, [item])
    assert first == second  # dropout was off
    assert model.training  # and the caller's mode is back
    model.eval()
    want = hand_log_likelihood(
        model,
        [tokenizer.bos_id, *tokenizer.encode("the man")],
        tokenizer.encode(" broke his toe"),
    )
    assert first[0][0] == pytest.approx(want, abs=1e-5)
    assert all(p.grad is None for p in model.parameters())


def test_long_context_is_left_truncated_choice_kept_whole(tokenizer):
    model = tiny_model(seed=3, n_positions=12)
    context_text = " ".join(TEXTS[:2])
    item = MultipleChoiceItem(context_text, ("a hammer", "bug"), 0)
    context = [tokenizer.bos_id, *tokenizer.encode(context_text)]
    target = tokenizer.encode(" a hammer")
    assert 1 < len(target) < 12 < len(context) + len(target) - 1
    # By hand: the last 12 input tokens (the final target is not input).
    window = (context + target)[-13:]
    want = hand_log_likelihood(model, window[: -len(target)], target)
    result = evaluate_multiple_choice(model, tokenizer, [item], batch_size=2)
    assert result["truncated"] == 1
    assert score_choices(model, tokenizer, [item])[0][0] == pytest.approx(
        want, abs=1e-5
    )


def test_window_pieces_neither_lose_nor_repeat_tokens():
    # A bigram model's log-likelihood is a sum over token pairs: it must
    # come out the same for any window size, long targets included.
    torch.manual_seed(0)
    model = BigramLM(torch.randn(20, 20))
    context, target = [1, 2, 3], [4, 5, 6, 7, 8, 9, 10, 11, 12, 13]
    logp = torch.log_softmax(model.table.detach().double(), dim=-1)
    full = context + target
    want = sum(float(logp[full[t - 1], full[t]]) for t in range(3, len(full)))
    for max_length in (1, 2, 3, 5, 12, 50):
        (got,) = continuation_log_likelihoods(
            model, [(context, target)], pad_id=0, max_length=max_length
        )
        assert got == pytest.approx(want, abs=1e-5), max_length


def test_rigged_model_gives_accuracy_one_and_zero():
    tok = CharTokenizer()
    model = preferring({ord("a"): 8.0, ord(" "): 8.0})
    right = [
        MultipleChoiceItem("q", ("aaaa", "bbbb"), 0),
        MultipleChoiceItem("q", ("abc", "aaa", "xyz"), 1),
    ]
    wrong = [
        MultipleChoiceItem(i.context, i.choices, i.label + 1) for i in right
    ]
    opts = {"max_length": 32}
    assert evaluate_multiple_choice(model, tok, right, **opts)["acc"] == 1.0
    result = evaluate_multiple_choice(model, tok, wrong, **opts)
    assert result["acc"] == result["acc_norm"] == 0.0
    assert result["items"] == 2 and result["truncated"] == 0


def test_acc_and_acc_norm_differ_on_a_constructed_case():
    tok = CharTokenizer()
    # log p(a) = log p(space) = -1.32, log p(b) = -6.32 (V = 259).
    model = preferring({ord("a"): 5.0, ord(" "): 5.0})
    item = MultipleChoiceItem("q", ("b", "a" * 20), 1)
    scores = score_choices(model, tok, [item], max_length=64)[0]
    # Raw: " b" (-7.6) beats 21 likely tokens (-27.7); per character the
    # long choice wins (-1.4 vs -7.6).
    assert scores[0] > scores[1]
    assert scores[1] / 20 > scores[0] / 1
    result = evaluate_multiple_choice(model, tok, [item], max_length=64)
    assert result["acc"] == 0.0 and result["acc_norm"] == 1.0


def test_acc_norm_counts_characters_acc_bytes_counts_bytes():
    tok = CharTokenizer()
    uniform = preferring({})
    # Every token costs log V: " éé" 3 tokens, " abc" 4 tokens.
    item = MultipleChoiceItem("q", ("éé", "abc"), 0)
    result = evaluate_multiple_choice(uniform, tok, [item], max_length=16)
    # per char: -3u/2 < -4u/3 (abc wins); per byte: -3u/4 > -4u/3 (éé wins)
    assert result == {
        "acc": 1.0,
        "acc_norm": 0.0,
        "acc_bytes": 1.0,
        "items": 1,
        "truncated": 0,
    }
    with pytest.raises(ValueError, match="2 scores for 3 choices"):
        multiple_choice_metrics(
            [[0.0, 0.0]], [MultipleChoiceItem("", ("a",) * 3, 0)]
        )


# ----------------------------------------------------------------------
# Perplexity
# ----------------------------------------------------------------------


def test_perplexity_is_exp_mean_nll_by_hand(tokenizer):
    model = tiny_model(seed=4)
    sentences = TEXTS[:3]
    total, count = 0.0, 0
    for s in sentences:
        target = [*tokenizer.encode(s), tokenizer.eos_id]
        total -= hand_log_likelihood(model, [tokenizer.bos_id], target)
        count += len(target)
    result = flores_perplexity(model, tokenizer, sentences, batch_size=2)
    assert result["tokens"] == count
    assert result["sentences"] == 3
    assert result["perplexity"] == pytest.approx(
        math.exp(total / count), rel=1e-5
    )
    n_bytes = sum(len(s.encode()) + 1 for s in sentences)
    assert result["bytes"] == n_bytes
    assert result["bits_per_byte"] == pytest.approx(
        total / n_bytes / math.log(2), rel=1e-5
    )


def test_authors_flores_estimate_by_hand(tokenizer):
    # run_flores_ppl.py: no [bos]/[eos], first token given, each group's
    # mean NLL per predicted token weighted by all of the group's tokens.
    model = tiny_model(seed=4)
    sentences = TEXTS[:3]
    ids = [tokenizer.encode(s) for s in sentences]
    nll = [-hand_log_likelihood(model, x[:1], x[1:]) for x in ids]
    groups = [(0, 1), (2,)]  # group_size 2 over three sentences
    means = [
        sum(nll[i] for i in g) / sum(len(ids[i]) - 1 for i in g) for g in groups
    ]
    sizes = [sum(len(ids[i]) for i in g) for g in groups]
    want = math.exp(sum(m * n for m, n in zip(means, sizes)) / sum(sizes))
    predicted = sum(len(x) - 1 for x in ids)
    for batch_size in (1, 3):  # forward batching does not matter
        result = authors_flores_perplexity(
            model, tokenizer, sentences, group_size=2, batch_size=batch_size
        )
        assert result["perplexity"] == pytest.approx(want, rel=1e-5)
        assert result["tokens"] == predicted
        assert result["perplexity_exact"] == pytest.approx(
            math.exp(sum(nll) / predicted), rel=1e-5
        )
    # One group: the authors' figure is the exact one.
    whole = authors_flores_perplexity(model, tokenizer, sentences)
    assert whole["perplexity"] == pytest.approx(whole["perplexity_exact"])


def test_authors_flores_weights_groups_by_all_their_tokens():
    # "aaaa" is cheap, "bcdefghij" dear; one sentence a group, weights 4
    # and 9 (first tokens counted) where the exact figure uses 3 and 8.
    model, tok = preferring({ord("a"): 6.0}), CharTokenizer()
    sentences = ["aaaa", "bcdefghij"]
    log_z = math.log(258 + math.exp(6.0))
    nll = [3 * (log_z - 6.0), 8 * log_z]
    result = authors_flores_perplexity(model, tok, sentences, group_size=1)
    want = math.exp((4 * nll[0] / 3 + 9 * nll[1] / 8) / 13)
    assert result["perplexity"] == pytest.approx(want, rel=1e-6)
    exact = math.exp(sum(nll) / 11)
    assert result["perplexity_exact"] == pytest.approx(exact, rel=1e-6)
    assert result["perplexity"] < 0.9 * exact


def test_authors_flores_truncates_and_refuses_undefined_groups():
    tok = CharTokenizer()
    # Uniform model: every predicted token costs log 259; "hello world" is
    # cut to 4 tokens, 3 predicted, and "abc" gives 2.
    result = authors_flores_perplexity(
        preferring({}), tok, ["abc", "hello world"], max_length=4
    )
    assert result["tokens"] == 2 + 3
    assert result["perplexity"] == pytest.approx(259, rel=1e-5)
    with pytest.raises(ValueError, match="sentences 0-1 have one token"):
        authors_flores_perplexity(preferring({}), tok, ["a", "b"])
    with pytest.raises(ValueError, match="sentence 1 encodes to no token"):
        authors_flores_perplexity(preferring({}), tok, ["ab", ""])
    with pytest.raises(ValueError, match="group_size=0"):
        authors_flores_perplexity(preferring({}), tok, ["ab"], group_size=0)


def test_bits_per_byte_known_answer():
    # Uniform over 256 byte values plus 3 specials, one token per ASCII
    # byte and one [eos] per line break: log2(259) bits per byte.
    tok = CharTokenizer()
    result = flores_perplexity(
        preferring({}), tok, ["abc", "hello world"], max_length=8
    )
    assert result["tokens"] == result["bytes"] == 4 + 12
    assert result["bits_per_byte"] == pytest.approx(math.log2(259), rel=1e-6)
    assert result["perplexity"] == pytest.approx(259, rel=1e-5)
    # Uniform over the 256 byte values, [eos] being the line break: one
    # token per ASCII byte costs exactly 8 bits.
    row = torch.full((259,), -1e9)
    row[:256] = 0.0
    model = BigramLM(row.expand(259, 259).clone())
    tok.eos_id = ord("\n")
    result = flores_perplexity(model, tok, ["abc", "hello world"], max_length=8)
    assert result["bits_per_byte"] == pytest.approx(8.0, rel=1e-6)
    # "été": 3 characters (tokens here) but 5 bytes. Perplexity per token
    # stays 256; bits per byte sees the longer UTF-8 text: 4 * 8 / 6.
    result = flores_perplexity(model, tok, ["été"], max_length=8)
    assert result["perplexity"] == pytest.approx(256, rel=1e-5)
    assert result["bits_per_byte"] == pytest.approx(32 / 6, rel=1e-6)


# ----------------------------------------------------------------------
# Everything at once and the CLI
# ----------------------------------------------------------------------


@pytest.fixture
def benchmark_files(tmp_path):
    return {
        "xcopa": write(
            tmp_path / "xcopa/data/it/test.it.jsonl", jsonl(XCOPA_IT)
        ),
        "xstorycloze": write(
            tmp_path / "xsc/ru/spring2016.val.ru.tsv.split_20_80_eval.tsv",
            STORY_HEADER + STORY_ROW + STORY_ROW.replace("\t1\n", "\t2\n"),
        ),
        "belebele": write(
            tmp_path / "belebele/fra_Latn.jsonl", jsonl(BELEBELE)
        ),
        "flores": write(
            tmp_path / "flores200_dataset/devtest/fra_Latn.devtest",
            "\n".join(TEXTS[2:]) + "\n",
        ),
    }


def test_evaluate_all_keys_and_ranges(tokenizer, benchmark_files, tmp_path):
    model = tiny_model(seed=5)
    results = evaluate_all(
        model,
        tokenizer,
        xcopa=benchmark_files["xcopa"],
        xstorycloze=[benchmark_files["xstorycloze"]],
        belebele=benchmark_files["belebele"],
        flores=tmp_path / "flores200_dataset",
        flores_langs="fra_Latn",
        batch_size=3,
    )
    assert list(results) == [
        "xcopa:it",
        "xstorycloze:ru",
        "belebele:fra_Latn",
        "flores:fra_Latn",
    ]
    assert results["xcopa:it"]["items"] == 2
    assert results["xstorycloze:ru"]["items"] == 2
    for key in ("xcopa:it", "xstorycloze:ru", "belebele:fra_Latn"):
        assert 0.0 <= results[key]["acc"] <= 1.0
    assert results["flores:fra_Latn"]["sentences"] == 2
    assert results["flores:fra_Latn"]["perplexity"] > 1.0
    table = format_results(results)
    assert "xcopa:it" in table and "bits/byte" in table


def test_cli_end_to_end_json_and_table(
    tokenizer, benchmark_files, tmp_path, capsys
):
    model_dir = tmp_path / "backpack_fr"
    tiny_model(seed=6).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    common = [
        "--model",
        str(model_dir),
        "--xcopa",
        str(benchmark_files["xcopa"]),
        "--belebele",
        str(benchmark_files["belebele"]),
        "--flores",
        str(tmp_path / "flores200_dataset"),
        "--flores_lang",
        "fra_Latn",
        "--batch_size",
        "4",
        "--no_progress",
    ]
    output = tmp_path / "results.json"
    assert main([*common, "--json", "--output", str(output)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(output.read_text())
    assert set(printed) == {"xcopa:it", "belebele:fra_Latn", "flores:fra_Latn"}
    assert printed["belebele:fra_Latn"]["items"] == 1
    # The same model and data in the Python API give the same numbers.
    again = evaluate_all(
        BackpackLM.from_pretrained(model_dir),
        BackpackTokenizer.from_pretrained(model_dir),
        flores=benchmark_files["flores"],
    )
    assert again["flores:fra_Latn"]["perplexity"] == pytest.approx(
        printed["flores:fra_Latn"]["perplexity"], rel=1e-6
    )
    assert main(common) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split() == [
        "benchmark",
        "items",
        "acc",
        "acc_norm",
        "acc_bytes",
        "truncated",
    ]
    assert "flores:fra_Latn" in table


def test_cli_user_errors_are_one_line(tokenizer, tmp_path, capsys):
    model_dir = tmp_path / "m"
    tiny_model().save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    bad = write(
        tmp_path / "test.it.jsonl", jsonl([{**XCOPA_IT[0], "label": 7}])
    )
    assert main(["--model", str(model_dir), "--xcopa", str(bad)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith(f"error: {bad}:1: label must be one of")
    assert (
        main(["--model", str(tmp_path / "nowhere"), "--flores", str(bad)]) == 1
    )
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    with pytest.raises(SystemExit) as exit_info:
        main(["--model", str(model_dir)])
    assert exit_info.value.code == 2
    assert "nothing to evaluate" in capsys.readouterr().err


def test_module_runs_as_a_script_without_traceback(tmp_path):
    missing = tmp_path / "no_model"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "speechbrain_sense.sensia.zero_shot",
            "--model",
            str(missing),
            "--flores",
            str(tmp_path / "none.devtest"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    assert run.stderr.startswith("error: ") and str(missing) in run.stderr
    help_text = subprocess.run(
        [sys.executable, "-m", "speechbrain_sense.sensia.zero_shot", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    for flag in (
        "--xcopa",
        "--flores_lang",
        "--batch_size",
        "--device",
        "--json",
    ):
        assert flag in help_text
    assert "default: 16" in help_text and "default: cpu" in help_text


def test_authors_prompts_are_their_run_eval_formats(tmp_path, benchmark_files):
    """jcblaisecruz02/sensia run_eval.py: "premise\\nhypothesis" (XCOPA),
    "context\\nending" (XStoryCloze), "passage\\n\\nQ: q\\nA: answer"."""
    (first, _) = load_xcopa(benchmark_files["xcopa"], prompts="authors")
    assert first.context == XCOPA_IT[0]["premise"]
    assert first.delimiter == "\n"
    # Written as they are: no connector, no lower-casing.
    assert first.choices == (XCOPA_IT[0]["choice1"], XCOPA_IT[0]["choice2"])
    (story, _) = load_xstorycloze(
        benchmark_files["xstorycloze"], prompts="authors"
    )
    harness = load_xstorycloze(benchmark_files["xstorycloze"])[0]
    assert (story.context, story.choices) == (harness.context, harness.choices)
    assert (story.delimiter, harness.delimiter) == ("\n", " ")
    (item,) = load_belebele(benchmark_files["belebele"], prompts="authors")
    assert item.context == (
        "Le chat dort sur le tapis. Il fait beau.\n\nQ: Où dort le chat ?\nA:"
    )
    assert item.delimiter == " "
    with pytest.raises(ValueError, match="prompts must be one of"):
        load_belebele(benchmark_files["belebele"], prompts="lm-eval")


def test_authors_prompts_score_without_bos_after_a_line_break(
    tokenizer, benchmark_files
):
    model = tiny_model(seed=3)
    results = evaluate_all(
        model, tokenizer, xcopa=benchmark_files["xcopa"], prompts="authors"
    )
    items = load_xcopa(benchmark_files["xcopa"], prompts="authors")
    hits = 0
    for item in items:
        context = tokenizer.encode(item.context)  # no [bos]
        scores = [
            hand_log_likelihood(model, context, tokenizer.encode("\n" + c))
            for c in item.choices
        ]
        hits += max(range(2), key=scores.__getitem__) == item.label
        got = score_choices(model, tokenizer, [item], add_bos=False)[0]
        assert got == pytest.approx(scores, abs=1e-5)
    assert results["xcopa:it"]["acc"] == hits / len(items)


def test_authors_prompts_give_the_authors_flores_figure(
    tokenizer, benchmark_files
):
    model = tiny_model(seed=3)
    flores = benchmark_files["flores"]
    results = evaluate_all(model, tokenizer, flores=flores, prompts="authors")
    sentences = load_flores(flores)
    want = authors_flores_perplexity(model, tokenizer, sentences)
    (got,) = results.values()
    assert got == pytest.approx(want)
    row = format_results(results).splitlines()[-1].split()
    assert row[-2:] == [f"{want['perplexity']:.2f}", "-"]
