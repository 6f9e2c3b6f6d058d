"""The search index on disk: SQLite for metadata, a float16 matrix to scan.

An index is one SQLite database (WAL mode) plus a derived matrix file
next to it::

    archive.db                    files, passages, embeddings (the truth)
    archive.db.vectors.<gen>.npy  float16 [N, D] snapshot of them all
    archive.db.vectors.json       which snapshot is current

**Why both.** Embeddings are stored in the database, as float16 BLOBs in
the ``passages`` table, because a file's passages and its row in ``files``
are then written in one transaction: an indexing run killed at any moment
leaves every file either fully indexed or not at all, never half indexed
or duplicated, and a rerun resumes from there. But a query must scan all
embeddings, and reading them back out of SQLite costs 0.2 s per 10^5
passages and 2-3 s per 10^6 (1024-d), in every process that queries, into
private memory (``bench/search_bench.py``, docs/benchmarks.md §8);
memory-mapping a contiguous matrix takes milliseconds and lets the
operating system share it in its page cache across queries and
processes. So each indexing run ends by writing the matrix snapshot
(files named after the database's ``generation``, never rewritten); a
query maps it, and rebuilds it only if the database changed since (a run
that was killed).

Paths are stored relative to the indexed folder, as the bytes the file
system gave (``os.fsencode``): a file name that is not valid UTF-8 is
indexed and served like any other.

Authors
 * speechbrain-sense developers 2026
"""

import contextlib
import json
import os
import sqlite3
import tempfile
from pathlib import Path

import numpy as np

SCHEMA_VERSION = 1
VECTORS_SUFFIX = ".vectors"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    path BLOB NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    duration REAL,
    status TEXT NOT NULL,
    error TEXT
);
CREATE TABLE IF NOT EXISTS passages (
    id INTEGER PRIMARY KEY,
    file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    start REAL NOT NULL,
    end REAL NOT NULL,
    embedding BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS passages_by_file ON passages(file_id);
"""

#: ``files.status`` values: embedded; decoded but without speech; failed.
INDEXED, NO_SPEECH, UNREADABLE = "indexed", "no_speech", "unreadable"


class SearchIndexError(RuntimeError):
    """An index cannot be used as asked (the message says why)."""


class ModelMismatchError(SearchIndexError):
    """The index was built with another model than the one given."""


def resolve_inside(root, path):
    """Where ``path`` leads, links followed, if that is inside ``root``.

    Arguments
    ---------
    root : bytes
        The indexed folder, already resolved (``os.path.realpath``).
    path : bytes
        Any path.

    Returns
    -------
    bytes or None
        The resolved path (``root`` itself counts as inside), or None.

    Example
    -------
    >>> resolve_inside(b"/audio", b"/audio/a/../b.wav")
    b'/audio/b.wav'
    >>> resolve_inside(b"/audio", b"/audio/../etc/passwd") is None
    True
    """
    real = os.path.realpath(path)
    if os.path.commonpath([root, real]) != root:
        return None
    return real


def display_path(raw):
    """A stored path as text, undecodable bytes shown as escapes.

    Arguments
    ---------
    raw : bytes
        The path as stored.

    Returns
    -------
    str

    Example
    -------
    >>> display_path(b"r\\xe9sum\\xe9.wav")
    'r\\\\xe9sum\\\\xe9.wav'
    """
    return raw.decode("utf-8", errors="backslashreplace")


class SearchIndex:
    """One index database: its files, passages and embedding matrix.

    Arguments
    ---------
    db_path : str or Path
        The SQLite file (created when ``create``).
    create : bool
        Create the database when it does not exist (else it must).

    Example
    -------
    >>> import tempfile
    >>> index = SearchIndex(Path(tempfile.mkdtemp()) / "a.db", create=True)
    >>> index.bind({"fingerprint": "f", "dim": 2}, audio_root="/audio")
    False
    >>> file_id = index.replace_file(
    ...     b"a.wav", 10, 1, "0", 2.0, INDEXED, None,
    ...     [(0.0, 1.5)], np.ones((1, 2), dtype=np.float32))
    >>> index.publish()
    >>> index.matrix().shape, index.passage(index.passage_ids()[0])["end"]
    ((1, 2), 1.5)
    """

    def __init__(self, db_path, create=False):
        self.path = Path(db_path)
        if not create and not self.path.is_file():
            raise SearchIndexError(f"no search index at {self.path}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(self.path), check_same_thread=False)
        try:
            # Before the first table (a no-op on an existing database): a
            # 2 KiB float16 row fills a 4 KiB page on its own, 16 KiB pages
            # hold seven (43% smaller, bench/search_bench.py).
            self.db.execute("PRAGMA page_size=16384")
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as error:
            self.db.close()
            raise SearchIndexError(
                f"{self.path} is not a search index ({error})"
            ) from error
        version = self.meta("schema_version")
        if version is None:
            self.set_meta("schema_version", SCHEMA_VERSION)
        elif int(version) != SCHEMA_VERSION:
            raise SearchIndexError(
                f"{self.path} has index schema {version}; this version of "
                f"speechbrain-sense reads schema {SCHEMA_VERSION}: rebuild "
                "it with `index`"
            )
        self._matrix = None  # (generation, matrix, ids)
        # (generation, FAISS index): kept by query.faiss_index_for.
        self.faiss_cache = None

    def close(self):
        """Closes the database."""
        self.db.close()

    # -- metadata ---------------------------------------------------------

    def meta(self, key, default=None):
        """A metadata value (JSON-decoded), or ``default``.

        Arguments
        ---------
        key : str
            Its name.
        default : object
            Returned when the index has no such value.

        Returns
        -------
        object
        """
        row = self.db.execute(
            "SELECT value FROM meta WHERE key = ?", (key,)
        ).fetchone()
        return default if row is None else json.loads(row[0])

    def set_meta(self, key, value):
        """Sets a metadata value (JSON-encoded) and commits.

        Arguments
        ---------
        key : str
            Its name.
        value : object
            Anything JSON encodes.
        """
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                (key, json.dumps(value)),
            )

    @property
    def audio_root(self):
        """The indexed folder (absolute), or None before the first run."""
        root = self.meta("audio_root")
        return None if root is None else Path(root)

    @property
    def model(self):
        """``{"fingerprint", "dim", "source", ...}`` of the index's model."""
        return self.meta("model")

    def bind(self, model, audio_root, settings=None):
        """Ties the index to a model and a folder, or checks that it is.

        Arguments
        ---------
        model : dict
            At least ``fingerprint`` and ``dim`` (see
            :func:`speechbrain_sense.search.query.model_identity`).
        audio_root : str or Path
            The indexed folder.
        settings : dict, optional
            How passages were cut; recorded, and a change re-embeds all.

        Returns
        -------
        bool
            Whether the passage settings changed; every file is then
            marked changed, to be re-embedded.
        """
        check_model(self, model)
        root = str(Path(audio_root).resolve())
        if self.audio_root is not None and str(self.audio_root) != root:
            raise SearchIndexError(
                f"{self.path} indexes {self.audio_root}, not {root}: use "
                "another --db for another folder"
            )
        stale = settings is not None and self.meta("settings") not in (
            None,
            settings,
        )
        self.set_meta("model", model)
        self.set_meta("audio_root", root)
        if settings is not None:
            with self.db:
                self.db.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('settings', ?)",
                    (json.dumps(settings),),
                )
                if stale:
                    # In the same transaction as the new settings: every
                    # file looks changed until it is re-embedded, so a run
                    # killed half-way still redoes the rest next time.
                    self.db.execute(
                        "UPDATE files SET mtime_ns = -1, sha256 = 'stale'"
                    )
        return stale

    # -- files ------------------------------------------------------------

    def files(self):
        """Every file the index knows.

        Returns
        -------
        dict
            ``{path bytes: {"id", "path", "size", "mtime_ns", "sha256",
            "duration", "status", "error"}}``.
        """
        rows = self.db.execute(
            "SELECT id, path, size, mtime_ns, sha256, duration, status, "
            "error FROM files"
        )
        keys = (
            "id",
            "path",
            "size",
            "mtime_ns",
            "sha256",
            "duration",
            "status",
            "error",
        )
        return {row[1]: dict(zip(keys, row)) for row in rows}

    def touch_file(self, file_id, size, mtime_ns):
        """Records a new size and mtime for an unchanged file's content.

        Arguments
        ---------
        file_id : int
            The file's row.
        size : int
            Bytes.
        mtime_ns : int
            Modification time, nanoseconds.
        """
        with self.db:
            self.db.execute(
                "UPDATE files SET size = ?, mtime_ns = ? WHERE id = ?",
                (size, mtime_ns, file_id),
            )

    def replace_file(
        self, path, size, mtime_ns, sha256, duration, status, error, spans, emb
    ):
        """Writes one file and all its passages in a single transaction.

        Arguments
        ---------
        path : bytes
            Path relative to the audio root.
        size, mtime_ns : int
            ``os.stat`` of the file when it was read.
        sha256 : str
            Content hash.
        duration : float or None
            Seconds of audio (None when unreadable).
        status : str
            :data:`INDEXED`, :data:`NO_SPEECH` or :data:`UNREADABLE`.
        error : str or None
            Why the file is unreadable.
        spans : list of (float, float)
            Passage times, seconds.
        emb : numpy.ndarray
            ``[len(spans), D]`` embeddings (stored as float16).

        Returns
        -------
        int
            The file's id.
        """
        emb = np.asarray(emb, dtype=np.float16)
        if len(emb) != len(spans):
            raise ValueError(f"{len(spans)} passages but {len(emb)} embeddings")
        with self.db:
            self.db.execute("DELETE FROM files WHERE path = ?", (path,))
            cursor = self.db.execute(
                "INSERT INTO files (path, size, mtime_ns, sha256, duration, "
                "status, error) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (path, size, mtime_ns, sha256, duration, status, error),
            )
            file_id = cursor.lastrowid
            self.db.executemany(
                "INSERT INTO passages (file_id, start, end, embedding) "
                "VALUES (?, ?, ?, ?)",
                [
                    (file_id, float(s), float(e), row.tobytes())
                    for (s, e), row in zip(spans, emb)
                ],
            )
            self._bump()
        return file_id

    def remove_files(self, paths):
        """Drops files (and, by cascade, their passages).

        Arguments
        ---------
        paths : list of bytes
            Paths relative to the audio root.
        """
        with self.db:
            self.db.executemany(
                "DELETE FROM files WHERE path = ?", [(p,) for p in paths]
            )
            self._bump()

    def _bump(self):
        """Marks the database changed (inside the caller's transaction)."""
        self.db.execute(
            "INSERT INTO meta VALUES ('generation', '1') ON CONFLICT(key) "
            "DO UPDATE SET value = CAST(value AS INTEGER) + 1"
        )

    # -- passages and the matrix ------------------------------------------

    def passage_ids(self):
        """Every passage id, in matrix row order.

        Returns
        -------
        numpy.ndarray
            ``[N]`` int64.
        """
        return np.array(
            [
                r[0]
                for r in self.db.execute("SELECT id FROM passages ORDER BY id")
            ],
            dtype=np.int64,
        )

    def passage(self, passage_id):
        """One passage and its file.

        Arguments
        ---------
        passage_id : int
            Its id.

        Returns
        -------
        dict
            ``{"id", "path", "start", "end"}``, the path as stored (bytes).
        """
        row = self.db.execute(
            "SELECT p.id, f.path, p.start, p.end FROM passages p "
            "JOIN files f ON f.id = p.file_id WHERE p.id = ?",
            (int(passage_id),),
        ).fetchone()
        if row is None:
            raise KeyError(passage_id)
        return dict(zip(("id", "path", "start", "end"), row))

    def stats(self):
        """Counts of files by status, passages and indexed audio seconds.

        Returns
        -------
        dict
            ``{"files": {status: count}, "passages", "passage_seconds",
            "audio_seconds"}``.
        """
        counts = dict(
            self.db.execute(
                "SELECT status, COUNT(*) FROM files GROUP BY status"
            )
        )
        passages, seconds = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(end - start), 0) FROM passages"
        ).fetchone()
        audio = self.db.execute(
            "SELECT COALESCE(SUM(duration), 0) FROM files WHERE status != ?",
            (UNREADABLE,),
        ).fetchone()[0]
        return {
            "files": counts,
            "passages": passages,
            "passage_seconds": seconds,
            "audio_seconds": audio,
        }

    @property
    def _header(self):
        """The snapshot's header file: which matrix is current."""
        return self.path.with_name(self.path.name + VECTORS_SUFFIX + ".json")

    def _snapshot(self):
        """The published snapshot's header, or None when there is none."""
        try:
            return json.loads(self._header.read_text("utf-8"))
        except (OSError, ValueError):
            return None

    @property
    def vectors_path(self):
        """The current matrix file (``.npy``), or None before a publish."""
        facts = self._snapshot()
        return None if facts is None else self.path.parent / facts["matrix"]

    def publish(self):
        """Writes the float16 matrix snapshot of every embedding.

        Rows follow passage ids. The matrix and its ids go to files named
        after the database's generation, written under temporary names
        and renamed; the header that names them is replaced last. A
        reader (a server, while an indexing run publishes) therefore maps
        either the old pair or the new one, never a mix, and files once
        named are never rewritten.
        """
        dim = int(self.model["dim"])
        generation = self.meta("generation", 0)
        stem = f"{self.path.name}{VECTORS_SUFFIX}.{generation}"
        count = self.db.execute("SELECT COUNT(*) FROM passages").fetchone()[0]
        matrix_file, ids_file = f"{stem}.npy", f"{stem}.ids.npy"
        with _renamed_into(self.path.parent / matrix_file) as tmp:
            matrix = np.lib.format.open_memmap(
                tmp, mode="w+", dtype=np.float16, shape=(count, dim)
            )
            ids = np.empty(count, dtype=np.int64)
            rows = self.db.execute(
                "SELECT id, embedding FROM passages ORDER BY id"
            )
            for i, (passage_id, blob) in enumerate(rows):
                ids[i] = passage_id
                matrix[i] = np.frombuffer(blob, dtype=np.float16)
            matrix.flush()
            del matrix
        with _renamed_into(self.path.parent / ids_file) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, ids)
        header = {
            "generation": generation,
            "count": count,
            "dim": dim,
            "matrix": matrix_file,
            "ids": ids_file,
        }
        with _renamed_into(self._header) as tmp:
            Path(tmp).write_text(json.dumps(header), "utf-8")
        prefix = f"{self.path.name}{VECTORS_SUFFIX}."
        for old in self.path.parent.glob(f"{prefix}*.npy"):
            # Only older generations: another process may be publishing a
            # newer one. A reader still mapping an old matrix keeps its
            # pages (POSIX).
            tag = old.name[len(prefix) :].split(".")[0]
            if tag.isdigit() and int(tag) < generation:
                old.unlink(missing_ok=True)
        self._matrix = None

    def matrix(self):
        """``[N, D]`` float16 embeddings (memory-mapped).

        Rebuilds the snapshot first when the database changed since it
        was written (an indexing run that did not finish).

        Returns
        -------
        numpy.ndarray
            ``[N, D]`` read-only float16 matrix.
        """
        return self.matrix_and_ids()[0]

    def matrix_and_ids(self):
        """The memory-mapped matrix and the passage id of each row.

        Returns
        -------
        matrix : numpy.ndarray
            ``[N, D]`` float16.
        ids : numpy.ndarray
            ``[N]`` int64 passage ids.
        """
        generation = self.meta("generation", 0)
        if self._matrix is not None and self._matrix[0] == generation:
            return self._matrix[1:]
        facts = self._snapshot()
        if facts is None or facts["generation"] != generation:
            self.publish()
            facts = self._snapshot()
        folder = self.path.parent
        matrix = np.load(folder / facts["matrix"], mmap_mode="r")
        ids = np.load(folder / facts["ids"])
        self._matrix = (facts["generation"], matrix, ids)
        return matrix, ids


@contextlib.contextmanager
def _renamed_into(path):
    """A unique temporary name beside ``path``, renamed to it on success.

    Two processes publishing at once (an indexing run and a server that
    found the snapshot stale) never write into the same file.

    Arguments
    ---------
    path : Path
        The final name.

    Yields
    ------
    str
        The temporary file to write.
    """
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")
    os.close(handle)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def check_model(index, model):
    """Refuses a model other than the one an index was built with.

    Arguments
    ---------
    index : SearchIndex
        The index.
    model : dict
        ``{"fingerprint", "dim", "source"}`` of the model in hand.

    Raises
    ------
    ModelMismatchError
        When the fingerprints differ.
    """
    built = index.model
    if built is None or built["fingerprint"] == model["fingerprint"]:
        return
    raise ModelMismatchError(
        f"{index.path} was built with the model {built.get('source')} "
        f"(fingerprint {built['fingerprint'][:12]}), not "
        f"{model.get('source')} (fingerprint {model['fingerprint'][:12]}): "
        "query it with the model it was built with, or index again into "
        "a new --db"
    )
