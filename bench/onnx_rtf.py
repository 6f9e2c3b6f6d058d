#!/usr/bin/env python3
"""SENSE encoder on the CPU: PyTorch eager vs onnxruntime fp32 vs int8.

A SENSE student is exported as a model folder
(:func:`speechbrain_sense.encoders.export.export_student`), loaded back the way a
user loads it (:func:`speechbrain_sense.encoders.onnx_export.load_model`) and
exported to ONNX (:func:`speechbrain_sense.encoders.onnx_export.export_onnx`, fp32
and int8 dynamic quantisation). The three backends then embed the same
padded batches of 16 kHz noise:

* ``torch eager``: the model's ``encode_batch``;
* ``onnxruntime fp32`` and ``onnxruntime int8``:
  :class:`~speechbrain_sense.encoders.onnx_export.OnnxSenseEncoder`'s
  ``encode_batch``.

Every timed call starts from waveforms, so the fbank is included for all
three: the same :class:`~speechbrain_sense.encoders.w2v_bert.W2VBertFbank` in
PyTorch (the ONNX graph starts at the features); its share is timed
apart. Torch and onnxruntime get the same thread count (``--threads``,
default one per core). The real-time factor (RTF) is the median seconds
of compute per second of audio; the cosine is each backend's lowest
cosine to the eager embeddings over the utterances of a batch.

``--config tiny`` is ``sense_tiny.yaml``'s encoder; ``--config full`` is
w2v-BERT 2.0's architecture with random weights (~580M parameters), and
``--layers N`` keeps its width but only ``N`` of its 24 Conformer layers
(for machines where the full model is too slow to export and time).

Command lines::

    python bench/onnx_rtf.py                                  # tiny
    python bench/onnx_rtf.py --config full --layers 6 --batch-sizes 1,4

The last line printed is ``onnx_int8_speedup: X`` (eager RTF over int8
RTF at the largest batch).

Authors
 * speechbrain-sense developers 2026
"""

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch
from measurement import (
    device_description,
    load_average,
    markdown_table,
    median,
)
from workloads import (
    DEFAULT_WORK_DIR,
    TINY_SIZE,
    quiet_libraries,
    recipe_head,
    student_source,
)

SAMPLE_RATE = 16000
BACKENDS = ("torch eager", "onnxruntime fp32", "onnxruntime int8")
# The pooling head's output width per config (as embed_throughput.py).
EMBEDDING_DIM = {"tiny": 512, "full": 1024}


def truncated_full_source(work_dir, layers):
    """w2v-BERT 2.0's architecture with ``layers`` Conformer layers.

    Arguments
    ---------
    work_dir : str or Path
        Work folder (the model is written once, then reused).
    layers : int
        Conformer layers (24 in w2v-BERT 2.0).

    Returns
    -------
    str
        Model directory (random weights, seed 0).
    """
    from transformers import (
        SeamlessM4TFeatureExtractor,
        Wav2Vec2BertConfig,
        Wav2Vec2BertModel,
    )

    folder = Path(work_dir) / f"w2v-bert-2.0-random-{layers}-layers"
    if folder.exists():
        return str(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
    try:
        torch.manual_seed(0)
        config = Wav2Vec2BertConfig(layerdrop=0.0, num_hidden_layers=layers)
        Wav2Vec2BertModel(config).save_pretrained(tmp)
        # The extractor of workloads.student_source's full model.
        SeamlessM4TFeatureExtractor(
            feature_size=80,
            num_mel_bins=80,
            sampling_rate=SAMPLE_RATE,
            stride=2,
            padding_value=1.0,
        ).save_pretrained(tmp)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return str(folder)


def export_models(options, folder):
    """Exports a random SENSE student to a model folder, then to ONNX.

    Arguments
    ---------
    options : argparse.Namespace
        Benchmark options (``config``, ``layers``, ``work_dir``).
    folder : Path
        Where the model folder and the ONNX folder are written.

    Returns
    -------
    dict
        ``model_dir``, ``onnx_dir``, ``parameters`` (encoder + head),
        ``export_seconds`` (ONNX export and quantisation).
    """
    from speechbrain_sense.encoders.export import export_student
    from speechbrain_sense.encoders.onnx_export import export_onnx
    from speechbrain_sense.encoders.student import SenseStudent
    from speechbrain_sense.encoders.w2v_bert import SenseW2VBert

    if options.config == "full" and options.layers:
        source = truncated_full_source(options.work_dir, options.layers)
    else:
        source = student_source(options.work_dir, options.config)
    width = json.loads((Path(source) / "config.json").read_text())[
        "hidden_size"
    ]
    torch.manual_seed(0)
    student = SenseStudent(
        SenseW2VBert(source, save_path=source),
        recipe_head(width, EMBEDDING_DIM[options.config]),
    )
    parameters = sum(p.numel() for p in student.parameters())
    model_dir = export_student(student.state_dict(), source, folder / "m")
    del student
    start = time.perf_counter()
    onnx_dir = export_onnx(model_dir, folder / "onnx", check=False)
    return {
        "model_dir": model_dir,
        "onnx_dir": onnx_dir,
        "parameters": parameters,
        "export_seconds": time.perf_counter() - start,
    }


def backends(exported, savedir, threads):
    """The three embedding functions, waveforms in, ``[B, D]`` out.

    Arguments
    ---------
    exported : dict
        What :func:`export_models` returns.
    savedir : Path
        Where SpeechBrain links the model folder's files.
    threads : int
        onnxruntime intra-op threads (torch's are set by the caller).

    Returns
    -------
    dict
        Backend name -> ``embed(wavs, wav_lens)``; ``"fbank"`` -> the
        feature computation alone.
    """
    from speechbrain_sense.encoders.onnx_export import (
        OnnxSenseEncoder,
        load_model,
        waveform_features,
    )

    model = load_model(exported["model_dir"], savedir)

    def eager(wavs, wav_lens):
        """Eager PyTorch embeddings.

        Arguments
        ---------
        wavs : torch.Tensor
            ``[B, T]`` padded waveforms.
        wav_lens : torch.Tensor
            ``[B]`` relative lengths.

        Returns
        -------
        torch.Tensor
            ``[B, D]`` embeddings.
        """
        with torch.no_grad():
            return model.encode_batch(wavs, wav_lens)[:, 0]

    runs = {"torch eager": eager}
    for variant in ("fp32", "int8"):
        encoder = OnnxSenseEncoder.from_folder(
            exported["onnx_dir"], variant=variant, threads=threads
        )
        runs[f"onnxruntime {variant}"] = encoder.encode_batch
    fbank = encoder.fbank
    runs["fbank"] = lambda wavs, wav_lens: waveform_features(
        fbank, wavs, wav_lens
    )
    return runs


def cosines(a, b):
    """Cosine of matching rows.

    Arguments
    ---------
    a : torch.Tensor
        ``[B, D]``.
    b : torch.Tensor
        ``[B, D]``.

    Returns
    -------
    torch.Tensor
        ``[B]`` float64 cosines.

    Example
    -------
    >>> cosines(torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 1.0]]))
    tensor([0.7071], dtype=torch.float64)
    """
    return torch.nn.functional.cosine_similarity(a.double(), b.double())


def measure(runs, options):
    """RTF of each backend and cosine to eager, per batch size.

    Arguments
    ---------
    runs : dict
        What :func:`backends` returns.
    options : argparse.Namespace
        ``batch_sizes``, ``seconds``, ``repeat``.

    Returns
    -------
    list of dict
        One per (batch, backend): ``batch``, ``backend``, ``rtf``,
        ``fbank_rtf``, ``min_cosine`` (to eager).
    """
    samples = round(options.seconds * SAMPLE_RATE)
    generator = torch.Generator().manual_seed(0)
    rows = []
    for batch in [int(b) for b in options.batch_sizes.split(",")]:
        wavs = 0.1 * torch.randn(batch, samples, generator=generator)
        lens = torch.ones(batch)
        if batch > 1:  # the last utterance shorter: a padded batch
            lens[-1] = 0.8
            wavs[-1, round(0.8 * samples) :] = 0.0
        audio = float(lens.sum()) * options.seconds
        fbank = []
        for _ in range(options.repeat):
            start = time.perf_counter()
            runs["fbank"](wavs, lens)
            fbank.append(time.perf_counter() - start)
        reference = None
        for backend in BACKENDS:
            embed = runs[backend]
            out = torch.as_tensor(embed(wavs, lens))  # warm-up
            times = []
            for _ in range(options.repeat):
                start = time.perf_counter()
                embed(wavs, lens)
                times.append(time.perf_counter() - start)
            if reference is None:
                reference = out
            rows.append(
                {
                    "batch": batch,
                    "backend": backend,
                    "rtf": median(times) / audio,
                    "fbank_rtf": median(fbank) / audio,
                    "min_cosine": float(cosines(out, reference).min()),
                }
            )
    return rows


def parse_arguments(argv=None):
    """Command-line options (see the module docstring).

    Arguments
    ---------
    argv : list of str
        Command-line arguments.

    Returns
    -------
    argparse.Namespace
        The options.
    """
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--config", choices=("tiny", "full"), default="tiny")
    parser.add_argument(
        "--layers",
        type=int,
        default=None,
        help="full config: Conformer layers kept (default: all 24)",
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--batch-sizes", default="1,4")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count(),
        help="torch and onnxruntime intra-op threads",
    )
    parser.add_argument("--work-dir", default=str(DEFAULT_WORK_DIR))
    return parser.parse_args(argv)


def main(argv=None):
    """Runs the benchmark; returns the int8 speedup over eager.

    Arguments
    ---------
    argv : list of str
        Command-line arguments.

    Returns
    -------
    float
        Eager RTF over onnxruntime int8 RTF at the largest batch.
    """
    import onnxruntime

    options = parse_arguments(argv)
    quiet_libraries()
    torch.set_num_threads(options.threads)
    print(
        f"device: {device_description('cpu')}, {options.threads} thread(s) "
        f"for torch and onnxruntime {onnxruntime.__version__}"
    )
    print(f"load average at start: {load_average()}")
    with tempfile.TemporaryDirectory(prefix="sense-onnx-bench-") as tmp:
        exported = export_models(options, Path(tmp))
        runs = backends(exported, Path(tmp) / "fetched", options.threads)
        rows = measure(runs, options)
    if options.config == "tiny":
        size = f"tiny ({TINY_SIZE['num_layers']} layers)"
    else:
        size = f"full architecture, {options.layers or 24} of 24 layers"
    print(
        f"\nSENSE encoder ({size}, {exported['parameters'] / 1e6:.1f}M "
        f"parameters, random weights), {options.seconds:g} s utterances "
        f"(the last of a batch of 2+ 80% long), fbank included; ONNX export + "
        f"int8 quantisation took {exported['export_seconds']:.1f} s:"
    )
    eager = {r["batch"]: r["rtf"] for r in rows if r["backend"] == BACKENDS[0]}
    print(
        markdown_table(
            [
                "batch",
                "backend",
                "RTF (s/s)",
                "faster than real time",
                "speedup vs eager",
                "fbank share",
                "min cosine to eager",
            ],
            [
                [
                    r["batch"],
                    r["backend"],
                    f"{r['rtf']:.4f}",
                    f"{1 / r['rtf']:.0f}x",
                    f"{eager[r['batch']] / r['rtf']:.2f}x",
                    f"{100 * r['fbank_rtf'] / r['rtf']:.0f}%",
                    f"{r['min_cosine']:.6f}",
                ]
                for r in rows
            ],
        )
    )
    print(f"load average at end: {load_average()}")
    largest = max(eager)
    int8 = next(
        r["rtf"]
        for r in rows
        if r["batch"] == largest and r["backend"] == BACKENDS[-1]
    )
    speedup = eager[largest] / int8
    print(f"onnx_int8_speedup: {speedup:.2f}")
    return speedup


if __name__ == "__main__":
    main()
