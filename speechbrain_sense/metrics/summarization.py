"""Summarization metrics: ROUGE-1/2/L and BERTScore F1.

The speech summarization recipe (SLUE-TED) reports what SLUE Phase-2
reports for it: ROUGE (lexical overlap) and BERTScore (similarity of
contextual token embeddings), corpus scores being the mean of the
per-summary scores, in percent.

* :func:`rouge_scores` wraps Google's ``rouge-score`` package (the
  reference re-implementation of the ROUGE-1.5.5 Perl script): ROUGE-1
  and ROUGE-2 count shared unigrams / bigrams, ROUGE-L the longest common
  subsequence. F-measure by default (precision and recall on request),
  with or without Porter stemming. Its default tokenizer lowercases and
  keeps only ``[a-z0-9]`` runs, so it is meant for English (SLUE-TED is).
* :class:`BERTScore` wraps ``bert_score.BERTScorer``. The scoring model is
  a hub id or a local HuggingFace directory (the same argument), with the
  layer whose embeddings are compared (``num_layers``). It always returns
  the raw score, and with ``rescale_with_baseline`` also the
  baseline-rescaled one, ``(s - b) / (1 - b)`` with ``b`` the layer's row
  of a baseline file (:func:`read_bertscore_baseline`,
  :func:`baseline_rescaled`; by default the file ``bert-score`` ships for
  the model and language), derived from the same forward pass: the model
  runs once. :attr:`BERTScore.descriptions` labels each (model, layer,
  baseline file), because BERTScore values are only comparable between
  identical settings, and the recipe writes them into its report.

Authors
 * speechbrain-sense developers 2026
"""

import csv
import os
import warnings
from pathlib import Path

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
ROUGE_MEASURES = ("fmeasure", "precision", "recall")
BERTSCORE_MEASURES = ("precision", "recall", "f1")


def _check_pairs(hypotheses, references):
    """Validate hypothesis/reference summaries before scoring.

    Arguments
    ---------
    hypotheses : iterable of str
        Generated summaries.
    references : iterable of str
        One reference summary per hypothesis.

    Returns
    -------
    hypotheses : list of str
        The hypotheses as a list.
    references : list of str
        The references as a list.

    Raises
    ------
    ValueError
        If the counts differ or there is nothing to score.
    TypeError
        If some text is not a str.
    """
    hypotheses, references = list(hypotheses), list(references)
    if len(hypotheses) != len(references):
        raise ValueError(
            f"{len(hypotheses)} hypotheses but {len(references)} references: "
            "every summary needs exactly one reference"
        )
    if not hypotheses:
        raise ValueError("no summary to score")
    for name, texts in (("hypothesis", hypotheses), ("reference", references)):
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"{name} {i} is {type(text).__name__}, not str")
    return hypotheses, references


def rouge_description(use_stemmer=False, measure="fmeasure"):
    """What :func:`rouge_scores` computed, for reports.

    Arguments
    ---------
    use_stemmer : bool
        Porter stemming on.
    measure : str
        ``fmeasure``, ``precision`` or ``recall``.

    Returns
    -------
    str

    Example
    -------
    >>> rouge_description(use_stemmer=True)
    'ROUGE-1/2/L F-measure (rouge-score, Porter stemming, mean over summaries)'
    """
    names = {
        "fmeasure": "F-measure",
        "precision": "precision",
        "recall": "recall",
    }
    stemming = "Porter stemming" if use_stemmer else "no stemming"
    return (
        f"ROUGE-1/2/L {names[measure]} (rouge-score, {stemming}, "
        "mean over summaries)"
    )


def rouge_scores(
    hypotheses,
    references,
    use_stemmer=False,
    measure="fmeasure",
    return_per_summary=False,
):
    """Corpus ROUGE-1/2/L: the mean of the per-summary scores, in percent.

    Arguments
    ---------
    hypotheses : list of str
        Generated summaries.
    references : list of str
        One reference per hypothesis.
    use_stemmer : bool
        Porter-stem words before matching (``rouge-score``'s option).
    measure : str
        ``fmeasure`` (default), ``precision`` or ``recall``.
    return_per_summary : bool
        Also return the per-summary scores.

    Returns
    -------
    dict
        ``{"rouge1", "rouge2", "rougeL"}`` in percent; with
        ``return_per_summary``, also ``"per_summary"``: a list of dicts
        (fractions, one per pair).

    Example
    -------
    >>> scores = rouge_scores(["the cat sat"], ["the cat sat down"])
    >>> round(scores["rouge1"], 2), round(scores["rouge2"], 2)
    (85.71, 80.0)
    """
    from rouge_score import rouge_scorer

    if measure not in ROUGE_MEASURES:
        raise ValueError(f"measure must be one of {ROUGE_MEASURES}: {measure}")
    hypotheses, references = _check_pairs(hypotheses, references)
    scorer = rouge_scorer.RougeScorer(
        list(ROUGE_TYPES), use_stemmer=use_stemmer
    )
    per_summary = []
    for hypothesis, reference in zip(hypotheses, references):
        # rouge-score's argument order is (target, prediction).
        scores = scorer.score(reference, hypothesis)
        per_summary.append(
            {name: getattr(scores[name], measure) for name in ROUGE_TYPES}
        )
    result = {
        name: 100 * sum(row[name] for row in per_summary) / len(per_summary)
        for name in ROUGE_TYPES
    }
    if return_per_summary:
        result["per_summary"] = per_summary
    return result


def shipped_bertscore_baseline(model, lang="en"):
    """The baseline file ``bert-score`` ships for a model and language.

    Arguments
    ---------
    model : str
        Hub id (``roberta-large``, ``microsoft/deberta-xlarge-mnli``) or a
        local directory, looked up by its folder name.
    lang : str
        Language of the texts.

    Returns
    -------
    pathlib.Path
        ``bert_score/rescale_baseline/<lang>/<model>.tsv`` (it may not
        exist: ``bert-score`` ships baselines for some models only).

    Example
    -------
    >>> path = shipped_bertscore_baseline("roberta-large")
    >>> path.parts[-3:], path.is_file()
    (('rescale_baseline', 'en', 'roberta-large.tsv'), True)
    """
    import bert_score

    model = str(model)
    name = Path(model).name if os.path.isdir(model) else model
    return (
        Path(bert_score.__file__).parent
        / "rescale_baseline"
        / lang
        / f"{name}.tsv"
    )


def read_bertscore_baseline(path, layer):
    """One layer's baseline from a ``bert-score`` baseline file.

    The file is ``bert-score``'s CSV (named ``.tsv``): a header
    ``LAYER,P,R,F`` and one row per layer (0 is the embedding layer), each
    the mean precision, recall and F1 of unrelated sentence pairs.

    Arguments
    ---------
    path : str or Path
        The baseline file.
    layer : int
        The layer whose embeddings are compared (``num_layers``).

    Returns
    -------
    dict
        ``{"precision", "recall", "f1"}``: the baselines (fractions).

    Raises
    ------
    FileNotFoundError
        If the file is missing (the message names it).
    ValueError
        If the file is malformed or has no row for ``layer``.

    Example
    -------
    >>> path = shipped_bertscore_baseline("roberta-large")
    >>> baseline = read_bertscore_baseline(path, 17)
    >>> [round(baseline[k], 4) for k in ("precision", "recall", "f1")]
    [0.8315, 0.8315, 0.8312]
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"BERTScore baseline file {path} not found")
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"LAYER", "P", "R", "F"} <= set(rows[0]):
        raise ValueError(
            f"{path}: not a bert-score baseline file (header LAYER,P,R,F)"
        )
    for line, row in enumerate(rows, start=2):
        try:
            if int(row["LAYER"]) != layer:
                continue
            return {
                "precision": float(row["P"]),
                "recall": float(row["R"]),
                "f1": float(row["F"]),
            }
        except (TypeError, ValueError) as error:
            raise ValueError(f"{path}:{line}: bad row {row}") from error
    raise ValueError(f"{path}: no baseline row for layer {layer}")


def baseline_rescaled(score, baseline):
    """``bert-score``'s rescaling of a score: ``(s - b) / (1 - b)``.

    An affine map, so the mean of rescaled scores is the rescaled mean.
    A score equal to the baseline (unrelated texts, on average) becomes
    0, a perfect score stays 1, and a score below the baseline becomes
    negative.

    Arguments
    ---------
    score : float or torch.Tensor
        Raw BERTScore (a fraction, not percent).
    baseline : float
        The baseline ``b`` of the same measure, model and layer.

    Returns
    -------
    float or torch.Tensor

    Example
    -------
    >>> round(baseline_rescaled(0.9, 0.8), 6), baseline_rescaled(1.0, 0.8)
    (0.5, 1.0)
    """
    return (score - baseline) / (1 - baseline)


class BERTScore:
    """BERTScore with an explicit, reportable configuration.

    The scoring model runs once per call; the raw scores are always
    returned (``bertscore_f1``, ...), and with ``rescale_with_baseline``
    the baseline-rescaled ones as well (``bertscore_f1_rescaled``, ...),
    the scale on which ``bert-score`` recommends reporting.

    Arguments
    ---------
    model : str
        Hub id (``roberta-large``, BERTScore's English default) or local
        HuggingFace directory of the scoring model.
    num_layers : int, optional
        Layer whose token embeddings are compared. Defaults to
        ``bert-score``'s tuned layer for a known model name (also when a
        local directory is named like one, e.g. ``/models/roberta-large``);
        required otherwise.
    rescale_with_baseline : bool
        Also return the scores rescaled with the baseline
        (``(s - b) / (1 - b)``), which spreads them out but can make them
        negative. A missing baseline file is an error naming it.
    baseline_path : str, optional
        Baseline file (``bert-score``'s format; only with
        ``rescale_with_baseline``). Defaults to the file ``bert-score``
        ships for ``lang`` and the model name
        (:func:`shipped_bertscore_baseline`).
    lang : str
        Language of the texts (selects the shipped baseline file).
    idf : bool
        Weight tokens by inverse document frequency over the references
        (``bert-score``'s shipped baselines were computed without).
    batch_size : int
        Texts per forward pass.
    device : str, optional
        ``cpu`` or ``cuda:N`` (default: the GPU when there is one).

    Example
    -------
    >>> scorer = BERTScore.__new__(BERTScore)  # no model: labels only
    >>> scorer.model, scorer.num_layers = "roberta-large", 17
    >>> scorer.rescale_with_baseline, scorer.idf = True, False
    >>> scorer.baseline_path = "en/roberta-large.tsv"
    >>> for key, label in scorer.descriptions.items():
    ...     print(f"{key}: {label}")
    bertscore_f1: BERTScore F1 (roberta-large, layer 17, raw: not rescaled)
    bertscore_f1_rescaled: BERTScore F1 (roberta-large, layer 17, rescaled with baseline en/roberta-large.tsv)
    """

    def __init__(
        self,
        model="roberta-large",
        num_layers=None,
        rescale_with_baseline=False,
        baseline_path=None,
        lang="en",
        idf=False,
        batch_size=16,
        device=None,
    ):
        from bert_score import BERTScorer
        from bert_score.utils import model2layers

        model = str(model)
        name = Path(model).name if os.path.isdir(model) else model
        if num_layers is None:
            if name not in model2layers:
                raise ValueError(
                    f"no default layer for the BERTScore model {model!r}: "
                    "give num_layers (bert-score's tuned layers are known "
                    "only for hub names such as roberta-large)"
                )
            num_layers = model2layers[name]
        self.baseline = None
        if rescale_with_baseline:
            if baseline_path is None:
                shipped = shipped_bertscore_baseline(model, lang)
                if not shipped.is_file():
                    raise FileNotFoundError(
                        f"bert-score ships no {lang} baseline for {name!r} "
                        f"(no file {shipped}); give baseline_path, or "
                        "rescale_with_baseline=False for the raw score only"
                    )
                baseline_path = shipped
            baseline_path = str(baseline_path)
            self.baseline = read_bertscore_baseline(baseline_path, num_layers)
        elif baseline_path is not None:
            raise ValueError(
                f"baseline_path {baseline_path} given but "
                "rescale_with_baseline is False: set it True to rescale"
            )
        self.model = model
        self.num_layers = num_layers
        self.rescale_with_baseline = rescale_with_baseline
        self.baseline_path = baseline_path
        self.idf = idf
        self.batch_size = batch_size
        # Raw scores only: the rescaled ones are derived in __call__.
        self.scorer = BERTScorer(
            model_type=model,
            num_layers=num_layers,
            lang=lang,
            rescale_with_baseline=False,
            idf=idf,
            batch_size=batch_size,
            device=device,
        )
        # A tokenizer saved without a length limit would feed positions
        # past the model's embedding table; truncate like the hub models.
        tokenizer = self.scorer._tokenizer
        max_positions = getattr(
            self.scorer._model.config, "max_position_embeddings", None
        )
        if max_positions and tokenizer.model_max_length > max_positions:
            tokenizer.model_max_length = max_positions - 2
        if not hasattr(tokenizer, "build_inputs_with_special_tokens"):
            # bert-score encodes an empty text (an empty hypothesis) with
            # this method, which transformers 5 tokenizers no longer have.
            def special_tokens_only(ids):
                """Ids of the empty text: specials only (never given tokens)."""
                if ids:
                    raise NotImplementedError("only used for empty texts")
                return tokenizer("", add_special_tokens=True)["input_ids"]

            tokenizer.build_inputs_with_special_tokens = special_tokens_only

    def _label(self, scale):
        """``BERTScore F1 (<model>, layer <n>, <scale>[, idf-weighted])``."""
        idf = ", idf-weighted" if self.idf else ""
        return (
            f"BERTScore F1 ({self.model}, layer {self.num_layers}, "
            f"{scale}{idf})"
        )

    @property
    def description(self):
        """Label of the raw F1 (``bertscore_f1``): model, layer, idf."""
        return self._label("raw: not rescaled")

    @property
    def rescaled_description(self):
        """Label of the rescaled F1 (``bertscore_f1_rescaled``), with the
        baseline file; None without ``rescale_with_baseline``."""
        if not self.rescale_with_baseline:
            return None
        return self._label(f"rescaled with baseline {self.baseline_path}")

    @property
    def descriptions(self):
        """``{"bertscore_f1": label[, "bertscore_f1_rescaled": label]}``."""
        labels = {"bertscore_f1": self.description}
        if self.rescale_with_baseline:
            labels["bertscore_f1_rescaled"] = self.rescaled_description
        return labels

    def __call__(self, hypotheses, references, return_per_summary=False):
        """Corpus BERTScore: the mean over summaries, in percent.

        Arguments
        ---------
        hypotheses : list of str
            Generated summaries.
        references : list of str
            One reference per hypothesis.
        return_per_summary : bool
            Also return the per-summary F1 (fractions).

        Returns
        -------
        dict
            ``bertscore_precision``, ``bertscore_recall``, ``bertscore_f1``
            (raw, percent); with ``rescale_with_baseline`` also
            ``bertscore_precision_rescaled``, ``bertscore_recall_rescaled``
            and ``bertscore_f1_rescaled``; on request ``per_summary_f1``
            (and ``per_summary_f1_rescaled``).
        """
        hypotheses, references = _check_pairs(hypotheses, references)
        if self.idf:
            # Document frequencies of the references being scored.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "overwriting" the last ones
                self.scorer.compute_idf(references)
        raw = dict(
            zip(
                BERTSCORE_MEASURES,
                self.scorer.score(
                    hypotheses, references, batch_size=self.batch_size
                ),
            )
        )
        result = {
            f"bertscore_{name}": 100 * scores.mean().item()
            for name, scores in raw.items()
        }
        rescaled = {}
        if self.rescale_with_baseline:
            rescaled = {
                name: baseline_rescaled(scores, self.baseline[name])
                for name, scores in raw.items()
            }
            for name, scores in rescaled.items():
                result[f"bertscore_{name}_rescaled"] = (
                    100 * scores.mean().item()
                )
        if return_per_summary:
            result["per_summary_f1"] = raw["f1"].tolist()
            if rescaled:
                result["per_summary_f1_rescaled"] = rescaled["f1"].tolist()
        return result
