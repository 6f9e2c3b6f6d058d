"""Indexing throughput of :mod:`speechbrain_sense.search`, end to end and by stage.

A generated folder of recordings (eSpeak NG sentences in four languages with
pauses between them, FLAC at 22.05 kHz, so decoding resamples as for most
real archives) is indexed with the exported tiny student; each stage is
then timed alone over the same audio, and the full-size figure is projected
from the full-width encoder RTF (:func:`projected_throughput`).

Authors
 * speechbrain-sense developers 2026
"""

import random
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from measurement import Clock
from workloads import (
    TINY_SIZE,
    recipe_head,
    student_source,
)

LANGUAGES = ("en", "fr", "de", "es")


# Full-width w2v-BERT 2.0 with 4 of its 24 Conformer layers, 5 s
# utterances, batch 4, 2 threads, random weights (docs/benchmarks.md,
# section 5, bench/onnx_rtf.py): the only full-width CPU RTF measured.
FULL_WIDTH_4_LAYER_RTF = {"torch eager": 0.0443, "onnxruntime int8": 0.0215}


FULL_LAYERS, MEASURED_LAYERS, RTF_THREADS = 24, 4, 2


def make_recordings(folder, files, min_seconds, max_seconds, seed=0):
    """A folder of speech recordings with pauses, written once.

    Each file strings together eSpeak NG sentences (the phrase grammar of
    ``en``, ``fr``, ``de``, ``es``, one language per file) with pauses of
    0.2-1.2 s inside a topic and 2-5 s between topics, over a faint noise
    floor (Silero VAD never sees digital silence in real recordings). A
    pool of synthesised sentences is reused across files: throughput does
    not depend on what is said.

    Arguments
    ---------
    folder : str or Path
        Where the ``.flac`` files go (reused when complete).
    files : int
        Number of recordings.
    min_seconds, max_seconds : float
        Range of recording lengths (uniform).
    seed : int
        Seed of lengths, sentences and pauses.

    Returns
    -------
    Path
        The folder.
    """
    import soundfile

    from speechbrain_sense.synthetic.espeak import ESpeakSynthesizer
    from speechbrain_sense.synthetic.phrase_grammar import grammar_sentences

    folder = Path(folder)
    if (folder / "done").is_file():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    tts = ESpeakSynthesizer()
    rng = random.Random(seed)
    pool = {}
    for language in LANGUAGES:
        texts = grammar_sentences(language, seed=seed)[:24]
        pool[language] = [tts.synthesize(text, language) for text in texts]
    rate = pool["en"][0].sample_rate
    noise = np.random.default_rng(seed)
    for i in range(files):
        language = LANGUAGES[i % len(LANGUAGES)]
        target = rng.uniform(min_seconds, max_seconds) * rate
        pieces, length = [], 0
        while length < target:
            pause = rng.uniform(2.0, 5.0) if rng.random() < 0.2 else None
            pause = pause or rng.uniform(0.2, 1.2)
            speech = rng.choice(pool[language]).waveform
            pieces += [np.zeros(int(pause * rate), np.float32), speech]
            length += int(pause * rate) + len(speech)
        wav = np.concatenate(pieces)[: int(target)]
        wav += 3e-4 * noise.standard_normal(len(wav)).astype(np.float32)
        soundfile.write(folder / f"rec{i:03d}_{language}.flac", wav, rate)
    (folder / "done").write_text("")
    return folder


def tiny_search_model(work_dir):
    """The exported tiny student as a :class:`SearchModel`.

    Arguments
    ---------
    work_dir : str or Path
        Benchmark work folder (the tiny w2v-BERT is cached there).

    Returns
    -------
    speechbrain_sense.search.query.SearchModel
    """
    from speechbrain_sense.encoders.export import export_student
    from speechbrain_sense.encoders.student import SenseStudent
    from speechbrain_sense.encoders.w2v_bert import SenseW2VBert
    from speechbrain_sense.search.query import SearchModel

    source = student_source(work_dir, "tiny")
    torch.manual_seed(0)
    student = SenseStudent(
        SenseW2VBert(source, save_path=source),
        recipe_head(TINY_SIZE["hidden_size"], 512),
    )
    folder = Path(tempfile.mkdtemp(prefix="sense-search-bench-"))
    model_dir = export_student(student.state_dict(), source, folder / "m")
    return SearchModel(model_dir, savedir=folder / "fetched")


def measure_indexing(folder, model, db_path):
    """End-to-end indexing, then each stage alone over the same audio.

    Arguments
    ---------
    folder : Path
        The recordings.
    model : SearchModel
        The encoder.
    db_path : Path
        Index database to create (must not exist).

    Returns
    -------
    dict
        ``wall``, ``cpu``, ``audio_seconds``, ``passages``,
        ``passage_seconds``, ``bytes`` (db + snapshot files) and
        ``stages`` (``{name: (wall, cpu)}``).
    """
    from speechbrain_sense.audio import load_audio
    from speechbrain_sense.data.vad import speech_segments
    from speechbrain_sense.encoders.inference import (
        duration_batches,
        pad_waveforms,
    )
    from speechbrain_sense.search.indexer import PassageSettings, index_folder
    from speechbrain_sense.search.passages import passage_spans
    from speechbrain_sense.search.store import INDEXED, SearchIndex

    settings = PassageSettings()
    rate = model.sample_rate
    # Silero's model loads on a thread's first call: not indexing work.
    speech_segments(torch.zeros(rate), rate)
    with Clock() as total:
        report = index_folder(folder, model, db_path, settings, progress=False)
    out = {
        "wall": total.wall,
        "cpu": total.cpu,
        "audio_seconds": report.audio_seconds,
        "passages": report.passages,
        "files": report.embedded,
        "bytes": sum(
            p.stat().st_size for p in db_path.parent.glob(db_path.name + "*")
        ),
    }

    paths = sorted(folder.glob("*.flac"))
    stages = {}
    with Clock() as clock:
        wavs = [load_audio(path, rate) for path in paths]
    stages["decode + resample"] = clock
    with Clock() as clock:
        segments = [speech_segments(wav, rate) for wav in wavs]
    stages["Silero VAD"] = clock
    spans = [
        passage_spans(
            s, settings.max_passage, settings.max_gap, settings.overlap
        )
        for s in segments
    ]
    pieces = [
        wav[int(start * rate) : int(end * rate)]
        for wav, file_spans in zip(wavs, spans)
        for start, end in file_spans
    ]
    out["passage_seconds"] = sum(len(p) for p in pieces) / rate
    embedded = np.empty((len(pieces), model.identity["dim"]), np.float32)
    with Clock() as clock:
        durations = [len(p) / rate for p in pieces]
        for batch in duration_batches(durations, 120.0):
            padded, lens = pad_waveforms([pieces[i] for i in batch])
            embedded[batch] = model.embed_waveforms(padded, lens).numpy()
    stages["embed (tiny encoder)"] = clock
    store = SearchIndex(db_path.with_name("stages.db"), create=True)
    store.bind(model.identity, folder)
    with Clock() as clock:
        row = 0
        for i, file_spans in enumerate(spans):
            emb = embedded[row : row + len(file_spans)]
            row += len(file_spans)
            store.replace_file(
                f"{i}".encode(), 1, 1, "0", 1.0, INDEXED, None, file_spans, emb
            )
        store.publish()
    store.close()
    stages["SQLite commits + snapshot"] = clock
    out["stages"] = {name: (c.wall, c.cpu) for name, c in stages.items()}
    return out


def projected_throughput(indexing, rtf_4_layers):
    """Audio-hours per CPU-hour of indexing with full w2v-BERT 2.0.

    ``cpu_s_per_audio_s = rest + f * RTF_24 * threads``, where ``rest`` is
    the CPU seconds per audio second of every stage but the encoder
    (decode, VAD, store: measured, they do not depend on the encoder),
    ``f`` the embedded passage seconds per audio second (pauses dropped,
    window overlaps counted twice), ``RTF_24 = RTF_4 * 24 / 4`` (an upper
    bound: the fbank and pooling, counted in ``RTF_4``, do not grow with
    depth) and ``threads`` the threads the RTF was measured with (its
    compute seconds are wall seconds on 2 cores).

    Arguments
    ---------
    indexing : dict
        :func:`measure_indexing`'s result.
    rtf_4_layers : float
        RTF of the full-width encoder with 4 of its 24 layers.

    Returns
    -------
    dict
        ``rtf_24``, ``cpu_per_audio_second``, ``audio_h_per_cpu_h``.

    Example
    -------
    >>> facts = {"audio_seconds": 100.0, "passage_seconds": 80.0,
    ...          "stages": {"embed (tiny encoder)": (1, 1), "VAD": (1, 2)}}
    >>> round(projected_throughput(facts, 0.05)["audio_h_per_cpu_h"], 3)
    2.0
    """
    audio = indexing["audio_seconds"]
    rest = sum(
        cpu
        for name, (_, cpu) in indexing["stages"].items()
        if not name.startswith("embed")
    )
    rtf_24 = rtf_4_layers * FULL_LAYERS / MEASURED_LAYERS
    fraction = indexing["passage_seconds"] / audio
    cpu = rest / audio + fraction * rtf_24 * RTF_THREADS
    return {
        "rtf_24": rtf_24,
        "cpu_per_audio_second": cpu,
        "audio_h_per_cpu_h": 1 / cpu,
    }
