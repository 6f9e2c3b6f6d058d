"""Fixtures of the search tests: an archive with known answers and a model.

The model is trained in the fixture (about 10 s on two cores): a tiny
w2v-BERT student fitted to the passages the indexer cuts from the archive,
against the real multilingual Universal Sentence Encoder, which the
exported ``training.json`` names as its teacher
(:mod:`speechbrain_sense.synthetic.search`).
"""

import shutil

import pytest

from speechbrain_sense.search.query import SearchModel
from speechbrain_sense.synthetic.search import (
    make_search_archive,
    train_search_model,
)


@pytest.fixture(scope="session")
def search_archive(tmp_path_factory):
    """``(audio_dir, spoken, model_dir)``: recordings, truth, model."""
    root = tmp_path_factory.mktemp("search_archive")
    spoken = make_search_archive(root / "audio")
    model_dir = train_search_model(root / "audio", spoken, root / "model")
    return root / "audio", spoken, model_dir


@pytest.fixture(scope="session")
def search_model(search_archive):
    """The trained model, loaded once for every search test."""
    return SearchModel(search_archive[2])


@pytest.fixture
def archive_copy(search_archive, tmp_path):
    """A private copy of the recordings, for tests that change them."""
    audio = tmp_path / "audio"
    shutil.copytree(search_archive[0], audio)
    return audio
