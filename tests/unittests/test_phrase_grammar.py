"""The compositional sentence grammar behind the CPU demo corpus."""

import pytest

from speechbrain_sense.synthetic import phrase_grammar
from speechbrain_sense.synthetic.common_voice import make_synthetic_cv
from speechbrain_sense.synthetic.phrase_grammar import (
    grammar_languages,
    grammar_sentences,
)


def test_tables_are_parallel_and_distinct():
    for table in (
        phrase_grammar.SUBJECTS,
        phrase_grammar.ACTIONS,
        phrase_grammar.SETTINGS,
    ):
        sizes = {lang: len(phrases) for lang, phrases in table.items()}
        assert len(set(sizes.values())) == 1, sizes
        for lang, phrases in table.items():
            assert len(set(phrases)) == len(phrases), lang


def test_index_i_is_the_same_combination_in_every_language():
    sentences = {
        lang: grammar_sentences(lang, seed=4) for lang in "en fr".split()
    }
    en, fr = sentences["en"][17], sentences["fr"][17]

    # Recover the phrase indices of sentence 17 in both languages.
    def indices(lang, text):
        text = text[0].lower() + text[1:-1]
        found = []
        for table in (
            phrase_grammar.SUBJECTS,
            phrase_grammar.ACTIONS,
            phrase_grammar.SETTINGS,
        ):
            matches = [
                i for i, p in enumerate(table[lang]) if f" {p} " in f" {text} "
            ]
            found.append(matches)
        return found

    assert indices("en", en) == indices("fr", fr)
    assert all(len(m) == 1 for m in indices("en", en))


def test_sentence_format_and_count():
    sentences = grammar_sentences("de")
    assert len(sentences) == len(set(sentences)) == 12 * 14 * 12
    assert all(s[0].isupper() and s.endswith(".") for s in sentences)
    assert grammar_sentences("de") == sentences  # deterministic


def test_unknown_language_names_the_available_ones():
    with pytest.raises(ValueError, match=r"'ru'.*\['de', 'en', 'es', 'fr'\]"):
        grammar_sentences("ru")
    assert grammar_languages() == ["de", "en", "es", "fr"]


def test_synthetic_corpus_uses_grammar_sentences(tmp_path):
    summary = make_synthetic_cv(
        tmp_path, ["es"], per_language=4, seed=2, sentences="grammar"
    )
    assert sum(s["utterances"] for s in summary["es"].values()) == 4
    rows = (tmp_path / "es" / "train.tsv").read_text(encoding="utf-8")
    sentence = rows.splitlines()[1].split("\t")[2]
    assert sentence in set(grammar_sentences("es"))
