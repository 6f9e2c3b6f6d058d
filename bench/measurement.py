"""How the benchmarks measure: clocks, peak memory, device facts, tables.

Every benchmark in ``bench/`` reports wall-clock times taken with
:func:`time.perf_counter` after :func:`synchronize`, peak memory from
:class:`PeakMemory`, and the machine it ran on (:func:`device_description`,
:func:`load_average`), and prints its figures with :func:`markdown_table`
so they paste straight into ``docs/benchmarks.md``.

Peak memory
-----------
* CUDA: ``torch.cuda.max_memory_allocated`` after
  ``reset_peak_memory_stats`` (tensors only, not the caching allocator's
  reserve).
* CPU: the process's resident-set high-water mark ``VmHWM`` from
  ``/proc/self/status``, reset on entry by writing ``5`` to
  ``/proc/self/clear_refs`` (Linux). It counts everything the process
  touches (tensors, NumPy buffers, the allocator's free lists) but not
  DataLoader worker processes. Run one pipeline per process, so peaks of
  different pipelines never mix.

Authors
 * speechbrain-sense developers 2026
"""

import os
import platform
import resource
import statistics
import time
from pathlib import Path

import torch

# Dense bf16 tensor-core peak (FLOP/s) by a substring of the device name,
# most specific first (NVIDIA data sheets, without sparsity).
PEAK_BF16_FLOPS = (
    ("H100 NVL", 835e12),
    ("H100 PCIe", 756e12),
    ("H100", 989e12),  # SXM (device name "NVIDIA H100 80GB HBM3")
    ("H200", 989e12),
    ("A100", 312e12),
)


def synchronize(device):
    """Waits for queued GPU work (no-op on the CPU).

    Arguments
    ---------
    device : str or torch.device
        Where the work runs.
    """
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def cpu_model():
    """The CPU's model name, as ``/proc/cpuinfo`` gives it.

    Returns
    -------
    str
        E.g. ``"AMD EPYC"``; ``platform.processor()`` off Linux.
    """
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def device_description(device):
    """One line naming the device, its size and the torch version.

    Arguments
    ---------
    device : str or torch.device
        ``"cpu"`` or a CUDA device.

    Returns
    -------
    str
        E.g. ``"CPU: AMD EPYC, 2 cores; torch 2.14.1"``.
    """
    device = torch.device(device)
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        what = (
            f"GPU: {props.name}, {props.total_memory / 2**30:.0f} GiB, "
            f"CUDA {torch.version.cuda}"
        )
    else:
        what = f"CPU: {cpu_model()}, {os.cpu_count()} cores"
    return f"{what}; torch {torch.__version__}"


def load_average():
    """The 1, 5 and 15 minute load averages (other jobs share the host).

    Returns
    -------
    str
        E.g. ``"0.41 0.77 1.02"``.
    """
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def peak_bf16_flops(device):
    """Dense bf16 peak of a known GPU.

    Arguments
    ---------
    device : str or torch.device
        A CUDA device.

    Returns
    -------
    tuple
        ``(flops_per_second, table_key)``, or ``(None, None)`` for a GPU
        (or CPU) that is not in :data:`PEAK_BF16_FLOPS`.

    Example
    -------
    >>> peak_bf16_flops("cpu")
    (None, None)
    """
    if torch.device(device).type != "cuda":
        return None, None
    name = torch.cuda.get_device_name(device)
    for key, flops in PEAK_BF16_FLOPS:
        if key in name:
            return flops, key
    return None, None


def _status_kib(field):
    """A ``kB`` field of ``/proc/self/status`` (``None`` off Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


class PeakMemory:
    """Peak memory of the code inside a ``with`` block.

    Arguments
    ---------
    device : str or torch.device
        CUDA: tensor memory of that device; CPU: resident memory of this
        process (see the module docstring).

    Attributes
    ----------
    start_bytes : int
        Memory in use on entry.
    peak_bytes : int
        Highest memory in use inside the block (on the CPU ``0`` when
        ``/proc`` is unavailable).
    delta_bytes : int
        ``peak_bytes - start_bytes``: what the block itself added.

    Example
    -------
    >>> with PeakMemory("cpu") as memory:
    ...     x = torch.ones(2**22)
    >>> memory.peak_bytes >= memory.start_bytes
    True
    """

    def __init__(self, device):
        self.device = torch.device(device)
        self.start_bytes = self.peak_bytes = self.delta_bytes = 0

    def __enter__(self):
        """Resets the peak counters: CUDA's, or the RSS high-water mark."""
        if self.device.type == "cuda":
            synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start_bytes = torch.cuda.memory_allocated(self.device)
        else:
            try:
                Path("/proc/self/clear_refs").write_text("5")
            except OSError:
                pass  # the high-water mark then covers the whole process
            self.start_bytes = 1024 * (_status_kib("VmRSS") or 0)
        return self

    def __exit__(self, *exc_info):
        """Leaves the context; exceptions propagate.

        Arguments
        ---------
        *exc_info
            Positional arguments passed on.
        """
        if self.device.type == "cuda":
            synchronize(self.device)
            self.peak_bytes = torch.cuda.max_memory_allocated(self.device)
        else:
            self.peak_bytes = 1024 * (_status_kib("VmHWM") or 0)
        self.delta_bytes = max(0, self.peak_bytes - self.start_bytes)


def matmul_flops_per_second(device, dtype=torch.float32, size=4096, repeat=5):
    """Measured throughput of one plain square matmul on ``device``.

    The reference "hardware limit" of the CPU benchmarks (and a check of
    the data-sheet peak on a GPU): the best of ``repeat`` timed products
    of two ``size x size`` matrices, after one warm-up product.

    Arguments
    ---------
    device : str or torch.device
        Where to multiply.
    dtype : torch.dtype
        Element type.
    size : int
        Matrix side.
    repeat : int
        Timed products.

    Returns
    -------
    float
        FLOP/s (``2 size^3`` per product).
    """
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeat):
        synchronize(device)
        start = time.perf_counter()
        torch.mm(a, b)
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def median(values):
    """Median of a non-empty list (``nan`` when empty).

    Arguments
    ---------
    values : list of float
        Numbers.

    Returns
    -------
    float
        Their median.

    Example
    -------
    >>> median([3.0, 1.0, 2.0]), median([])
    (2.0, nan)
    """
    return statistics.median(values) if values else float("nan")


def mib(num_bytes):
    """Bytes as MiB with one decimal, for tables.

    Arguments
    ---------
    num_bytes : float
        Bytes.

    Returns
    -------
    str
        E.g. ``"1.5"``.

    Example
    -------
    >>> mib(3 * 2**19)
    '1.5'
    """
    return f"{num_bytes / 2**20:.1f}"


def markdown_table(header, rows):
    """A GitHub-markdown table.

    Arguments
    ---------
    header : list of str
        Column titles.
    rows : list of list
        Cells (converted with ``str``).

    Returns
    -------
    str
        The table, one line per row.

    Example
    -------
    >>> print(markdown_table(["a", "b"], [[1, 2]]))
    | a | b |
    |---|---|
    | 1 | 2 |
    """
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += [
        "| " + " | ".join(str(cell) for cell in row) + " |" for row in rows
    ]
    return "\n".join(lines)


class Clock:
    """Wall and process CPU seconds of a ``with`` block.

    CPU time is ``resource.getrusage(RUSAGE_SELF)`` (user + system), so
    it counts every thread of the process: torch's, and the indexer's
    decode workers.

    Example
    -------
    >>> with Clock() as clock:
    ...     _ = sum(range(10000))
    >>> clock.wall >= 0 and clock.cpu >= 0
    True
    """

    @staticmethod
    def _cpu():
        """CPU seconds of this process so far (user + system)."""
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    def __enter__(self):
        """Starts both clocks."""
        self._wall, self._cpu0 = time.perf_counter(), self._cpu()
        return self

    def __exit__(self, *exc_info):
        """Stops both clocks; exceptions propagate.

        Arguments
        ---------
        *exc_info
            Positional arguments passed on.
        """
        self.wall = time.perf_counter() - self._wall
        self.cpu = self._cpu() - self._cpu0
