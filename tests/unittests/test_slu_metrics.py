"""Semantic-tag metrics: known edit counts, SLUE F1, malformed outputs."""

import random

import pytest
from speechbrain.utils.metric_stats import ErrorRateStats

from speechbrain_sense.metrics.slu import (
    TaggedTranscriptStats,
    entity_f1,
    f1_from_counts,
    format_tagged,
    parse_tagged,
)

# (hypothesis, reference): one of each tag error and value error kind.
CASES = {
    # <PLACE> read as <ORG>: 1 tag substitution, 1 value substitution.
    "sub": (
        "<PERSON> john > met <ORG> paris >",
        "<PERSON> john > met <PLACE> paris >",
    ),
    # The entity is missed: 1 tag deletion, 1 value deletion.
    "del": ("monday", "<WHEN> monday >"),
    # An entity is made up: 1 tag insertion, 1 value insertion.
    "ins": ("<NORP> greek > hello", "greek hello"),
    # Right tag, one wrong word: no tag error, 1 value substitution.
    "value": ("<PERSON> anna nowak >", "<PERSON> anna novak >"),
}


@pytest.fixture
def stats():
    stats = TaggedTranscriptStats()
    ids = list(CASES)
    stats.append(ids, [CASES[i][0] for i in ids], [CASES[i][1] for i in ids])
    return stats


def test_parse_splits_words_tags_and_values():
    parsed = parse_tagged("i met <PERSON> john smith > in <PLACE> paris >")
    assert parsed.text == "i met john smith in paris"
    assert parsed.tags == ["<PERSON>", "<PLACE>"]
    assert parsed.tag_values == ["<PERSON> john smith", "<PLACE> paris"]
    assert all(span.closed for span in parsed.spans)
    assert parsed.stray_closings == 0


def test_known_tag_error_counts(stats):
    summary = stats.summarize()
    assert summary["reference_tags"] == 4
    assert summary["tag_substitutions"] == 1
    assert summary["tag_deletions"] == 1
    assert summary["tag_insertions"] == 1
    assert summary["tag_error_rate"] == pytest.approx(75.0)
    # Every case has exactly one value error over 4 reference values.
    assert summary["value_error_rate"] == pytest.approx(100.0)
    rows = {row["ID"]: row for row in stats.utterance_rows()}
    assert [rows[i]["tag_errors"] for i in CASES] == [1, 1, 1, 0]
    assert [rows[i]["value_errors"] for i in CASES] == [1, 1, 1, 1]
    # Plain words: only "nowak" differs (1 of 8 reference words).
    assert [rows[i]["word_errors"] for i in CASES] == [0, 0, 0, 1]
    assert summary["WER"] == pytest.approx(100 / 8)


def test_entity_f1_known_values(stats):
    summary = stats.summarize()
    # Predicted: (PERSON john) (ORG paris) (NORP greek) (PERSON anna nowak);
    # reference: (PERSON john) (PLACE paris) (WHEN monday) (PERSON anna
    # novak). Exact: 1 match of 4 and 4. Labels: PERSON twice.
    assert summary["F1"] == pytest.approx(0.25)
    assert summary["precision"] == summary["recall"] == pytest.approx(0.25)
    assert summary["label_F1"] == pytest.approx(0.5)
    hyps = [CASES[i][0] for i in CASES]
    refs = [CASES[i][1] for i in CASES]
    assert entity_f1(hyps, refs)["F1"] == pytest.approx(0.25)
    assert entity_f1(hyps, refs, label_only=True)["F1"] == pytest.approx(0.5)


def test_per_utterance_rows_add_up_to_the_summary(stats):
    rows = stats.utterance_rows()
    summary = stats.summarize()
    for name, key in (("tag", "tag_error_rate"), ("char", "CER")):
        errors = sum(row[f"{name}_errors"] for row in rows)
        units = sum(row[f"{name}_reference"] for row in rows)
        assert 100 * errors / units == pytest.approx(summary[key])
    matched = sum(row["entity_matched"] for row in rows)
    predicted = sum(row["entity_predicted"] for row in rows)
    reference = sum(row["entity_reference"] for row in rows)
    assert f1_from_counts(matched, predicted, reference)["F1"] == (
        pytest.approx(summary["F1"])
    )


def test_entity_f1_is_a_multiset_match():
    # Two predicted "paris" for one in the reference: one true positive.
    scores = entity_f1(["<PLACE> paris > <PLACE> paris >"], ["<PLACE> paris >"])
    assert (scores["precision"], scores["recall"]) == (0.5, 1.0)
    assert scores["F1"] == pytest.approx(2 / 3)
    # Nothing predicted, nothing to find: all zero, no division error.
    assert entity_f1(["a b"], ["a b"])["F1"] == 0.0
    with pytest.raises(ValueError, match="2 predictions for 1 targets"):
        entity_f1(["a", "b"], ["a"])


def test_agrees_with_speechbrain_media_coer_and_cver():
    """On well-formed sequences, SpeechBrain's MEDIA COER/CVER (which
    extract the concepts from character sequences) give the same rates."""
    cases = [CASES["sub"], CASES["value"], ("<A> x > y", "<A> x > <B> z >")]
    ours = TaggedTranscriptStats()
    ours.append([str(i) for i in range(len(cases))], *zip(*cases))
    summary = ours.summarize()

    def characters(text):
        return list("_".join(text.split()))

    for keep_values, key in (
        (False, "tag_error_rate"),
        (True, "value_error_rate"),
    ):
        upstream = ErrorRateStats(
            extract_concepts_values=True,
            keep_values=keep_values,
            tag_in="<",
            tag_out=">",
        )
        upstream.append(
            [str(i) for i in range(len(cases))],
            [characters(hyp) for hyp, _ in cases],
            [characters(ref) for _, ref in cases],
        )
        assert upstream.summarize("error_rate") == pytest.approx(summary[key])


def test_malformed_sequences_follow_the_documented_rules():
    # A new tag closes the open one; the last runs to the end.
    parsed = parse_tagged("<PERSON> john <PLACE> paris")
    assert parsed.tag_values == ["<PERSON> john", "<PLACE> paris"]
    assert [span.closed for span in parsed.spans] == [False, False]
    # SLUE scores no unclosed entity.
    assert not parsed.entities()
    # Stray closings are ignored and counted.
    parsed = parse_tagged("> john > <X> a > >")
    assert parsed.stray_closings == 3
    assert parsed.words == ("john", "a")
    assert parsed.tag_values == ["<X> a"]
    # An empty tag counts as a tag but is no entity.
    parsed = parse_tagged("<X> > b")
    assert parsed.tags == ["<X>"] and parsed.tag_values == ["<X>"]
    assert not parsed.entities()
    # Brackets that are not a whole tag token are words.
    assert parse_tagged("< <> a<b").words == ("<", "<>", "a<b")
    # The stats report the malformed parts of the hypotheses.
    stats = TaggedTranscriptStats()
    stats.append(["u"], ["> <A> x <B> y"], ["<A> x > <B> y >"])
    summary = stats.summarize()
    assert summary["tag_error_rate"] == 0.0
    assert summary["unclosed_tags"] == 2 and summary["stray_closings"] == 1
    assert summary["F1"] == 0.0 and summary["label_F1"] == 0.0


def test_any_token_soup_parses_consistently():
    rng = random.Random(0)
    vocabulary = ["<A>", "<B>", ">", "a", "b", "<", "<>", ""]
    for _ in range(300):
        tokens = [rng.choice(vocabulary) for _ in range(rng.randint(0, 12))]
        parsed = parse_tagged(" ".join(tokens))
        tokens = [t for t in tokens if t]
        tags = [t for t in tokens if t in ("<A>", "<B>")]
        assert parsed.tags == tags
        assert list(parsed.words) == [
            t for t in tokens if t not in ("<A>", "<B>", ">")
        ]
        closed = sum(span.closed for span in parsed.spans)
        assert closed + parsed.stray_closings == tokens.count(">")
        # Values are exactly the words between a tag and its end.
        assert sum(len(s.words) for s in parsed.spans) <= len(parsed.words)


def test_format_then_parse_round_trips():
    words = "we met anna novak in the baltic sea".split()
    spans = [("PERSON", 2, 4), ("PLACE", 5, 8)]
    text = format_tagged(words, spans)
    assert text == "we met <PERSON> anna novak > in <PLACE> the baltic sea >"
    parsed = parse_tagged(text)
    assert list(parsed.words) == words
    assert [(s.label, " ".join(s.words)) for s in parsed.spans] == [
        ("PERSON", "anna novak"),
        ("PLACE", "the baltic sea"),
    ]
    with pytest.raises(ValueError, match="overlaps"):
        format_tagged(words, [("A", 0, 3), ("B", 2, 4)])
    with pytest.raises(ValueError, match="outside"):
        format_tagged(words, [("A", 7, 9)])


def test_references_without_tags_give_no_rate():
    stats = TaggedTranscriptStats()
    stats.append(["u"], ["<A> x >"], ["x"])
    summary = stats.summarize()
    # One insertion over zero reference tags: undefined, not 0 %.
    assert summary["tag_error_rate"] is None
    assert summary["tag_insertions"] == 1
    assert summary["WER"] == 0.0
