"""Reading the embeddings back: SQLite BLOBs against the snapshot, warm and cold.

Authors
 * speechbrain-sense developers 2026
"""

import os
from pathlib import Path

import numpy as np
import torch
from measurement import Clock
from search_queries import mixture


def evict(*paths):
    """Drops files from the page cache (``posix_fadvise(DONTNEED)``).

    Clean pages are dropped at once on Linux, without privileges; it is
    advice, so a cold figure can only be too warm, never too cold.
    """
    for path in paths:
        if not Path(path).is_file():
            continue
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def measure_storage(size, options, folder):
    """BLOB load against snapshot map and scan, ``size`` passages.

    Arguments
    ---------
    size : int
        Passages.
    options : argparse.Namespace
        Benchmark options (``dim``).
    folder : Path
        Where the index is written (and deleted after).

    Returns
    -------
    dict
        Seconds per step (``*_warm``, ``*_cold``), ``fill_s``,
        ``publish_s``, ``db_bytes``, ``vectors_bytes``.
    """
    import sqlite3

    from speechbrain_sense.search.query import search_matrix
    from speechbrain_sense.search.store import INDEXED, SearchIndex

    db_path = folder / f"storage-{size}.db"
    index = SearchIndex(db_path, create=True)
    index.bind({"fingerprint": "bench", "dim": options.dim}, folder)
    rng = np.random.default_rng(1)
    draw = mixture(rng, 256, options.dim)  # content does not matter here
    per_file = 200  # passages of a 40-minute recording
    with Clock() as fill:
        for start in range(0, size, per_file):
            rows = min(per_file, size - start)
            emb = draw(rng, rows)
            spans = [(15.0 * j, 15.0 * j + 14.0) for j in range(rows)]
            index.replace_file(
                f"f{start}.wav".encode(), 1, 1, "0", 1.0, INDEXED, None,
                spans, emb,
            )  # fmt: skip
    with Clock() as publish:
        index.publish()
    index.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    vectors = index.vectors_path
    index.close()
    query = torch.from_numpy(draw(rng, 1))

    def load_blobs():
        """Every embedding read back out of SQLite."""
        db = sqlite3.connect(str(db_path))
        (count,) = db.execute("SELECT COUNT(*) FROM passages").fetchone()
        matrix = np.empty((count, options.dim), np.float16)
        rows = db.execute("SELECT embedding FROM passages ORDER BY id")
        for i, (blob,) in enumerate(rows):
            matrix[i] = np.frombuffer(blob, dtype=np.float16)
        db.close()
        return matrix

    def map_and_scan():
        """The snapshot mapped and scanned by one exact query."""
        matrix = np.load(vectors, mmap_mode="r")
        search_matrix(query, matrix, 10)

    def map_only():
        """The snapshot mapped, nothing read."""
        np.load(vectors, mmap_mode="r")

    out = {
        "size": size,
        "fill_s": fill.wall,
        "publish_s": publish.wall,
        "db_bytes": db_path.stat().st_size,
        "vectors_bytes": vectors.stat().st_size,
    }
    steps = {
        "blobs": load_blobs,
        "map": map_only,
        "map_scan": map_and_scan,
    }
    for name, step in steps.items():
        for cache in ("cold", "warm"):
            if cache == "cold":
                evict(db_path, vectors)
            else:
                step()  # fills the cache
            with Clock() as clock:
                step()
            out[f"{name}_{cache}"] = clock.wall
    for path in folder.glob(db_path.name + "*"):
        path.unlink()
    return out
