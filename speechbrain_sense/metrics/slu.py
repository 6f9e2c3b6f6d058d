"""Semantic tags in transcripts: NEER / COER, value error rates, entity F1.

The SLU recipes train a model to write the transcript with its semantic
annotation inline, one opening tag token before the words of an entity
(named entity on SLUE-VoxPopuli, concept on MEDIA) and a closing ``>``
after them::

    i met <PERSON> john smith > in <PLACE> paris >
    <command-tache> je voudrais réserver > <nombre-chambre> une chambre >

This is SpeechBrain's MEDIA convention (``recipes/MEDIA/media_prepare.py``
writes ``<concept> words >`` into its ``wrd`` column). SLUE's own CTC
baseline writes one special character per label instead of ``<LABEL>``
(``$`` PERSON, ``%`` PLACE, ... and ``]`` to close); the two are the same
annotation with different spellings.

Metrics (percentages, as SpeechBrain's ``ErrorRateStats`` reports them):

* **tag error rate** (NEER on SLUE, COER on MEDIA): edit distance between
  the sequences of tags, e.g. ``[<PERSON>, <PLACE>]``, plain words ignored.
* **value error rate** (NE-value error rate, CVER): edit distance between
  the sequences of ``"<TAG> value words"`` units; a tag with one wrong word
  is one substitution.
* **WER / CER** of the plain transcript (tags and ``>`` removed).
* **entity F1** as SLUE scores it (``slue_toolkit/eval/eval_w2v_ner.py``):
  each utterance gives a multiset of ``(label, phrase)`` pairs (exact F1)
  or of labels (label F1); true positives are the multiset intersection,
  and precision, recall and F1 are micro-averaged over the whole set.

Malformed sequences (a model's output can be anything) are parsed by fixed
rules, never rejected:

* a token ``<x>`` (starts with ``<``, ends with ``>``, at least one
  character between) opens a tag; every other token except ``>`` is a
  word;
* an opening tag while another tag is open closes the open one there
  (it is *unclosed*); a tag still open at the end runs to the end
  (*unclosed* too);
* a ``>`` with no open tag is a *stray* closing: ignored (counted in
  :attr:`ParsedTranscript.stray_closings`);
* a tag closed right away has an empty value.

The error rates score every tag, unclosed or not, as SpeechBrain's
``extract_concepts_values`` does. Entity F1 follows SLUE: an unclosed tag
or an empty value is no entity.

Authors
 * speechbrain-sense developers 2026
"""

import collections
from dataclasses import dataclass

from speechbrain.utils.metric_stats import ErrorRateStats

TAG_CLOSE = ">"


def is_tag(token):
    """Whether ``token`` is an opening tag such as ``<PERSON>``.

    Arguments
    ---------
    token : str
        One whitespace-free token.

    Returns
    -------
    bool

    Example
    -------
    >>> is_tag("<PERSON>"), is_tag(">"), is_tag("<>"), is_tag("<a")
    (True, False, False, False)
    """
    return len(token) > 2 and token[0] == "<" and token[-1] == ">"


@dataclass(frozen=True)
class TaggedSpan:
    """One tag and the words it covers.

    Arguments
    ---------
    label : str
        The tag without brackets (``PERSON``, ``nombre-chambre``).
    words : tuple of str
        Its value.
    closed : bool
        Ended by ``>`` (False: ended by the next tag or the end).
    """

    label: str
    words: tuple
    closed: bool

    @property
    def tag(self):
        """The tag token, ``<label>``."""
        return f"<{self.label}>"

    @property
    def value(self):
        """The words, space-joined."""
        return " ".join(self.words)

    @property
    def tag_value(self):
        """``"<label> words"``: the unit of the value error rate."""
        return " ".join((self.tag, *self.words))


@dataclass(frozen=True)
class ParsedTranscript:
    """A tagged transcript split into its words and tags.

    Arguments
    ---------
    words : tuple of str
        The plain transcript: every word, tags and ``>`` removed.
    spans : tuple of TaggedSpan
        The tags in order.
    stray_closings : int
        ``>`` tokens that closed nothing.
    """

    words: tuple
    spans: tuple
    stray_closings: int

    @property
    def tags(self):
        """Tag sequence, ``["<PERSON>", ...]`` (tag error rate units)."""
        return [span.tag for span in self.spans]

    @property
    def tag_values(self):
        """``["<PERSON> john smith", ...]`` (value error rate units)."""
        return [span.tag_value for span in self.spans]

    @property
    def text(self):
        """The plain transcript as one string."""
        return " ".join(self.words)

    def entities(self, label_only=False):
        """SLUE entities: closed tags with a non-empty value.

        Arguments
        ---------
        label_only : bool
            Return ``(label,)`` instead of ``(label, phrase)``.

        Returns
        -------
        collections.Counter
            Multiset of entities.
        """
        return collections.Counter(
            (span.label,) if label_only else (span.label, span.value)
            for span in self.spans
            if span.closed and span.words
        )


def parse_tagged(text):
    """Splits a tagged transcript into words and tags (see module doc).

    Arguments
    ---------
    text : str or list of str
        The transcript, or its tokens.

    Returns
    -------
    ParsedTranscript

    Example
    -------
    >>> parsed = parse_tagged("i met <PERSON> john smith > in <PLACE> paris")
    >>> parsed.text
    'i met john smith in paris'
    >>> parsed.tags, parsed.tag_values
    (['<PERSON>', '<PLACE>'], ['<PERSON> john smith', '<PLACE> paris'])
    >>> [span.closed for span in parsed.spans]
    [True, False]
    >>> parse_tagged("> a <X> > b >").stray_closings
    2
    """
    tokens = text.split() if isinstance(text, str) else list(text)
    words, spans = [], []
    stray = 0
    label, value = None, []

    def close(closed):
        """End the open span; ``closed`` says whether a ``>`` ended it."""
        spans.append(TaggedSpan(label, tuple(value), closed))

    for token in tokens:
        if is_tag(token):
            if label is not None:
                close(closed=False)
            label, value = token[1:-1], []
        elif token == TAG_CLOSE:
            if label is None:
                stray += 1
            else:
                close(closed=True)
                label, value = None, []
        else:
            words.append(token)
            if label is not None:
                value.append(token)
    if label is not None:
        close(closed=False)
    return ParsedTranscript(tuple(words), tuple(spans), stray)


def format_tagged(words, spans):
    """Writes words and labelled word spans as a tagged transcript.

    Arguments
    ---------
    words : list of str
        The plain transcript.
    spans : list of tuple
        ``(label, first_word, end_word)`` word index ranges, not
        overlapping.

    Returns
    -------
    str

    Example
    -------
    >>> format_tagged(["i", "met", "john", "smith"], [("PERSON", 2, 4)])
    'i met <PERSON> john smith >'
    """
    opening = {}
    for label, start, end in spans:
        if not 0 <= start < end <= len(words):
            raise ValueError(
                f"span {(label, start, end)} outside 0..{len(words)} words"
            )
        if start in opening:
            raise ValueError(f"two spans start at word {start}")
        opening[start] = (label, end)
    out, end_of_open = [], None
    for i, word in enumerate(words):
        if i == end_of_open:
            out.append(TAG_CLOSE)
            end_of_open = None
        if i in opening:
            if end_of_open is not None:
                raise ValueError(f"span starting at word {i} overlaps")
            label, end_of_open = opening[i]
            out.append(f"<{label}>")
        out.append(word)
    if end_of_open is not None:
        out.append(TAG_CLOSE)
    return " ".join(out)


def entity_f1(predictions, targets, label_only=False):
    """SLUE's micro-averaged entity precision, recall and F1.

    Arguments
    ---------
    predictions : list of str
        Tagged hypotheses.
    targets : list of str
        Tagged references, same order.
    label_only : bool
        Score labels only (SLUE's "label F1").

    Returns
    -------
    dict
        ``precision``, ``recall``, ``F1`` (fractions, 0 when undefined)
        and the counts ``true_positives``, ``predicted``, ``reference``.

    Example
    -------
    >>> hyp = ["<PLACE> paris > and <PLACE> rome >", "<PERSON> jon >"]
    >>> ref = ["<PLACE> paris > and <PLACE> paris >", "<PERSON> john >"]
    >>> round(entity_f1(hyp, ref)["F1"], 4)
    0.3333
    >>> entity_f1(hyp, ref, label_only=True)["F1"]
    1.0
    """
    if len(predictions) != len(targets):
        raise ValueError(
            f"{len(predictions)} predictions for {len(targets)} targets"
        )
    true_positives = predicted = reference = 0
    for prediction, target in zip(predictions, targets):
        hyp = parse_tagged(prediction).entities(label_only)
        ref = parse_tagged(target).entities(label_only)
        true_positives += sum((hyp & ref).values())
        predicted += sum(hyp.values())
        reference += sum(ref.values())
    return f1_from_counts(true_positives, predicted, reference)


def f1_from_counts(true_positives, predicted, reference):
    """Precision, recall and F1 from counts (0 where undefined).

    Arguments
    ---------
    true_positives : int
        Matched entities.
    predicted : int
        Entities in the hypotheses.
    reference : int
        Entities in the references.

    Returns
    -------
    dict
        ``precision``, ``recall``, ``F1`` and the three counts.

    Example
    -------
    >>> f1_from_counts(1, 2, 4)["F1"]
    0.3333333333333333
    """
    precision = true_positives / predicted if predicted else 0.0
    recall = true_positives / reference if reference else 0.0
    total = precision + recall
    return {
        "precision": precision,
        "recall": recall,
        "F1": 2 * precision * recall / total if total else 0.0,
        "true_positives": true_positives,
        "predicted": predicted,
        "reference": reference,
    }


def _error_rate(stats):
    """Percent edits per reference unit; None without reference units."""
    edits = sum(score["num_edits"] for score in stats.scores)
    units = sum(score["num_ref_tokens"] for score in stats.scores)
    return 100.0 * edits / units if units else None


class TaggedTranscriptStats:
    """Accumulates every SLU metric over tagged hypotheses and references.

    One SpeechBrain ``ErrorRateStats`` per error rate (its alignments are
    what :meth:`write_alignments` prints); entity matches are counted per
    utterance so that :meth:`utterance_rows` adds up to :meth:`summarize`.

    Example
    -------
    >>> stats = TaggedTranscriptStats()
    >>> stats.append(
    ...     ["u1"], ["i met <PERSON> jon > today"], ["i met <PERSON> john >"]
    ... )
    >>> summary = stats.summarize()
    >>> summary["tag_error_rate"], summary["value_error_rate"]
    (0.0, 100.0)
    >>> round(summary["WER"], 2), summary["F1"], summary["label_F1"]
    (66.67, 0.0, 1.0)
    """

    METRICS = ("tag", "value", "word", "char")

    def __init__(self):
        self.stats = {name: ErrorRateStats() for name in self.METRICS}
        self.rows = []

    def append(self, ids, predictions, targets):
        """Scores a batch of tagged transcripts.

        Arguments
        ---------
        ids : list of str
            Utterance ids.
        predictions : list of str
            Tagged hypotheses.
        targets : list of str
            Tagged references.
        """
        if not len(ids) == len(predictions) == len(targets):
            raise ValueError(
                f"{len(ids)} ids, {len(predictions)} predictions and "
                f"{len(targets)} targets"
            )
        hyps = [parse_tagged(text) for text in predictions]
        refs = [parse_tagged(text) for text in targets]
        units = {
            "tag": lambda parsed: parsed.tags,
            "value": lambda parsed: parsed.tag_values,
            "word": lambda parsed: list(parsed.words),
            "char": lambda parsed: list(parsed.text),
        }
        first = len(self.stats["tag"].scores)
        for name, unit in units.items():
            self.stats[name].append(
                ids, [unit(h) for h in hyps], [unit(r) for r in refs]
            )
        for i, utt_id in enumerate(ids):
            row = {
                "ID": utt_id,
                "reference": targets[i],
                "hypothesis": predictions[i],
            }
            for name in self.METRICS:
                score = self.stats[name].scores[first + i]
                row[f"{name}_errors"] = score["num_edits"]
                row[f"{name}_reference"] = score["num_ref_tokens"]
            for prefix, label_only in (("entity", False), ("label", True)):
                hyp = hyps[i].entities(label_only)
                ref = refs[i].entities(label_only)
                row[f"{prefix}_matched"] = sum((hyp & ref).values())
                row[f"{prefix}_predicted"] = sum(hyp.values())
                row[f"{prefix}_reference"] = sum(ref.values())
            row["unclosed_tags"] = sum(not s.closed for s in hyps[i].spans)
            row["stray_closings"] = hyps[i].stray_closings
            self.rows.append(row)

    def summarize(self):
        """Corpus-level metrics.

        Returns
        -------
        dict
            ``tag_error_rate``, ``value_error_rate``, ``WER``, ``CER``
            (percent; None when the references hold no unit of that kind),
            ``F1``, ``precision``, ``recall``, ``label_F1``,
            ``label_precision``, ``label_recall`` (fractions), the
            insertions / deletions / substitutions of the tag sequence,
            and the counts of utterances, malformed tags and stray ``>``.
        """
        tag_summary = self.stats["tag"].summarize()
        summary = {
            "tag_error_rate": _error_rate(self.stats["tag"]),
            "value_error_rate": _error_rate(self.stats["value"]),
            "WER": _error_rate(self.stats["word"]),
            "CER": _error_rate(self.stats["char"]),
            "tag_insertions": tag_summary["insertions"],
            "tag_deletions": tag_summary["deletions"],
            "tag_substitutions": tag_summary["substitutions"],
            "reference_tags": tag_summary["num_scored_tokens"],
        }
        for prefix, key in (("entity", ""), ("label", "label_")):
            scores = f1_from_counts(
                sum(row[f"{prefix}_matched"] for row in self.rows),
                sum(row[f"{prefix}_predicted"] for row in self.rows),
                sum(row[f"{prefix}_reference"] for row in self.rows),
            )
            for name in ("precision", "recall", "F1"):
                summary[key + name] = scores[name]
        summary["utterances"] = len(self.rows)
        summary["unclosed_tags"] = sum(r["unclosed_tags"] for r in self.rows)
        summary["stray_closings"] = sum(r["stray_closings"] for r in self.rows)
        return summary

    def utterance_rows(self):
        """One dict per scored utterance, in the order appended.

        Returns
        -------
        list of dict
            ``ID``, ``reference``, ``hypothesis``, ``<m>_errors`` and
            ``<m>_reference`` for ``m`` in tag, value, word, char,
            ``entity_matched/predicted/reference``, the same for
            ``label``, ``unclosed_tags`` and ``stray_closings``.
        """
        return list(self.rows)

    def write_alignments(self, filestream, name):
        """Writes one error rate's SpeechBrain summary and alignments.

        Arguments
        ---------
        filestream : file
            Open text file.
        name : str
            One of ``tag``, ``value``, ``word``, ``char``.
        """
        self.stats[name].write_stats(filestream)
