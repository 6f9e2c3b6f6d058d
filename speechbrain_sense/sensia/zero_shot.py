"""Zero-shot multiple-choice accuracy and FLORES-200 perplexity of a causal LM.

Downstream accuracy of an adapted Backpack (or any causal LM whose forward
takes ``(ids, attention_mask=mask)`` and returns logits) on three public
multilingual benchmarks, scored the way lm-evaluation-harness scores
``multiple_choice`` tasks, plus perplexity on FLORES-200:

* **XCOPA** (Ponti et al., 2020): causal commonsense. Context: the premise
  with its final punctuation mark replaced by the language's "because" or
  "therefore" connector (the harness's table, :data:`XCOPA_CONNECTORS`);
  choices: the two alternatives, first letter lower-cased.
* **XStoryCloze** (Lin et al., 2021): the right ending of a four-sentence
  story. Context: the four sentences joined by spaces; choices: the two
  endings.
* **Belebele** (Bandarkar et al., 2023): reading comprehension over FLORES
  passages, four answers. Context ``"P: {passage}\\nQ: {question}\\nA:"``;
  choices: the answers themselves (the cloze form, which small models can
  do; the harness's ``belebele`` task lists the answers under letters and
  scores the letters instead).
* **FLORES-200** (NLLB Team, 2022): token-level perplexity and
  bits per byte of the model on the ``dev`` or ``devtest`` sentences.

Scoring. A choice's score is the summed log-probability of its tokens
given ``[bos] + context``; it is appended after a space, as the harness's
``target_delimiter``. Context and choice are tokenised separately, so the
choice's tokens do not depend on the context (SentencePiece and GPT-2's
byte-level BPE both start a word at a leading space, so this is also how
the joint text splits). The prediction is the highest score (``acc``),
the highest score per character of the choice (``acc_norm``, the harness's
normalisation, ``len(choice)``) or per UTF-8 byte (``acc_bytes``: the same
for ASCII, but comparable across scripts whose characters take several
bytes); ties go to the first choice. Inputs longer than the model's
maximum length are left-truncated: the context loses its start (the
``[bos]`` included), the choice stays whole, as the harness does.

Perplexity. Each sentence is scored on its own as ``[bos] sentence [eos]``
(the framing the SENSIA recipes train on): ``[bos]`` is given, the
sentence's tokens and ``[eos]`` are predicted, perplexity is
``exp(total NLL / predicted tokens)``. Bits per byte divide the same total
NLL (in bits) by the UTF-8 bytes of the sentences plus one per sentence for
the line break that ``[eos]`` stands for; unlike perplexity it does not
depend on the tokenizer, so models with different vocabularies compare.

Every loader reads a public release from a local path and raises
:class:`BenchmarkFormatError` naming ``file:line`` for malformed input (a
missing field, a bad label, bytes that are not UTF-8, a wrong number of
columns); no item is dropped silently (blank lines are not items).

Run ``python -m speechbrain_sense.sensia.zero_shot --help`` for the CLI.

Authors
 * speechbrain-sense developers 2026
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import sys
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import torch

from speechbrain_sense.sensia.parallel_data import utf8_lines

__all__ = [
    "PROMPTS",
    "TARGET_DELIMITER",
    "XCOPA_CONNECTORS",
    "BenchmarkFormatError",
    "MultipleChoiceItem",
    "authors_flores_perplexity",
    "bits_per_byte",
    "continuation_log_likelihoods",
    "evaluate_all",
    "evaluate_multiple_choice",
    "flores_perplexity",
    "format_results",
    "load_belebele",
    "load_flores",
    "load_xcopa",
    "load_xstorycloze",
    "main",
    "multiple_choice_metrics",
    "perplexity",
    "score_choices",
    "xcopa_context",
    "xcopa_language",
]

# lm-evaluation-harness joins context and choice with one space.
TARGET_DELIMITER = " "

# The connectors of lm-evaluation-harness's xcopa tasks (English: COPA's).
XCOPA_CONNECTORS = {
    "en": {"cause": "because", "effect": "therefore"},
    "et": {"cause": "sest", "effect": "seetõttu"},
    "ht": {"cause": "poukisa", "effect": "donk sa"},
    "id": {"cause": "karena", "effect": "maka"},  # codespell:ignore maka
    "it": {"cause": "perché", "effect": "quindi"},
    "qu": {"cause": "imataq", "effect": "chaymi"},
    "sw": {"cause": "kwa sababu", "effect": "kwa hiyo"},
    "ta": {"cause": "காரணமாக", "effect": "எனவே"},
    "th": {"cause": "เพราะ", "effect": "ดังนั้น"},
    "tr": {"cause": "çünkü", "effect": "bu yüzden"},  # codespell:ignore bu
    "vi": {"cause": "bởi vì", "effect": "vì vậy"},
    "zh": {"cause": "因为", "effect": "所以"},
}

# XStoryCloze header names: the release's, and the HF mirror's snake_case.
_STORY_COLUMNS = (
    (
        "InputStoryid",
        "InputSentence1",
        "InputSentence2",
        "InputSentence3",
        "InputSentence4",
        "RandomFifthSentenceQuiz1",
        "RandomFifthSentenceQuiz2",
        "AnswerRightEnding",
    ),
    (
        "story_id",
        "input_sentence_1",
        "input_sentence_2",
        "input_sentence_3",
        "input_sentence_4",
        "sentence_quiz1",
        "sentence_quiz2",
        "answer_right_ending",
    ),
)
_FLORES_SPLITS = ("dev", "devtest")
#: Prompt formats: lm-evaluation-harness's, or those of the SENSIA
#: authors' run_eval.py (github.com/jcblaisecruz02/sensia): XCOPA and
#: XStoryCloze as "context\nchoice" (no connector, choices as written),
#: Belebele as "passage\n\nQ: question\nA: answer", and no [bos] (GPT-2's
#: tokenizer adds none), scored by the summed log-likelihood (``acc``);
#: FLORES by their run_flores_ppl.py (:func:`authors_flores_perplexity`).
PROMPTS = ("harness", "authors")


def _check_prompts(prompts):
    """Raise unless ``prompts`` is one of :data:`PROMPTS`."""
    if prompts not in PROMPTS:
        raise ValueError(
            f"prompts must be one of {', '.join(PROMPTS)}, not {prompts!r}"
        )


class BenchmarkFormatError(ValueError):
    """Malformed benchmark data; the message starts with ``file:line``."""


@dataclass(frozen=True)
class MultipleChoiceItem:
    """One zero-shot question: a context and the texts that may follow it.

    Arguments
    ---------
    context : str
        The prompt, without a trailing space.
    choices : tuple of str
        The candidate continuations, without the leading ``delimiter``
        (their lengths normalise ``acc_norm``).
    label : int
        Index of the right choice.
    origin : str
        ``file:line`` it was read from.
    delimiter : str
        What joins the context and a choice (:data:`TARGET_DELIMITER`; a
        line break in the SENSIA authors' XCOPA and XStoryCloze prompts).
    """

    context: str
    choices: tuple
    label: int
    origin: str = ""
    delimiter: str = TARGET_DELIMITER


# ----------------------------------------------------------------------
# Loaders
# ----------------------------------------------------------------------


def xcopa_language(path):
    """Language code in an XCOPA file name (``test.it.jsonl`` -> ``it``).

    Arguments
    ---------
    path : str or Path
        An XCOPA file.

    Returns
    -------
    str
        The code, or "en" when the name has none.

    Example
    -------
    >>> xcopa_language("xcopa/data/zh/test.zh.jsonl")
    'zh'
    >>> xcopa_language("copa_dev.jsonl")
    'en'
    """
    match = re.fullmatch(r"(?:test|val|train)\.(\w+)\.jsonl", Path(path).name)
    return match.group(1) if match else "en"


def xcopa_context(premise, question, lang="en"):
    """The harness's XCOPA prompt: premise, final punctuation -> connector.

    The harness drops the premise's last character unconditionally; here
    it is dropped only when it is punctuation (every XCOPA premise ends
    with one), so a premise without it keeps its last letter.

    Arguments
    ---------
    premise : str
        The premise sentence.
    question : str
        "cause" or "effect".
    lang : str
        Key of :data:`XCOPA_CONNECTORS`.

    Returns
    -------
    str

    Example
    -------
    >>> xcopa_context("My body cast a shadow over the grass.", "cause")
    'My body cast a shadow over the grass because'
    >>> xcopa_context("La bambina ha trovato un insetto.", "effect", "it")
    'La bambina ha trovato un insetto quindi'
    """
    if lang not in XCOPA_CONNECTORS:
        raise ValueError(
            f"no XCOPA connectors for language {lang!r}; known: "
            f"{sorted(XCOPA_CONNECTORS)}"
        )
    premise = premise.strip()
    if premise and unicodedata.category(premise[-1]).startswith("P"):
        premise = premise[:-1]
    return f"{premise} {XCOPA_CONNECTORS[lang][question]}"


def load_xcopa(path, lang=None, prompts="harness"):
    """XCOPA items from one jsonl file of the public release.

    The release (github.com/cambridgeltl/xcopa) has
    ``data/<lang>/{val,test}.<lang>.jsonl``, one object a line with
    ``premise``, ``choice1``, ``choice2``, ``question`` ("cause" or
    "effect"), ``label`` (0 or 1) and ``idx``.

    Arguments
    ---------
    path : str or Path
        The jsonl file.
    lang : str, optional
        Language of the connectors; by default the one in the file name
        (:func:`xcopa_language`), English when it has none.
    prompts : str
        ``"harness"`` (premise + connector, lower-cased choice) or
        ``"authors"`` (``premise\nchoice``; see :data:`PROMPTS`).

    Returns
    -------
    list of MultipleChoiceItem

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "test.it.jsonl")
    >>> _ = open(path, "w").write(
    ...     '{"premise": "Il ragazzo aveva fame.", "choice1": "Mangiò.", '
    ...     '"choice2": "Dormì.", "question": "effect", "label": 0}\\n')
    >>> item = load_xcopa(path)[0]
    >>> item.context, item.choices, item.label
    ('Il ragazzo aveva fame quindi', ('mangiò.', 'dormì.'), 0)
    """
    _check_prompts(prompts)
    path = _existing_file(path, "XCOPA")
    lang = xcopa_language(path) if lang is None else lang
    if prompts == "harness" and lang not in XCOPA_CONNECTORS:
        raise ValueError(
            f"{path}: no XCOPA connectors for language {lang!r}; known: "
            f"{sorted(XCOPA_CONNECTORS)}"
        )
    items = []
    for number, record in _jsonl_records(path):
        where = f"{path}:{number}"
        premise = _text(record, "premise", where)
        written = tuple(_text(record, f"choice{i}", where) for i in (1, 2))
        question = _text(record, "question", where)
        if question not in ("cause", "effect"):
            raise BenchmarkFormatError(
                f"{where}: question must be 'cause' or 'effect', got "
                f"{question!r}"
            )
        label = _label(record.get("label"), "label", (0, 1), where)
        if prompts == "authors":
            choices = tuple(choice.strip() for choice in written)
            items.append(
                MultipleChoiceItem(
                    premise.strip(), choices, label, where, delimiter="\n"
                )
            )
            continue
        choices = tuple(_lower_first(choice) for choice in written)
        context = xcopa_context(premise, question, lang)
        items.append(MultipleChoiceItem(context, choices, label, where))
    return _non_empty(items, path)


def load_xstorycloze(path, prompts="harness"):
    """XStoryCloze items from one file of the public release.

    The release (github.com/facebookresearch/fairseq, ``examples/xglm``)
    has ``spring2016.val.<lang>.tsv.split_20_80_{train,eval}.tsv``:
    tab-separated with a header ``InputStoryid, InputSentence1..4,
    RandomFifthSentenceQuiz1, RandomFifthSentenceQuiz2, AnswerRightEnding``
    (1 or 2). The English StoryCloze CSV (same columns, commas) and the
    snake_case headers of the Hugging Face mirror are read too; the
    separator is the header's (a tab if it has one, else a comma). Fields
    may be quoted as in CSV.

    Arguments
    ---------
    path : str or Path
        The file.
    prompts : str
        ``"harness"`` (the ending after a space) or ``"authors"`` (after a
        line break; see :data:`PROMPTS`).

    Returns
    -------
    list of MultipleChoiceItem
    """
    _check_prompts(prompts)
    delimiter = "\n" if prompts == "authors" else TARGET_DELIMITER
    path = _existing_file(path, "XStoryCloze")
    lines = list(_lines(path))
    header_line = next((line for _, line in lines if line.strip()), "")
    reader = csv.reader(
        (line + "\n" for _, line in lines),
        delimiter="\t" if "\t" in header_line else ",",
        quotechar='"',
        skipinitialspace=True,
    )
    items, columns, previous = [], None, 0
    try:
        for row in reader:
            where = f"{path}:{previous + 1}"
            previous = reader.line_num
            if not row or not any(cell.strip() for cell in row):
                continue
            if columns is None:
                columns = _story_columns(row, where)
                continue
            if len(row) != len(columns["names"]):
                raise BenchmarkFormatError(
                    f"{where}: expected {len(columns['names'])} columns, got "
                    f"{len(row)}"
                )
            record = dict(zip(columns["names"], row))
            names = columns["used"]
            sentences = [_text(record, name, where) for name in names[1:5]]
            endings = tuple(_text(record, name, where) for name in names[5:7])
            label = _label(record[names[7]], names[7], (1, 2), where) - 1
            context = " ".join(sentences)
            if prompts == "authors":
                context = context.strip()
                endings = tuple(ending.strip() for ending in endings)
            items.append(
                MultipleChoiceItem(context, endings, label, where, delimiter)
            )
    except csv.Error as error:
        raise BenchmarkFormatError(
            f"{path}:{reader.line_num}: {error}"
        ) from None
    if columns is None:
        raise BenchmarkFormatError(f"{path}: empty file, no header")
    return _non_empty(items, path)


def load_belebele(path, prompts="harness"):
    """Belebele items from one jsonl file of the public release.

    The release (github.com/facebookresearch/belebele) has
    ``<lang>_<Script>.jsonl`` (e.g. ``fra_Latn.jsonl``), one object a line
    with ``flores_passage``, ``question``, ``mc_answer1`` .. ``mc_answer4``
    and ``correct_answer_num`` ("1" .. "4").

    Arguments
    ---------
    path : str or Path
        The jsonl file.
    prompts : str
        ``"harness"``: context ``"P: {passage}\\nQ: {question}\\nA:"``;
        ``"authors"``: ``"{passage}\\n\\nQ: {question}\\nA:"`` (see
        :data:`PROMPTS`).

    Returns
    -------
    list of MultipleChoiceItem
        The contexts and the four answers.
    """
    _check_prompts(prompts)
    path = _existing_file(path, "Belebele")
    items = []
    for number, record in _jsonl_records(path):
        where = f"{path}:{number}"
        passage = _text(record, "flores_passage", where)
        question = _text(record, "question", where).strip()
        answers = tuple(
            _text(record, f"mc_answer{i}", where) for i in range(1, 5)
        )
        label = _label(
            record.get("correct_answer_num"),
            "correct_answer_num",
            (1, 2, 3, 4),
            where,
        )
        if prompts == "authors":
            answers = tuple(answer.strip() for answer in answers)
            context = f"{passage.strip()}\n\nQ: {question}\nA:"
        else:
            context = f"P: {passage}\nQ: {question}\nA:"
        items.append(MultipleChoiceItem(context, answers, label - 1, where))
    return _non_empty(items, path)


def load_flores(path, lang=None, split="devtest"):
    """FLORES-200 sentences, one a line.

    Arguments
    ---------
    path : str or Path
        A sentence file (``flores200_dataset/devtest/fra_Latn.devtest``, or
        any UTF-8 text with one sentence a line), or the
        ``flores200_dataset`` folder (then ``lang`` picks the file).
    lang : str, optional
        FLORES code such as "fra_Latn", needed when ``path`` is a folder.
    split : str
        "dev" or "devtest", when ``path`` is a folder.

    Returns
    -------
    list of str
        The sentences, in file order; an empty line is an error.
    """
    path = Path(path)
    if path.is_dir():
        if lang is None:
            raise ValueError(
                f"{path} is a folder: name the FLORES language (e.g. "
                "fra_Latn) to read from it"
            )
        if split not in _FLORES_SPLITS:
            raise ValueError(
                f"FLORES split {split!r} is not one of {_FLORES_SPLITS}"
            )
        candidates = [
            path / split / f"{lang}.{split}",
            path / f"{lang}.{split}",
        ]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise FileNotFoundError(
                f"no FLORES file for {lang} ({split}) under {path}: looked "
                f"for {', '.join(str(c) for c in candidates)}"
            )
        path = found
    path = _existing_file(path, "FLORES")
    sentences = []
    for number, line in _lines(path):
        if not line.strip():
            raise BenchmarkFormatError(
                f"{path}:{number}: empty line (expected one sentence a line)"
            )
        sentences.append(line)
    return _non_empty(sentences, path)


def _existing_file(path, what):
    """``path`` as a Path, or FileNotFoundError saying which data is missing."""
    path = Path(path)
    if not path.is_file():
        kind = "a folder, not a file" if path.is_dir() else "not found"
        raise FileNotFoundError(f"{what} file {path}: {kind}")
    return path


def _non_empty(items, path):
    """``items``, or an error when the file held none."""
    if not items:
        raise BenchmarkFormatError(f"{path}: no items in the file")
    return items


def _lines(path):
    """Yields ``(line_number, text)``; undecodable bytes name file:line."""
    return utf8_lines(path, BenchmarkFormatError)


def _jsonl_records(path):
    """Yields ``(line_number, dict)`` for the non-blank lines of a jsonl."""
    for number, line in _lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise BenchmarkFormatError(
                f"{path}:{number}: not valid JSON ({error.msg}, column "
                f"{error.colno})"
            ) from None
        if not isinstance(record, dict):
            raise BenchmarkFormatError(
                f"{path}:{number}: expected a JSON object, got "
                f"{type(record).__name__}"
            )
        yield number, record


def _text(record, name, where):
    """The non-blank string field ``name`` of ``record``, or an error."""
    if name not in record:
        raise BenchmarkFormatError(f"{where}: missing field {name!r}")
    value = record[name]
    if not isinstance(value, str):
        raise BenchmarkFormatError(
            f"{where}: field {name!r} should be text, got "
            f"{type(value).__name__}"
        )
    if not value.strip():
        raise BenchmarkFormatError(f"{where}: field {name!r} is empty")
    return value


def _label(value, name, allowed, where):
    """An integer label (int or digit string) checked against ``allowed``."""
    if value is None:
        raise BenchmarkFormatError(f"{where}: missing field {name!r}")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or value not in allowed:
        raise BenchmarkFormatError(
            f"{where}: {name} must be one of {list(allowed)}, got {value!r}"
        )
    return int(value)


def _lower_first(text):
    """``text`` with its first character lower-cased (the harness's choice)."""
    return text[:1].lower() + text[1:]


def _story_columns(header, where):
    """Which XStoryCloze header ``header`` is, or an error."""
    names = [cell.strip() for cell in header]
    for used in _STORY_COLUMNS:
        if all(name in names for name in used):
            return {"names": names, "used": used}
    raise BenchmarkFormatError(
        f"{where}: not an XStoryCloze header, expected the columns "
        f"{', '.join(_STORY_COLUMNS[0])} (or their snake_case names), got "
        f"{names}"
    )


# ----------------------------------------------------------------------
# Scoring
# ----------------------------------------------------------------------


@torch.no_grad()
def continuation_log_likelihoods(
    model,
    requests,
    pad_id,
    max_length=None,
    batch_size=16,
    device=None,
    progress=False,
):
    """Summed log-probability of each target given its context.

    Inputs longer than ``max_length`` are left-truncated: the context loses
    its first tokens, the target stays whole. A target longer than
    ``max_length`` itself is scored in pieces of ``max_length`` tokens,
    each given as much of the preceding text as fits. Rows are right-padded
    with ``pad_id`` and masked; the model runs in eval mode (its mode is
    restored afterwards).

    Arguments
    ---------
    model : torch.nn.Module
        Causal LM: ``model(ids, attention_mask=mask)`` gives ``[B, T, V]``
        logits, or an object with ``.logits`` (:class:`BackpackLM`).
    requests : list of (list of int, list of int)
        ``(context_ids, target_ids)``, each with at least one token (the
        context typically starts with ``[bos]``).
    pad_id : int
        Token id of the padding (never attended to, never scored).
    max_length : int, optional
        Longest input; default the model's ``config.n_positions``.
    batch_size : int
        Sequences per forward pass.
    device : str or torch.device, optional
        Where to run; default the model's device.
    progress : bool
        Show a tqdm bar over batches.

    Returns
    -------
    list of float
        One log-likelihood (nats, <= 0) per request, in request order.
    """
    max_length = _max_length(model, max_length)
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} < 1")
    # Each piece is (request index, token window, number of targets at the
    # end of the window); the window's last token is a target, never input.
    pieces = []
    for index, (context, target) in enumerate(requests):
        if not context or not target:
            raise ValueError(
                f"request {index}: context and target need a token each"
            )
        full = [*context, *target]
        first = len(context)  # index in ``full`` of the first unscored target
        while first < len(full):
            stop = min(first + max_length, len(full))
            low = max(0, stop - 1 - max_length)
            pieces.append((index, full[low:stop], stop - first))
            first = stop
    # Longest first: a batch holds similar lengths (little padding), and an
    # out-of-memory error shows up on the first batch, not the last.
    order = sorted(range(len(pieces)), key=lambda i: -len(pieces[i][1]))
    device = _device_of(model) if device is None else torch.device(device)
    totals = [0.0] * len(requests)
    was_training = model.training
    model.eval()
    from tqdm import tqdm

    try:
        for start in tqdm(
            range(0, len(order), batch_size),
            disable=not progress,
            desc="scoring",
            unit="batch",
        ):
            batch = [pieces[i] for i in order[start : start + batch_size]]
            T = max(len(window) for _, window, _ in batch) - 1
            ids = torch.full((len(batch), T), pad_id, dtype=torch.long)
            mask = torch.zeros(len(batch), T, dtype=torch.long)
            # -1 marks positions whose next token is not scored.
            labels = torch.full((len(batch), T), -1, dtype=torch.long)
            for row, (_, window, n_targets) in enumerate(batch):
                length = len(window) - 1
                ids[row, :length] = torch.tensor(window[:-1])
                mask[row, :length] = 1
                labels[row, length - n_targets : length] = torch.tensor(
                    window[-n_targets:]
                )
            ids, mask, labels = (
                ids.to(device),
                mask.to(device),
                labels.to(device),
            )
            out = model(ids, attention_mask=mask)
            logits = getattr(out, "logits", out).float()  # [B, T, V]
            scored = labels >= 0
            # log_softmax at the label only: gather - logsumexp, [B, T]
            picked = logits.gather(-1, labels.clamp(min=0)[..., None])[..., 0]
            logp = picked - logits.logsumexp(dim=-1)
            sums = torch.where(scored, logp, 0.0).sum(dim=-1).double().cpu()
            for row, (index, _, _) in enumerate(batch):
                totals[index] += float(sums[row])
    finally:
        model.train(was_training)
    return totals


def score_choices(
    model,
    tokenizer,
    items,
    batch_size=16,
    max_length=None,
    device=None,
    add_bos=True,
    progress=False,
):
    """Log-likelihood of every choice of every item.

    Arguments
    ---------
    model : torch.nn.Module
        Causal LM, see :func:`continuation_log_likelihoods`.
    tokenizer : BackpackTokenizer
        Or anything with ``encode(text)``, ``bos_id`` and ``pad_id``.
    items : list of MultipleChoiceItem
        The questions.
    batch_size : int
        Sequences per forward pass.
    max_length : int, optional
        Longest input; default the model's ``config.n_positions``.
    device : str or torch.device, optional
        Where to run; default the model's device.
    add_bos : bool
        Start every context with ``[bos]`` (how SENSIA's Backpacks see
        the start of a sentence).
    progress : bool
        Show a tqdm bar.

    Returns
    -------
    list of list of float
        ``[item][choice]`` summed log-probabilities (nats).
    """
    scores, _ = _score_items(
        model,
        tokenizer,
        items,
        batch_size,
        max_length,
        device,
        add_bos,
        progress,
    )
    return scores


def multiple_choice_metrics(log_likelihoods, items):
    """Accuracy of the raw and the length-normalised scores.

    Arguments
    ---------
    log_likelihoods : list of list of float
        ``[item][choice]`` scores, e.g. from :func:`score_choices`.
    items : list of MultipleChoiceItem
        The questions (their labels, and their choices' lengths).

    Returns
    -------
    dict
        ``acc`` (highest log-likelihood), ``acc_norm`` (per character of the
        choice, lm-evaluation-harness's ``acc_norm``), ``acc_bytes`` (per
        UTF-8 byte) and ``items``. Ties go to the first choice.

    Example
    -------
    >>> items = [MultipleChoiceItem("2 + 2 =", ("4", "five"), 0)]
    >>> multiple_choice_metrics([[-3.0, -4.0]], items)
    {'acc': 1.0, 'acc_norm': 0.0, 'acc_bytes': 0.0, 'items': 1}
    """
    if len(log_likelihoods) != len(items):
        raise ValueError(
            f"{len(log_likelihoods)} score lists for {len(items)} items"
        )
    if not items:
        raise ValueError("no items to score")
    hits = {"acc": 0, "acc_norm": 0, "acc_bytes": 0}
    for scores, item in zip(log_likelihoods, items):
        if len(scores) != len(item.choices):
            raise ValueError(
                f"{item.origin}: {len(scores)} scores for "
                f"{len(item.choices)} choices"
            )
        chars = [len(choice) for choice in item.choices]
        n_bytes = [len(choice.encode("utf-8")) for choice in item.choices]
        hits["acc"] += _argmax(scores) == item.label
        hits["acc_norm"] += (
            _argmax([s / n for s, n in zip(scores, chars)]) == item.label
        )
        hits["acc_bytes"] += (
            _argmax([s / n for s, n in zip(scores, n_bytes)]) == item.label
        )
    result = {name: count / len(items) for name, count in hits.items()}
    result["items"] = len(items)
    return result


def evaluate_multiple_choice(
    model,
    tokenizer,
    items,
    batch_size=16,
    max_length=None,
    device=None,
    add_bos=True,
    progress=False,
):
    """Zero-shot accuracy on multiple-choice items.

    Arguments
    ---------
    model : torch.nn.Module
        Causal LM, see :func:`continuation_log_likelihoods`.
    tokenizer : BackpackTokenizer
        Or anything with ``encode(text)``, ``bos_id`` and ``pad_id``.
    items : list of MultipleChoiceItem
        The questions, e.g. from :func:`load_xcopa`.
    batch_size : int
        Sequences per forward pass.
    max_length : int, optional
        Longest input; default the model's ``config.n_positions``.
    device : str or torch.device, optional
        Where to run; default the model's device.
    add_bos : bool
        Start every context with ``[bos]``.
    progress : bool
        Show a tqdm bar.

    Returns
    -------
    dict
        :func:`multiple_choice_metrics`, plus ``truncated``: the number of
        items with a left-truncated context.
    """
    scores, truncated = _score_items(
        model,
        tokenizer,
        items,
        batch_size,
        max_length,
        device,
        add_bos,
        progress,
    )
    result = multiple_choice_metrics(scores, items)
    result["truncated"] = truncated
    return result


def perplexity(total_nll, count):
    """``exp(total NLL / count)``.

    Arguments
    ---------
    total_nll : float
        Summed negative log-likelihood, nats.
    count : int
        Predicted tokens.

    Returns
    -------
    float

    Example
    -------
    >>> round(perplexity(4 * math.log(10.0), 4), 6)
    10.0
    """
    if count <= 0:
        raise ValueError(f"perplexity of {count} tokens")
    return math.exp(total_nll / count)


def bits_per_byte(total_nll, n_bytes):
    """Summed NLL in bits per byte of text: ``total_nll / (n_bytes ln 2)``.

    Arguments
    ---------
    total_nll : float
        Summed negative log-likelihood of the text, nats.
    n_bytes : int
        UTF-8 bytes of that text.

    Returns
    -------
    float

    Example
    -------
    >>> bits_per_byte(3 * math.log(256.0), 3)  # uniform over 256 bytes
    8.0
    """
    if n_bytes <= 0:
        raise ValueError(f"bits per byte of {n_bytes} bytes")
    return total_nll / (n_bytes * math.log(2.0))


def flores_perplexity(
    model,
    tokenizer,
    sentences,
    batch_size=16,
    max_length=None,
    device=None,
    progress=False,
):
    """Perplexity and bits per byte of sentences, each ``[bos] s [eos]``.

    ``[bos]`` is given; the sentence's tokens and ``[eos]`` are predicted.
    A sentence longer than the model is scored in windows
    (:func:`continuation_log_likelihoods`), never truncated.

    Arguments
    ---------
    model : torch.nn.Module
        Causal LM, see :func:`continuation_log_likelihoods`.
    tokenizer : BackpackTokenizer
        Or anything with ``encode(text)``, ``bos_id``, ``eos_id``,
        ``pad_id``.
    sentences : list of str
        E.g. from :func:`load_flores`.
    batch_size : int
        Sequences per forward pass.
    max_length : int, optional
        Longest input; default the model's ``config.n_positions``.
    device : str or torch.device, optional
        Where to run; default the model's device.
    progress : bool
        Show a tqdm bar.

    Returns
    -------
    dict
        ``perplexity`` (per token), ``nll_per_token`` (nats),
        ``bits_per_byte`` (bytes: the sentences' UTF-8 bytes plus one line
        break each, which ``[eos]`` encodes), ``tokens``, ``bytes`` and
        ``sentences``.
    """
    if not sentences:
        raise ValueError("no sentences to score")
    requests = [
        ([tokenizer.bos_id], [*tokenizer.encode(s), tokenizer.eos_id])
        for s in sentences
    ]
    scores = continuation_log_likelihoods(
        model,
        requests,
        tokenizer.pad_id,
        max_length,
        batch_size,
        device,
        progress,
    )
    total_nll = -math.fsum(scores)
    tokens = sum(len(target) for _, target in requests)
    n_bytes = sum(len(s.encode("utf-8")) + 1 for s in sentences)
    return {
        "perplexity": perplexity(total_nll, tokens),
        "nll_per_token": total_nll / tokens,
        "bits_per_byte": bits_per_byte(total_nll, n_bytes),
        "tokens": tokens,
        "bytes": n_bytes,
        "sentences": len(sentences),
    }


def authors_flores_perplexity(
    model,
    tokenizer,
    sentences,
    group_size=64,
    max_length=256,
    batch_size=16,
    device=None,
    progress=False,
):
    """FLORES perplexity as the SENSIA authors' ``run_flores_ppl.py`` gives it.

    Their script tokenises each sentence with no ``[bos]`` and no
    ``[eos]``, keeps its first ``max_length`` tokens and predicts tokens 2
    to n. Sentences are taken in order, ``group_size`` at a time (their
    ``--batch_size``, 64 in their README), and each group's mean NLL per
    predicted token is weighted by the group's tokens *including* the
    unpredicted first ones: ``exp(sum_g mean_g n_g / sum_g n_g)``. That
    weighted mean of group means moves with the group size when groups
    differ, so ``perplexity_exact`` (the plain per-token figure over the
    same predicted tokens) is returned beside it. Against
    :func:`flores_perplexity`, the tokens differ too: no ``[bos]`` given,
    no ``[eos]`` predicted, long sentences cut.

    Arguments
    ---------
    model : torch.nn.Module
        Causal LM, see :func:`continuation_log_likelihoods`.
    tokenizer : BackpackTokenizer
        Or anything with ``encode(text)`` and ``pad_id``.
    sentences : list of str
        E.g. from :func:`load_flores`, in the release's order.
    group_size : int
        Sentences per group of the authors' estimate.
    max_length : int
        Tokens kept per sentence (their ``--max_length``, 256).
    batch_size : int
        Sequences per forward pass (does not change the figures).
    device : str or torch.device, optional
        Where to run; default the model's device.
    progress : bool
        Show a tqdm bar.

    Returns
    -------
    dict
        ``perplexity`` (the authors' figure), ``perplexity_exact``,
        ``nll_per_token`` (exact, nats), ``tokens`` (predicted),
        ``group_size`` and ``sentences``.
    """
    if not sentences:
        raise ValueError("no sentences to score")
    if group_size < 1 or max_length < 2:
        raise ValueError(
            f"group_size={group_size} must be >= 1, max_length={max_length} "
            ">= 2"
        )
    encoded = [tokenizer.encode(s)[:max_length] for s in sentences]
    empty = [i for i, ids in enumerate(encoded) if not ids]
    if empty:
        raise ValueError(f"sentence {empty[0]} encodes to no token")
    # A one-token sentence predicts nothing but still counts as a token in
    # the authors' weights.
    scored = [i for i, ids in enumerate(encoded) if len(ids) > 1]
    scores = continuation_log_likelihoods(
        model,
        [(encoded[i][:1], encoded[i][1:]) for i in scored],
        tokenizer.pad_id,
        max_length,
        batch_size,
        device,
        progress,
    )
    nll = [0.0] * len(encoded)
    for i, score in zip(scored, scores):
        nll[i] = -score
    weighted, weights, total_nll, predicted = 0.0, 0, 0.0, 0
    for start in range(0, len(encoded), group_size):
        group = range(start, min(start + group_size, len(encoded)))
        group_nll = math.fsum(nll[i] for i in group)
        group_predicted = sum(len(encoded[i]) - 1 for i in group)
        if group_predicted == 0:
            raise ValueError(
                f"sentences {group.start}-{group.stop - 1} have one token "
                "each: the authors' estimate of that group is undefined"
            )
        n_tokens = sum(len(encoded[i]) for i in group)
        weighted += group_nll / group_predicted * n_tokens
        weights += n_tokens
        total_nll += group_nll
        predicted += group_predicted
    return {
        "perplexity": math.exp(weighted / weights),
        "perplexity_exact": perplexity(total_nll, predicted),
        "nll_per_token": total_nll / predicted,
        "tokens": predicted,
        "group_size": group_size,
        "sentences": len(sentences),
    }


def _score_items(
    model, tokenizer, items, batch_size, max_length, device, add_bos, progress
):
    """Per-choice scores of ``items`` and the number of truncated items."""
    max_length = _max_length(model, max_length)
    requests, truncated = [], 0
    for item in items:
        context = tokenizer.encode(item.context)
        if add_bos:
            context = [tokenizer.bos_id, *context]
        if not context:
            raise ValueError(
                f"{item.origin}: the context has no tokens; use add_bos=True"
            )
        cut = False
        for choice in item.choices:
            target = tokenizer.encode(item.delimiter + choice)
            if not target:
                raise ValueError(
                    f"{item.origin}: choice {choice!r} has no tokens"
                )
            cut |= len(context) + len(target) - 1 > max_length
            requests.append((context, target))
        truncated += cut
    flat = continuation_log_likelihoods(
        model,
        requests,
        tokenizer.pad_id,
        max_length,
        batch_size,
        device,
        progress,
    )
    scores, start = [], 0
    for item in items:
        scores.append(flat[start : start + len(item.choices)])
        start += len(item.choices)
    return scores, truncated


def _argmax(values):
    """Index of the largest value, the first one on ties."""
    return max(range(len(values)), key=values.__getitem__)


def _max_length(model, max_length):
    """``max_length``, or the model's maximum sequence length."""
    if max_length is None:
        config = getattr(model, "config", None)
        for name in ("n_positions", "max_position_embeddings"):
            if getattr(config, name, None):
                max_length = getattr(config, name)
                break
        else:
            raise ValueError(
                "the model's maximum sequence length is unknown; give "
                "max_length"
            )
    if max_length < 1:
        raise ValueError(f"max_length={max_length} < 1")
    return int(max_length)


def _device_of(model):
    """Device of the model's first parameter (CPU when it has none)."""
    parameter = next(model.parameters(), None)
    return torch.device("cpu") if parameter is None else parameter.device


# ----------------------------------------------------------------------
# Everything at once, and the CLI
# ----------------------------------------------------------------------


def evaluate_all(
    model,
    tokenizer,
    xcopa=(),
    xstorycloze=(),
    belebele=(),
    flores=(),
    flores_langs=(),
    flores_split="devtest",
    batch_size=16,
    max_length=None,
    device=None,
    progress=False,
    prompts="harness",
):
    """Every benchmark whose files are given, in one results dict.

    All files are read before the model runs, so a malformed one stops the
    evaluation at once rather than after the others.

    Arguments
    ---------
    model : torch.nn.Module
        Causal LM, see :func:`continuation_log_likelihoods`.
    tokenizer : BackpackTokenizer
        Its tokenizer.
    xcopa : str or Path or list
        XCOPA jsonl files (:func:`load_xcopa`).
    xstorycloze : str or Path or list
        XStoryCloze files (:func:`load_xstorycloze`).
    belebele : str or Path or list
        Belebele jsonl files (:func:`load_belebele`).
    flores : str or Path or list
        FLORES sentence files, or ``flores200_dataset`` folders read for
        each of ``flores_langs`` (:func:`load_flores`).
    flores_langs : str or list of str
        FLORES codes (e.g. "fra_Latn") read from the folders.
    flores_split : str
        "dev" or "devtest".
    batch_size : int
        Sequences per forward pass.
    max_length : int, optional
        Longest input; default the model's ``config.n_positions``.
    device : str or torch.device, optional
        Where to run; default the model's device.
    progress : bool
        Show tqdm bars.
    prompts : str
        ``"harness"`` (lm-evaluation-harness's prompts, a ``[bos]`` first)
        or ``"authors"`` (the SENSIA authors' prompts, no ``[bos]``; see
        :data:`PROMPTS`).

    Returns
    -------
    dict
        ``"<benchmark>:<language>"`` (e.g. ``"xcopa:it"``,
        ``"flores:fra_Latn"``) -> the metrics of
        :func:`evaluate_multiple_choice` or :func:`flores_perplexity`.
    """
    _check_prompts(prompts)
    tasks = {}

    def add(benchmark, name, path, data):
        """Registers one data set under a key that is not taken yet."""
        key = f"{benchmark}:{name}"
        if key in tasks:
            key = f"{benchmark}:{path}"
        tasks[key] = (benchmark, data)

    for path in _as_list(xcopa):
        lang = xcopa_language(path)
        add("xcopa", lang, path, load_xcopa(path, lang, prompts))
    for path in _as_list(xstorycloze):
        name = re.search(r"spring2016\.val\.(\w+?)\.", Path(path).name)
        name = name.group(1) if name else Path(path).stem
        add("xstorycloze", name, path, load_xstorycloze(path, prompts))
    for path in _as_list(belebele):
        add("belebele", Path(path).stem, path, load_belebele(path, prompts))
    langs = _as_list(flores_langs)
    for path in _as_list(flores):
        if Path(path).is_dir():
            if not langs:
                raise ValueError(
                    f"{path} is a FLORES folder: name the languages to read "
                    "(flores_langs, e.g. fra_Latn)"
                )
            for lang in langs:
                sentences = load_flores(path, lang, flores_split)
                add("flores", lang, f"{path}/{lang}", sentences)
        else:
            add("flores", Path(path).stem, path, load_flores(path))

    options = {
        "batch_size": batch_size,
        "max_length": max_length,
        "device": device,
        "progress": progress,
    }
    results = {}
    for key, (benchmark, data) in tasks.items():
        if benchmark == "flores" and prompts == "authors":
            results[key] = authors_flores_perplexity(
                model,
                tokenizer,
                data,
                max_length=max_length or 256,  # their --max_length
                batch_size=batch_size,
                device=device,
                progress=progress,
            )
        elif benchmark == "flores":
            results[key] = flores_perplexity(model, tokenizer, data, **options)
        else:
            results[key] = evaluate_multiple_choice(
                model,
                tokenizer,
                data,
                add_bos=prompts == "harness",
                **options,
            )
    return results


def _as_list(value):
    """A path or code, or a list of them, as a list."""
    if value is None:
        return []
    if isinstance(value, (str, Path)):
        return [value]
    return list(value)


def _parser():
    """The argparse parser of the CLI."""
    parser = argparse.ArgumentParser(
        prog="python -m speechbrain_sense.sensia.zero_shot",
        description="Zero-shot accuracy (XCOPA, XStoryCloze, Belebele) and "
        "FLORES-200 perplexity of a saved Backpack LM. Each benchmark flag "
        "takes one or more local files of the public release; at least one "
        "is needed.",
    )
    parser.add_argument(
        "--model",
        required=True,
        help="saved Backpack directory (config.json and weights, as written "
        "by BackpackLM.save_pretrained)",
    )
    parser.add_argument(
        "--tokenizer",
        help="tokenizer directory (default: the --model directory)",
    )
    parser.add_argument(
        "--xcopa",
        nargs="+",
        default=[],
        metavar="JSONL",
        help="XCOPA files, data/<lang>/test.<lang>.jsonl; the language in "
        "the name picks the connectors, English if it has none "
        "(default: none)",
    )
    parser.add_argument(
        "--xstorycloze",
        nargs="+",
        default=[],
        metavar="TSV",
        help="XStoryCloze files, spring2016.val.<lang>.tsv.split_20_80_"
        "eval.tsv (or the English StoryCloze CSV) (default: none)",
    )
    parser.add_argument(
        "--belebele",
        nargs="+",
        default=[],
        metavar="JSONL",
        help="Belebele files, <lang>_<Script>.jsonl (default: none)",
    )
    parser.add_argument(
        "--flores",
        nargs="+",
        default=[],
        metavar="PATH",
        help="FLORES-200 sentence files (<lang>_<Script>.devtest, or any "
        "text with one sentence a line), or the flores200_dataset folder "
        "with --flores_lang (default: none)",
    )
    parser.add_argument(
        "--flores_lang",
        nargs="+",
        default=[],
        metavar="LANG",
        help="languages read from a flores200_dataset folder, e.g. fra_Latn "
        "(default: none)",
    )
    parser.add_argument(
        "--flores_split",
        choices=_FLORES_SPLITS,
        default="devtest",
        help="FLORES split read from a folder (default: devtest)",
    )
    parser.add_argument(
        "--batch_size",
        type=int,
        default=16,
        help="sequences per forward pass (default: 16)",
    )
    parser.add_argument(
        "--max_length",
        type=int,
        help="longest input in tokens; longer contexts lose their start "
        "(default: the model's n_positions)",
    )
    parser.add_argument(
        "--device",
        default="cpu",
        help="torch device, e.g. cpu or cuda (default: cpu)",
    )
    parser.add_argument(
        "--prompts",
        choices=PROMPTS,
        default="harness",
        help="prompt formats: lm-evaluation-harness's, or the SENSIA "
        "authors' run_eval.py (context and choice on two lines, no [bos]; "
        "compare its numbers with acc) and run_flores_ppl.py (FLORES: "
        "first token given, no [eos], 256 tokens) (default: harness)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the results as JSON instead of a table (default: off)",
    )
    parser.add_argument(
        "--output",
        metavar="FILE",
        help="also write the results as JSON to FILE (default: none)",
    )
    parser.add_argument(
        "--no_progress",
        action="store_true",
        help="hide the progress bars (default: shown)",
    )
    return parser


def _table(rows):
    """Lines of ``rows`` in aligned columns, the first left-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths))
        )
        for row in rows
    ]


def format_results(results):
    """The results as small tables: accuracies, then perplexities.

    Arguments
    ---------
    results : dict
        What :func:`evaluate_all` returns.

    Returns
    -------
    str

    Example
    -------
    >>> print(format_results({"xcopa:it": {"acc": 0.5, "acc_norm": 0.25,
    ...     "acc_bytes": 0.25, "items": 4, "truncated": 0}}))
    benchmark  items     acc  acc_norm  acc_bytes  truncated
    xcopa:it       4  0.5000    0.2500     0.2500          0
    """
    blocks = []
    choice_rows = [
        (key, str(r["items"]), f"{r['acc']:.4f}", f"{r['acc_norm']:.4f}")
        + (f"{r['acc_bytes']:.4f}", str(r["truncated"]))
        for key, r in results.items()
        if "acc" in r
    ]
    if choice_rows:
        header = ("benchmark", "items", "acc", "acc_norm", "acc_bytes")
        blocks.append(_table([(*header, "truncated"), *choice_rows]))
    text_rows = [
        (key, str(r["sentences"]), str(r["tokens"]))
        + (f"{r['perplexity']:.2f}",)
        # The authors' estimate has no bits per byte: first tokens unscored.
        + (f"{r['bits_per_byte']:.4f}" if "bits_per_byte" in r else "-",)
        for key, r in results.items()
        if "perplexity" in r
    ]
    if text_rows:
        header = ("corpus", "sentences", "tokens", "perplexity", "bits/byte")
        blocks.append(_table([header, *text_rows]))
    return "\n\n".join("\n".join(block) for block in blocks)


def main(argv=None):
    """Entry point of ``python -m speechbrain_sense.sensia.zero_shot``.

    Arguments
    ---------
    argv : list of str, optional
        Command-line arguments; default ``sys.argv[1:]``.

    Returns
    -------
    int
        Exit status: 0, or 1 after printing one line for a user error
        (missing or malformed files, a bad device).
    """
    from speechbrain_sense.backpack.model import BackpackLM
    from speechbrain_sense.backpack.tokenizer import BackpackTokenizer

    parser = _parser()
    args = parser.parse_args(argv)
    if not (args.xcopa or args.xstorycloze or args.belebele or args.flores):
        parser.error(
            "nothing to evaluate: give --xcopa, --xstorycloze, --belebele "
            "or --flores"
        )
    if args.batch_size < 1:
        parser.error(f"--batch_size must be >= 1, got {args.batch_size}")
    if args.max_length is not None and args.max_length < 1:
        parser.error(f"--max_length must be >= 1, got {args.max_length}")
    try:
        device = torch.device(args.device)
    except RuntimeError:
        device = None
    if device is None or (
        device.type == "cuda" and not torch.cuda.is_available()
    ):
        print(
            f"error: device {args.device!r} is not available", file=sys.stderr
        )
        return 1
    try:
        tokenizer = BackpackTokenizer.from_pretrained(
            args.tokenizer or args.model
        )
        model = BackpackLM.from_pretrained(args.model).to(device)
        results = evaluate_all(
            model,
            tokenizer,
            xcopa=args.xcopa,
            xstorycloze=args.xstorycloze,
            belebele=args.belebele,
            flores=args.flores,
            flores_langs=args.flores_lang,
            flores_split=args.flores_split,
            batch_size=args.batch_size,
            max_length=args.max_length,
            device=device,
            progress=not args.no_progress,
            prompts=args.prompts,
        )
    except (OSError, ValueError) as error:
        # BenchmarkFormatError is a ValueError; its message names file:line.
        message = " ".join(str(error).split())
        print(f"error: {message}", file=sys.stderr)
        return 1
    text = json.dumps(results, indent=1, ensure_ascii=False)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
    print(text if args.json else format_results(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
