"""Corpus BLEU and chrF for speech translation, with sacreBLEU.

Scores are corpus-level (n-gram statistics summed over all sentences,
not averaged per sentence), computed by ``sacrebleu`` with its defaults
(BLEU: 13a tokenisation, exponential smoothing; chrF: character 6-grams,
beta 2), and always returned with sacreBLEU's signature string, so a
reported number says exactly how it was computed. CoVoST 2 reports
BLEU per source language on the detokenised, cased output, as here.

Authors
 * speechbrain-sense developers 2026
"""

from sacrebleu.metrics import BLEU, CHRF


def _check_pairs(hypotheses, references):
    """Raises unless hypotheses and references pair up one to one."""
    if len(hypotheses) != len(references):
        raise ValueError(
            f"{len(hypotheses)} hypotheses but {len(references)} references"
        )
    if not hypotheses:
        raise ValueError("no hypotheses to score")
    for i, (hyp, ref) in enumerate(zip(hypotheses, references)):
        if not isinstance(hyp, str) or not isinstance(ref, str):
            raise TypeError(
                f"pair {i}: hypotheses and references must be str, got "
                f"{type(hyp).__name__} and {type(ref).__name__}"
            )


def corpus_bleu(hypotheses, references, tokenize="13a", lowercase=False):
    """Corpus BLEU of detokenised hypotheses against one reference each.

    Arguments
    ---------
    hypotheses : list of str
        System outputs.
    references : list of str
        One reference per hypothesis.
    tokenize : str
        sacreBLEU tokeniser (``13a``; ``intl``, ``char``, ``zh``...).
    lowercase : bool
        Case-insensitive BLEU.

    Returns
    -------
    dict
        ``score`` (0-100), ``precisions`` (1- to 4-gram, %), ``bp`` (brevity
        penalty), ``hyp_len``, ``ref_len`` and ``signature``.

    Example
    -------
    >>> out = corpus_bleu(["the cat sat on the mat"], ["the cat is on the mat"])
    >>> round(out["score"], 2), out["bp"]
    (37.99, 1.0)
    >>> out["signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
    True
    """
    _check_pairs(hypotheses, references)
    metric = BLEU(tokenize=tokenize, lowercase=lowercase)
    score = metric.corpus_score(list(hypotheses), [list(references)])
    return {
        "score": score.score,
        "precisions": list(score.precisions),
        "bp": score.bp,
        "hyp_len": score.sys_len,
        "ref_len": score.ref_len,
        "signature": str(metric.get_signature()),
    }


def corpus_chrf(hypotheses, references, word_order=0):
    """Corpus chrF (chrF++ with ``word_order=2``).

    Arguments
    ---------
    hypotheses : list of str
        System outputs.
    references : list of str
        One reference per hypothesis.
    word_order : int
        Word n-gram order (0: chrF, 2: chrF++).

    Returns
    -------
    dict
        ``score`` (0-100) and ``signature``.

    Example
    -------
    >>> out = corpus_chrf(["the cat"], ["the cat"])
    >>> out["score"], out["signature"].split("|")[:3]
    (100.0, ['nrefs:1', 'case:mixed', 'eff:yes'])
    """
    _check_pairs(hypotheses, references)
    metric = CHRF(word_order=word_order)
    score = metric.corpus_score(list(hypotheses), [list(references)])
    return {"score": score.score, "signature": str(metric.get_signature())}


def translation_scores(hypotheses, references, languages):
    """BLEU and chrF per source language and over all utterances.

    Arguments
    ---------
    hypotheses : list of str
        System outputs.
    references : list of str
        One reference per hypothesis.
    languages : list of str
        Source language of each pair.

    Returns
    -------
    dict
        ``{"all": row, "<lang>": row, ...}`` (languages sorted), each row
        ``{"count", "BLEU", "chrF", "bp", "precisions"}``, plus
        ``"signatures": {"BLEU": ..., "chrF": ...}``.

    Example
    -------
    >>> scores = translation_scores(
    ...     ["a b c d", "x y"], ["a b c d", "u v"], ["fr", "de"]
    ... )
    >>> round(scores["fr"]["BLEU"], 6), scores["de"]["BLEU"]
    (100.0, 0.0)
    >>> scores["all"]["count"], scores["signatures"]["BLEU"][:7]
    (2, 'nrefs:1')
    """
    _check_pairs(hypotheses, references)
    if len(languages) != len(hypotheses):
        raise ValueError(
            f"{len(hypotheses)} hypotheses but {len(languages)} languages"
        )
    groups = {"all": list(range(len(hypotheses)))}
    for lang in sorted(set(languages)):
        groups[lang] = [i for i, x in enumerate(languages) if x == lang]
    scores = {}
    for name, indices in groups.items():
        hyps = [hypotheses[i] for i in indices]
        refs = [references[i] for i in indices]
        bleu = corpus_bleu(hyps, refs)
        chrf = corpus_chrf(hyps, refs)
        scores[name] = {
            "count": len(indices),
            "BLEU": bleu["score"],
            "chrF": chrf["score"],
            "bp": bleu["bp"],
            "precisions": bleu["precisions"],
        }
    scores["signatures"] = {
        "BLEU": bleu["signature"],
        "chrF": chrf["signature"],
    }
    return scores
