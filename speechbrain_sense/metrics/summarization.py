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
  layer whose embeddings are compared (``num_layers``) and optional
  rescaling with a baseline file; :attr:`BERTScore.description` states
  model, layer and rescaling, because BERTScore values are only comparable
  between identical settings, and the recipe writes it into its report.

Authors
 * speechbrain-sense developers 2026
"""

import os
import warnings
from pathlib import Path

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
ROUGE_MEASURES = ("fmeasure", "precision", "recall")


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


class BERTScore:
    """BERTScore with an explicit, reportable configuration.

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
        Rescale scores with a baseline (``(s - b) / (1 - b)``), which
        spreads them out but can make them negative.
    baseline_path : str, optional
        Baseline TSV (``bert-score``'s format). Defaults to the file
        ``bert-score`` ships for ``lang`` and the model name.
    lang : str
        Language of the texts (selects the shipped baseline file).
    idf : bool
        Weight tokens by inverse document frequency over the references.
    batch_size : int
        Texts per forward pass.
    device : str, optional
        ``cpu`` or ``cuda:N`` (default: the GPU when there is one).

    Example
    -------
    >>> scorer = BERTScore.__new__(BERTScore)  # no model: description only
    >>> scorer.model, scorer.num_layers = "roberta-large", 17
    >>> scorer.rescale_with_baseline, scorer.idf = False, False
    >>> scorer.description
    'BERTScore F1 (roberta-large, layer 17, not rescaled)'
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
        if rescale_with_baseline and baseline_path is None:
            import bert_score

            shipped = (
                Path(bert_score.__file__).parent
                / "rescale_baseline"
                / lang
                / f"{name}.tsv"
            )
            if not shipped.is_file():
                raise FileNotFoundError(
                    f"bert-score ships no {lang} baseline for {name!r} "
                    f"({shipped}); give baseline_path"
                )
            baseline_path = str(shipped)
        if baseline_path is not None and not Path(baseline_path).is_file():
            raise FileNotFoundError(f"baseline file {baseline_path} not found")
        self.model = model
        self.num_layers = num_layers
        self.rescale_with_baseline = rescale_with_baseline
        self.baseline_path = baseline_path
        self.idf = idf
        self.batch_size = batch_size
        self.scorer = BERTScorer(
            model_type=model,
            num_layers=num_layers,
            lang=lang,
            rescale_with_baseline=rescale_with_baseline,
            baseline_path=baseline_path,
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

    @property
    def description(self):
        """Model, layer, rescaling and idf: what makes scores comparable."""
        if self.rescale_with_baseline:
            rescaled = f"rescaled with baseline {self.baseline_path}"
        else:
            rescaled = "not rescaled"
        idf = ", idf-weighted" if self.idf else ""
        return (
            f"BERTScore F1 ({self.model}, layer {self.num_layers}, "
            f"{rescaled}{idf})"
        )

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
            (percent), and ``per_summary_f1`` on request.
        """
        hypotheses, references = _check_pairs(hypotheses, references)
        if self.idf:
            # Document frequencies of the references being scored.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "overwriting" the last ones
                self.scorer.compute_idf(references)
        precision, recall, f1 = self.scorer.score(
            hypotheses, references, batch_size=self.batch_size
        )
        result = {
            "bertscore_precision": 100 * precision.mean().item(),
            "bertscore_recall": 100 * recall.mean().item(),
            "bertscore_f1": 100 * f1.mean().item(),
        }
        if return_per_summary:
            result["per_summary_f1"] = f1.tolist()
        return result
