#!/usr/bin/env python3
"""SENSE inference cost: encoder real-time factor and retrieval search.

Two measurements:

* **Encoder real-time factor** (seconds of compute per second of audio)
  of the exported encoder, for several batch sizes: a tiny student is
  exported with :func:`speechbrain_sense.encoders.export.export_student` and loaded
  back with :class:`speechbrain_sense.encoders.inference.SenseEncoder` (the path a
  user takes); ``--config full`` builds the same inference module with
  w2v-BERT 2.0's architecture and random weights
  (:class:`~speechbrain_sense.encoders.inference.W2VBertFromConfig`). The timed
  call is ``encode_batch`` on 16 kHz waveforms: fbank features (the
  vectorised :class:`~speechbrain_sense.encoders.w2v_bert.W2VBertFbank`, on the
  model's device, inside ``forward``), the Conformer and the pooling
  head. The fbank share is timed separately.
* **Exact retrieval search** over ``N`` queries x ``N`` keys of dimension
  ``D`` with :func:`speechbrain_sense.retrieval.target_ranks` (the rank of
  each query's own key, blockwise, never materialising ``N x N``) and,
  when the module has it, :func:`~speechbrain_sense.retrieval.topk_search`
  (the exact top-k), for each ``--precisions`` the blocks are scored in
  (fp16/bf16 scoring answers exactly as fp32 does: candidates rescored in
  fp32, unsure queries searched again). Cost is ``2 N^2 D`` FLOPs;
  achieved FLOP/s are set against a plain matmul of the same block shape
  and dtype measured on the same device, the hardware limit for this
  computation, and against the fp32 matmul. The log-log slope shows how
  time grows with ``N``; sizes beyond those measured are extrapolated as
  ``N^2``.

Command lines::

    python bench/embed_throughput.py                       # CPU
    python bench/embed_throughput.py --device cuda --config full \\
        --sizes 10000,100000,300000,1000000 --precisions fp32,fp16

The last line printed is ``retrieval_fraction_of_matmul_peak: X`` (the
exact rank search at the largest ``N``).

Authors
 * speechbrain-sense developers 2026
"""

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import torch
from measurement import (
    PeakMemory,
    device_description,
    load_average,
    markdown_table,
    median,
    mib,
    synchronize,
)
from workloads import (
    DEFAULT_WORK_DIR,
    TINY_SIZE,
    quiet_libraries,
    recipe_head,
    student_source,
)

SAMPLE_RATE = 16000


# --------------------------------------------------------------------------
# Encoder real-time factor
# --------------------------------------------------------------------------


def exported_encoder(options):
    """The inference module of a SENSE encoder.

    Arguments
    ---------
    options : argparse.Namespace
        Benchmark options (``config``, ``work_dir``, ``device``).

    Returns
    -------
    tuple
        ``(embed, features)``: ``embed(wavs, wav_lens)`` returns
        ``[B, 1, D]`` embeddings; ``features(wavs, wav_lens)`` is the
        fbank computation it runs inside.
    """

    source = student_source(options.work_dir, options.config)
    if options.config == "tiny":
        from speechbrain_sense.encoders.export import export_student
        from speechbrain_sense.encoders.inference import SenseEncoder
        from speechbrain_sense.encoders.student import SenseStudent
        from speechbrain_sense.encoders.w2v_bert import SenseW2VBert

        torch.manual_seed(0)
        student = SenseStudent(
            SenseW2VBert(source, save_path=source),
            recipe_head(TINY_SIZE["hidden_size"], 512),
        )
        folder = Path(tempfile.mkdtemp(prefix="sense-export-bench-"))
        model_dir = export_student(student.state_dict(), source, folder / "m")
        model = SenseEncoder.from_hparams(
            str(model_dir),
            savedir=str(folder / "fetched"),
            run_opts={"device": options.device},
        )
        encoder = model.mods.embedding_model.encoder
        return model.encode_batch, encoder.waveform_features

    from speechbrain_sense.encoders.inference import (
        SenseUtteranceEncoder,
        W2VBertFromConfig,
    )

    config = json.loads((Path(source) / "config.json").read_text())
    extractor = json.loads(
        (Path(source) / "preprocessor_config.json").read_text()
    )
    encoder = W2VBertFromConfig(config, extractor, init_weights=True)
    width = config["hidden_size"]
    model = SenseUtteranceEncoder(encoder, recipe_head(width, 1024))
    model.eval().to(options.device)
    return model, encoder.waveform_features


def measure_rtf(options):
    """Real-time factor per batch size.

    Arguments
    ---------
    options : argparse.Namespace
        Benchmark options.

    Returns
    -------
    list of dict
        ``batch``, ``rtf`` (compute seconds per audio second) and
        ``fbank_rtf`` (its fbank part) per batch size.
    """
    embed, features = exported_encoder(options)
    device = options.device
    autocast = torch.autocast(
        torch.device(device).type,
        dtype=torch.bfloat16,
        enabled=options.bf16,
    )
    samples = int(options.seconds * SAMPLE_RATE)
    out = []
    for batch in [int(b) for b in options.batch_sizes.split(",")]:
        wavs = 0.1 * torch.randn(batch, samples)
        lens = torch.ones(batch)
        times, fbank = [], []
        for i in range(options.repeat + 1):
            synchronize(device)
            start = time.perf_counter()
            with torch.no_grad(), autocast:
                embed(wavs.to(device), lens.to(device))
            synchronize(device)
            if i:  # the first call warms up
                times.append(time.perf_counter() - start)
            start = time.perf_counter()
            features(wavs.to(device), lens)
            synchronize(device)
            fbank.append(time.perf_counter() - start)
        audio = batch * options.seconds
        out.append(
            {
                "batch": batch,
                "rtf": median(times) / audio,
                "fbank_rtf": median(fbank) / audio,
            }
        )
    return out


# --------------------------------------------------------------------------
# Retrieval
# --------------------------------------------------------------------------


def block_matmul_flops(device, dim, block_size, dtype, repeat=5):
    """FLOP/s of the search's own GEMM shape, ``[b, D] x [D, b]``.

    Arguments
    ---------
    device : str
        Where to multiply.
    dim : int
        Embedding dimension ``D``.
    block_size : int
        Block ``b``.
    dtype : torch.dtype
        Operand dtype.
    repeat : int
        Timed products (best kept).

    Returns
    -------
    float
        FLOP/s.
    """
    a = torch.randn(block_size, dim, device=device).to(dtype)
    b = torch.randn(block_size, dim, device=device).to(dtype)
    a @ b.T
    best = float("inf")
    for _ in range(repeat):
        synchronize(device)
        start = time.perf_counter()
        a @ b.T
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * block_size**2 * dim / best


def measure_search(function, size, precision, options):
    """Time and peak memory of one exact search over ``size x size``.

    Arguments
    ---------
    function : str
        ``"target_ranks"`` or ``"topk_search"``.
    size : int
        ``N`` queries and ``N`` keys.
    precision : str
        Score dtype (``retrieval.SCORE_DTYPES``).
    options : argparse.Namespace
        Benchmark options.

    Returns
    -------
    dict
        ``seconds``, ``flops_per_second``, ``peak_delta_bytes``.
    """
    from speechbrain_sense import retrieval

    device = options.device
    generator = torch.Generator().manual_seed(size)
    keys = torch.randn(size, options.dim, generator=generator)
    queries = torch.randn(size, options.dim, generator=generator)
    if options.workload == "matched":
        # Each query near its own key (cosine ~0.7), as a trained model's
        # are; "random" is the worst case for low-precision scoring: every
        # target has hundreds of keys within the rounding bound.
        queries += keys
    queries, keys = queries.to(device), keys.to(device)
    targets = torch.arange(size, device=device)
    with PeakMemory(device) as memory:
        synchronize(device)
        start = time.perf_counter()
        if function == "target_ranks":
            retrieval.target_ranks(
                queries, keys, targets, options.block_size, precision
            )
        else:
            retrieval.topk_search(
                queries,
                keys,
                options.topk,
                options.block_size,
                device,
                precision=precision,
            )
        synchronize(device)
        seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "flops_per_second": 2 * size**2 * options.dim / seconds,
        "peak_delta_bytes": memory.delta_bytes,
    }


def measure_retrieval(options):
    """Search time, FLOP/s and memory per ``N`` for each search function.

    Arguments
    ---------
    options : argparse.Namespace
        Benchmark options.

    Returns
    -------
    tuple
        ``(rows, matmul)``: one dict per (function, precision, N), and the
        matmul FLOP/s per precision.
    """
    from speechbrain_sense import retrieval

    precisions = options.precisions.split(",")
    matmul = {
        precision: block_matmul_flops(
            options.device,
            options.dim,
            options.block_size,
            retrieval.SCORE_DTYPES[precision],
        )
        for precision in sorted(set(precisions) | {"fp32"})
    }
    sizes = [int(float(n)) for n in options.sizes.split(",")]
    rows = []
    for function in ("target_ranks", "topk_search"):
        for precision in precisions:
            for size in sizes:
                if function == "topk_search" and size > options.topk_max_size:
                    continue
                result = measure_search(function, size, precision, options)
                rows.append(
                    {
                        "function": function,
                        "precision": precision,
                        "size": size,
                        **result,
                    }
                )
    return rows, matmul


def growth_exponent(rows):
    """Log-log slope of time against ``N`` between the extreme sizes.

    Arguments
    ---------
    rows : list of dict
        Results of one search function (``size``, ``seconds``).

    Returns
    -------
    float or None
        ``alpha`` in ``time ~ N^alpha`` (``None`` with one size).

    Example
    -------
    >>> growth_exponent([{"size": 10, "seconds": 1.0},
    ...                  {"size": 100, "seconds": 100.0}])
    2.0
    """
    if len(rows) < 2:
        return None
    first, last = rows[0], rows[-1]
    return math.log(last["seconds"] / first["seconds"]) / math.log(
        last["size"] / first["size"]
    )


def parse_arguments(argv=None):
    """Command-line options (see the module docstring)."""
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--config", choices=("tiny", "full"), default="tiny")
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cuda" if cuda else "cpu"
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--batch-sizes", default="1,4,16")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--bf16", action="store_true", help="encoder under bf16 autocast"
    )
    parser.add_argument(
        "--sizes",
        default="10000,100000,300000,1000000" if cuda else "10000,30000,100000",
        help="retrieval: N queries = N keys",
    )
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--block-size", type=int, default=4096)
    parser.add_argument("--topk", type=int, default=10)
    parser.add_argument(
        "--workload",
        choices=("matched", "random"),
        default="matched",
        help="retrieval: queries near their keys, or independent of them",
    )
    parser.add_argument(
        "--precisions",
        default="fp32,fp16" if cuda else "fp32",
        help="retrieval: dtypes to score in (exact answers in each)",
    )
    parser.add_argument(
        "--topk-max-size",
        type=int,
        default=10**6 if cuda else 30000,
        help="largest N for topk_search",
    )
    parser.add_argument("--skip-rtf", action="store_true")
    parser.add_argument("--skip-retrieval", action="store_true")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: torch's; 1 is steadier on a shared CPU)",
    )
    parser.add_argument("--work-dir", default=str(DEFAULT_WORK_DIR))
    return parser.parse_args(argv)


def main(argv=None):
    """Runs the benchmark; returns the rank search's fraction of matmul.

    With ``--skip-retrieval`` only the encoder is measured, and the last
    line is the load average.
    """
    options = parse_arguments(argv)
    quiet_libraries()
    if options.threads:
        torch.set_num_threads(options.threads)
    print(
        f"device: {device_description(options.device)}, "
        f"{torch.get_num_threads()} torch thread(s)"
    )
    print(f"load average at start: {load_average()}")
    if not options.skip_rtf:
        rows = [
            [
                r["batch"],
                f"{r['rtf']:.4f}",
                f"{1 / r['rtf']:.0f}x",
                f"{r['fbank_rtf']:.4f}",
                f"{100 * r['fbank_rtf'] / r['rtf']:.0f}%",
            ]
            for r in measure_rtf(options)
        ]
        print(
            f"\nEncoder ({options.config}, "
            f"{'exported' if options.config == 'tiny' else 'from config'}, "
            f"{'bf16' if options.bf16 else 'fp32'}), "
            f"{options.seconds:g} s utterances:"
        )
        print(
            markdown_table(
                [
                    "batch",
                    "RTF (s/s)",
                    "faster than real time",
                    "fbank RTF",
                    "fbank share",
                ],
                rows,
            )
        )

    if options.skip_retrieval:
        print(f"load average at end: {load_average()}")
        return None
    results, matmul = measure_retrieval(options)
    print(
        f"\nExact retrieval, {options.workload} queries, D={options.dim}, "
        f"block {options.block_size} "
        f"(reference: [{options.block_size}, {options.dim}] x "
        f"[{options.dim}, {options.block_size}] matmul = "
        + ", ".join(
            f"{flops / 1e9:.1f} GFLOP/s in {precision}"
            for precision, flops in matmul.items()
        )
        + "):"
    )
    rows = []
    for r in results:
        flops = r["flops_per_second"]
        rows.append(
            [
                r["function"],
                r["precision"],
                f"{r['size']:.0e}".replace("e+0", "e"),
                f"{r['seconds']:.2f}",
                f"{flops / 1e9:.1f}",
                f"{flops / matmul[r['precision']]:.2f}",
                f"{flops / matmul['fp32']:.2f}",
                mib(r["peak_delta_bytes"]),
            ]
        )
    print(
        markdown_table(
            [
                "search",
                "scored in",
                "N",
                "seconds",
                "GFLOP/s",
                "of its matmul",
                "of fp32 matmul",
                "peak MiB (above inputs)",
            ],
            rows,
        )
    )
    for function in ("target_ranks", "topk_search"):
        for precision in options.precisions.split(","):
            mine = [
                r
                for r in results
                if r["function"] == function and r["precision"] == precision
            ]
            alpha = growth_exponent(mine)
            if alpha is not None:
                last = mine[-1]
                at_million = last["seconds"] * (1e6 / last["size"]) ** 2
                print(
                    f"{function} ({precision}): time ~ N^{alpha:.2f}; "
                    f"10^6 x 10^6 on this device: {at_million:.0f} s "
                    f"(measured up to {last['size']:.0e}, scaled as N^2)"
                )
    ranks = [
        r
        for r in results
        if r["function"] == "target_ranks" and r["precision"] == "fp32"
    ] or [r for r in results if r["function"] == "target_ranks"]
    print(f"load average at end: {load_average()}")
    fraction = ranks[-1]["flops_per_second"] / matmul[ranks[-1]["precision"]]
    print(f"retrieval_fraction_of_matmul_peak: {fraction:.2f}")
    return fraction


if __name__ == "__main__":
    main()
