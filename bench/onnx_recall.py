#!/usr/bin/env python3
"""What ONNX export and int8 quantisation cost in retrieval, on a trained model.

``onnx_rtf.py`` times the backends on random weights; a trained model's
embeddings are what int8 rounding can actually move. This program takes a
recipe's trained checkpoint (by default what ``make demo`` leaves behind),
exports it (:mod:`speechbrain_sense.encoders.export`, ``--format onnx``), embeds the
recipe's test set with the three backends and prints, for each, the
speech-to-text Recall@1 against the teacher's embeddings of the
transcripts (within each language, their mean, and over all languages
pooled) and its lowest cosine to the eager embeddings.

Command line (after ``make demo``)::

    python bench/onnx_recall.py

The last line printed is ``onnx_int8_recall_drop: X``: eager's mean R@1
minus int8's, in points.

Authors
 * speechbrain-sense developers 2026
"""

import argparse
import csv
import tempfile
from pathlib import Path

import torch
from measurement import device_description, markdown_table
from workloads import quiet_libraries

REPO = Path(__file__).resolve().parents[1]
DEMO_FOLDER = REPO / "recipes/CommonVoice/SENSE/results"
BACKENDS = ("torch eager", "onnxruntime fp32", "onnxruntime int8")


def read_test_set(csv_path, data_folder):
    """The utterances of a recipe manifest.

    Arguments
    ---------
    csv_path : Path
        Manifest with ``wav``, ``sentence`` and ``lang`` columns.
    data_folder : Path
        What ``$data_root`` in the ``wav`` column stands for.

    Returns
    -------
    list of dict
        One ``{"wav", "sentence", "lang"}`` per row, in file order.
    """
    with open(csv_path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{csv_path}: no utterances")
    for row in rows:
        row["wav"] = row["wav"].replace("$data_root", str(data_folder))
    return rows


def training_teacher(hparams_file):
    """The teacher a recipe trained against, read from its resolved yaml.

    Arguments
    ---------
    hparams_file : Path
        The ``hyperparams.yaml`` SpeechBrain copies into the output folder.

    Returns
    -------
    source : str
        ``teacher_from_source``'s source (hub id, folder or
        ``universal_sentence_encoder``).
    pooling : str
        Its pooling (HuggingFace teachers).
    """
    from ruamel.yaml import YAML

    data = YAML(typ="rt").load(hparams_file.read_text(encoding="utf-8"))
    teacher = data.get("teacher")
    if not isinstance(teacher, dict) or "source" not in teacher:
        raise ValueError(
            f"{hparams_file}: no `teacher: !apply:...teacher_from_source` "
            "with a source"
        )
    return str(teacher["source"]), str(teacher.get("pooling", "cls"))


def embed(encode, wavs, batch_size):
    """Embeds waveforms in padded batches of similar length.

    Arguments
    ---------
    encode : callable
        ``(wavs [B, T], wav_lens [B]) -> [B, D]`` embeddings.
    wavs : list of torch.Tensor
        ``[time]`` 16 kHz waveforms.
    batch_size : int
        Utterances per batch.

    Returns
    -------
    torch.Tensor
        ``[len(wavs), D]`` embeddings in input order.
    """
    order = sorted(range(len(wavs)), key=lambda i: len(wavs[i]))
    out = [None] * len(wavs)
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        longest = max(len(wavs[i]) for i in index)
        batch = torch.zeros(len(index), longest)
        for row, i in enumerate(index):
            batch[row, : len(wavs[i])] = wavs[i]
        lens = torch.tensor([len(wavs[i]) / longest for i in index])
        with torch.no_grad():
            embeddings = torch.as_tensor(encode(batch, lens))
        for row, i in enumerate(index):
            out[i] = embeddings[row].float()
    return torch.stack(out)


def parse_arguments(argv=None):
    """Reads the command line.

    Arguments
    ---------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    argparse.Namespace
        The options.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--save-folder",
        default=str(DEMO_FOLDER / "sense_tiny/1986/save"),
        help="the recipe's save folder (default: make demo's)",
    )
    parser.add_argument(
        "--data-folder",
        default=str(DEMO_FOLDER / "synthetic_cv"),
        help="what $data_root stands for in the manifest",
    )
    parser.add_argument(
        "--csv", default=None, help="test manifest (default: <save>/test.csv)"
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--work-dir", default=None)
    return parser.parse_args(argv)


def main(argv=None):
    """Exports, embeds the test set with each backend and prints R@1.

    Arguments
    ---------
    argv : list of str, optional
        Command line (default: ``sys.argv[1:]``).

    Returns
    -------
    float
        Eager's mean R@1 minus int8's, in points.
    """
    options = parse_arguments(argv)
    quiet_libraries()
    from speechbrain_sense.audio import load_audio
    from speechbrain_sense.encoders import export
    from speechbrain_sense.encoders.onnx_export import (
        OnnxSenseEncoder,
        load_model,
        row_cosines,
    )
    from speechbrain_sense.retrieval import speech_to_text_recall
    from speechbrain_sense.teachers.sentence_encoders import teacher_from_source

    save = Path(options.save_folder)
    if not save.is_dir():
        raise SystemExit(f"{save}: no such save folder (run `make demo`)")
    if options.threads:
        torch.set_num_threads(options.threads)
    rows = read_test_set(
        Path(options.csv or save / "test.csv"), Path(options.data_folder)
    )
    work = Path(options.work_dir or tempfile.mkdtemp(prefix="onnx_recall_"))
    model_dir = work / "model"
    export.main(
        ["--checkpoint", str(save), "--out", str(model_dir), "--format=onnx"]
    )

    eager = load_model(model_dir, work / "savedir")
    encoders = {
        "torch eager": lambda w, n: eager.encode_batch(w, n)[:, 0],
        "onnxruntime fp32": OnnxSenseEncoder.from_folder(
            model_dir / "onnx", "fp32", threads=options.threads
        ).encode_batch,
        "onnxruntime int8": OnnxSenseEncoder.from_folder(
            model_dir / "onnx", "int8", threads=options.threads
        ).encode_batch,
    }
    wavs = [load_audio(row["wav"], 16000) for row in rows]
    transcripts = [row["sentence"] for row in rows]
    languages = [row["lang"] for row in rows]

    source, pooling = training_teacher(save.parent / "hyperparams.yaml")
    teacher = teacher_from_source(
        source, pooling=pooling, cache_dir=str(work / "teacher")
    )
    unique = sorted(set(transcripts))
    text_keys = dict(zip(unique, teacher.encode(unique)))

    embeddings = {
        name: embed(fn, wavs, options.batch_size)
        for name, fn in encoders.items()
    }
    table = []
    recall = {}
    for name in BACKENDS:
        result = speech_to_text_recall(
            embeddings[name], text_keys, transcripts, languages, ks=(1,)
        )
        recall[name] = 100 * result["mean"]["R@1"]
        cosine = row_cosines(embeddings[name], embeddings["torch eager"])
        per_language = [
            f"{lang} {100 * result[lang]['R@1']:.1f}"
            for lang in sorted(set(languages))
        ]
        table.append(
            [
                name,
                ", ".join(per_language),
                f"{recall[name]:.1f}",
                f"{100 * result['all']['R@1']:.1f}",
                f"{recall[name] - recall['torch eager']:+.1f}",
                f"{cosine.min():.6f}",
            ]
        )
    print(device_description("cpu"))
    print(
        f"\n{len(rows)} test utterances of {save} "
        f"({', '.join(sorted(set(languages)))}), teacher "
        f"{source}:"
    )
    print(
        markdown_table(
            [
                "backend",
                "R@1 per language",
                "R@1 mean",
                "R@1 all pooled",
                "ΔR@1 vs eager",
                "min cosine to eager",
            ],
            table,
        )
    )
    drop = recall["torch eager"] - recall["onnxruntime int8"]
    print(f"onnx_int8_recall_drop: {drop:.1f}")
    return drop


if __name__ == "__main__":
    main()
