"""On-disk store of teacher sentence embeddings, computed once.

The teacher is frozen, so embedding each transcript again every batch of
every epoch (as the upstream recipe does) only burns GPU time. Before
training, :meth:`TeacherEmbeddingCache.build` embeds every unique
(normalised) transcript once, batched, sharded across DDP ranks, and writes
the vectors into a store; the data pipeline then reads one row per
utterance (memory-mapped, so DataLoader workers share the pages).

A store lives in ``<cache_dir>/<key>/`` where ``key`` hashes the teacher's
:meth:`identity` (weights, pooling, prefix, truncation...), the text
normalisation and the storage dtype, so a changed teacher never reuses old
vectors. Each store holds:

* ``embeddings.npy``: ``[N, D]`` array (float32 or float16);
* ``texts.txt``: the N normalised texts, one per line, in row order;
* ``index.json``: identity, shapes and SHA-256 of both files.

Opening verifies sizes and checksums; a truncated or corrupt store is moved
aside and rebuilt (with a warning), never used. A store missing some texts
is completed by embedding only the missing ones.

Authors
 * speechbrain-sense developers 2026
"""

import hashlib
import json
import os
import shutil
import tempfile
import time
import unicodedata
from pathlib import Path

import numpy as np
import torch
from speechbrain.utils.logger import get_logger

from speechbrain_sense.hashing import file_sha256

logger = get_logger(__name__)

NORMALIZATION = "nfc+collapse-whitespace+strip/v1"
FORMAT_VERSION = 1


class CorruptCacheError(RuntimeError):
    """A cache store failed its integrity checks."""


def normalize_text(text):
    """The text normalisation applied before embedding and lookup.

    NFC-composes the text, collapses whitespace runs (tabs and newlines
    included) to one space and strips the ends. The teacher sees exactly
    this string.

    Arguments
    ---------
    text : str
        Raw transcript.

    Returns
    -------
    str
        Normalised transcript.

    Example
    -------
    >>> normalize_text("  Cafe\\u0301\\tnoir \\n")
    'Café noir'
    """
    return " ".join(unicodedata.normalize("NFC", text).split())


def _check_teacher_vectors(texts, vectors):
    """Refuses teacher embeddings that would poison the cache.

    A NaN, inf or all-zero target stays in the store for every later epoch
    and run, and turns the cosine loss of its clips into NaN (or zero).

    Arguments
    ---------
    texts : list of str
        The transcripts, in the order of ``vectors``.
    vectors : numpy.ndarray
        ``[N, D]`` their teacher embeddings.

    Raises
    ------
    ValueError
        Naming the count and the first transcripts concerned.

    Example
    -------
    >>> _check_teacher_vectors(["a", "b"], np.array([[1.0], [np.nan]]))
    Traceback (most recent call last):
    ...
    ValueError: the teacher returned a NaN, inf or zero embedding for 1 of 2 transcripts, e.g. 'b'; nothing was cached
    """
    if len(vectors) != len(texts):
        raise ValueError(
            f"the teacher returned {len(vectors)} embeddings for "
            f"{len(texts)} transcripts; nothing was cached"
        )
    bad = ~np.isfinite(vectors).all(axis=1) | ~(np.abs(vectors) > 0).any(1)
    if bad.any():
        named = ", ".join(repr(texts[i]) for i in np.flatnonzero(bad)[:5])
        raise ValueError(
            "the teacher returned a NaN, inf or zero embedding for "
            f"{int(bad.sum())} of {len(texts)} transcripts, e.g. {named}; "
            "nothing was cached"
        )


def _dist_info():
    """Rank and world size of this process, ``(0, 1)`` without DDP.

    Returns
    -------
    tuple of int
        ``(rank, world_size)``.
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _barrier():
    """Waits for every DDP rank; a no-op in a single process."""
    if _dist_info()[1] > 1:
        torch.distributed.barrier()


class TeacherEmbeddingCache:
    """Teacher embeddings of transcripts, computed once and memory-mapped.

    Arguments
    ---------
    cache_dir : str or Path
        Parent folder of the stores (one subfolder per teacher identity).
    teacher : object
        A teacher from :mod:`speechbrain_sense.teachers` (``encode`` and
        ``identity``).
    dtype : str
        ``"float32"`` or ``"float16"`` (halves disk and page cache; the
        cosine targets change by ~1e-3).

    Example
    -------
    >>> import tempfile
    >>> from speechbrain_sense.teachers import CallableSentenceEncoder
    >>> fn = lambda texts: np.array([[len(t), 1.0] for t in texts])
    >>> teacher = CallableSentenceEncoder(fn, name="length-v1")
    >>> cache = TeacherEmbeddingCache(tempfile.mkdtemp(), teacher)
    >>> cache.build(["a b", "ccc  dd"])
    2
    >>> cache["ccc dd"].shape
    torch.Size([2])
    """

    def __init__(self, cache_dir, teacher, dtype="float32"):
        if dtype not in ("float32", "float16"):
            raise ValueError(f"dtype must be float32 or float16, not {dtype}")
        self.teacher = teacher
        self.dtype = dtype
        self.identity = {
            "format": FORMAT_VERSION,
            "teacher": teacher.identity(),
            "normalization": NORMALIZATION,
            "dtype": dtype,
        }
        key = hashlib.sha256(
            json.dumps(self.identity, sort_keys=True).encode()
        ).hexdigest()[:16]
        self.path = Path(cache_dir) / key
        self._embeddings = None
        self._rows = None

    # ------------------------------------------------------------------
    # Reading
    # ------------------------------------------------------------------
    def __getstate__(self):
        # DataLoader workers re-open the memory map in their own process
        # and never need the teacher model itself.
        """Pickled state, without the memory map and the teacher model.

        Returns
        -------
        dict
            A copy of ``__dict__`` with ``_embeddings`` and ``teacher`` set
            to None; the store is re-opened lazily after unpickling.
        """
        state = self.__dict__.copy()
        state["_embeddings"] = None
        state["teacher"] = None
        return state

    def _open(self, verify=False):
        """Memory-maps the store and indexes its rows by text.

        Checks that ``index.json`` belongs to this teacher identity and
        that the array shape matches the text list; raises
        :class:`CorruptCacheError` otherwise.

        Arguments
        ---------
        verify : bool
            Also check both files' sizes and SHA-256 against the index
            (slow: reads every byte).
        """
        index_file = self.path / "index.json"
        try:
            index = json.loads(index_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise CorruptCacheError(
                f"unreadable {index_file}: {error}"
            ) from error
        if index.get("identity") != self.identity:
            raise CorruptCacheError(f"{index_file} belongs to another teacher")
        emb_file = self.path / "embeddings.npy"
        text_file = self.path / "texts.txt"
        if verify:
            for file, key in ((emb_file, "embeddings"), (text_file, "texts")):
                if not file.is_file():
                    raise CorruptCacheError(f"missing {file}")
                if file.stat().st_size != index[key]["bytes"]:
                    raise CorruptCacheError(
                        f"{file} has {file.stat().st_size} bytes, index "
                        f"says {index[key]['bytes']} (truncated?)"
                    )
                if file_sha256(file) != index[key]["sha256"]:
                    raise CorruptCacheError(f"{file} fails its checksum")
        try:
            embeddings = np.load(emb_file, mmap_mode="r")
        except (OSError, ValueError) as error:
            raise CorruptCacheError(
                f"unreadable {emb_file}: {error}"
            ) from error
        texts = text_file.read_text(encoding="utf-8").split("\n")[:-1]
        if embeddings.shape != (len(texts), index["dim"]):
            raise CorruptCacheError(
                f"{emb_file} has shape {embeddings.shape}, expected "
                f"({len(texts)}, {index['dim']})"
            )
        self._embeddings = embeddings
        self._rows = {text: row for row, text in enumerate(texts)}

    def _ensure_open(self):
        """Opens the store (without checksums) unless it is already open."""
        if self._embeddings is None:
            self._open(verify=False)

    def __len__(self):
        """Number of distinct normalised transcripts in the store.

        Returns
        -------
        int
            Rows of the embedding array.
        """
        self._ensure_open()
        return len(self._rows)

    def __contains__(self, text):
        """Tells whether a transcript has a cached embedding.

        Arguments
        ---------
        text : str
            Transcript (normalised here, like at build time).

        Returns
        -------
        bool
            True if its normalised form is in the store.
        """
        self._ensure_open()
        return normalize_text(text) in self._rows

    @property
    def dim(self):
        """Embedding width."""
        self._ensure_open()
        return self._embeddings.shape[1]

    def __getitem__(self, text):
        """Teacher embedding of one transcript.

        Arguments
        ---------
        text : str
            Transcript (normalised here, like at build time).

        Returns
        -------
        torch.Tensor
            ``[D]`` float32 embedding.
        """
        self._ensure_open()
        row = self._rows.get(normalize_text(text))
        if row is None:
            raise KeyError(
                f"transcript not in teacher cache {self.path}: {text!r} "
                "(was build() called with every split's transcripts?)"
            )
        return torch.from_numpy(self._embeddings[row].astype(np.float32))

    def lookup(self, texts):
        """Stacked embeddings of several transcripts.

        Arguments
        ---------
        texts : list of str
            Transcripts.

        Returns
        -------
        torch.Tensor
            ``[len(texts), D]`` float32.
        """
        if not texts:
            return torch.empty(0, self.dim)
        return torch.stack([self[text] for text in texts])

    # ------------------------------------------------------------------
    # Building
    # ------------------------------------------------------------------
    def _load_valid_store(self):
        """Existing (texts, embeddings) if the store is sound, else empty."""
        if not (self.path / "index.json").exists():
            return [], None
        try:
            self._open(verify=True)
        except CorruptCacheError as error:
            aside = Path(
                tempfile.mkdtemp(
                    dir=self.path.parent,
                    prefix=f"{self.path.name}.corrupt-{int(time.time())}-",
                )
            )
            logger.warning(
                f"teacher cache {self.path} is corrupt ({error}); moved to "
                f"{aside} and rebuilding"
            )
            # mkdtemp made a unique, empty folder: replace it atomically.
            os.replace(self.path, aside)
            self._embeddings = None
            return [], None
        texts = list(self._rows)
        embeddings = np.asarray(self._embeddings)
        self._embeddings = None
        return texts, embeddings

    def _write_store(self, texts, embeddings):
        """Writes a complete store in a temporary folder, then swaps it in.

        Arguments
        ---------
        texts : list of str
            Normalised transcripts, in row order.
        embeddings : numpy.ndarray
            ``[len(texts), D]`` vectors, cast to the cache dtype on save.
        """
        tmp = Path(tempfile.mkdtemp(dir=self.path.parent, prefix=".building-"))
        emb_file, text_file = tmp / "embeddings.npy", tmp / "texts.txt"
        np.save(emb_file, embeddings.astype(self.dtype))
        text_file.write_text(
            "".join(text + "\n" for text in texts), encoding="utf-8"
        )
        index = {
            "identity": self.identity,
            "dim": int(embeddings.shape[1]),
            "count": len(texts),
            "embeddings": {
                "bytes": emb_file.stat().st_size,
                "sha256": file_sha256(emb_file),
            },
            "texts": {
                "bytes": text_file.stat().st_size,
                "sha256": file_sha256(text_file),
            },
        }
        (tmp / "index.json").write_text(json.dumps(index, indent=1))
        if self.path.exists():
            shutil.rmtree(self.path)
        os.replace(tmp, self.path)

    def build(self, texts, batch_size=64, device=None):
        """Makes sure every transcript in ``texts`` has a cached embedding.

        Under DDP every rank must call it with the same texts: each rank
        embeds a disjoint share of the missing texts, the main process
        merges the shares into the store, and all ranks return once it is
        complete.

        Arguments
        ---------
        texts : iterable of str
            Transcripts (duplicates and whitespace variants are merged).
        batch_size : int
            Teacher batch size.
        device : str, optional
            Where the teacher runs (``"cuda:0"``...).

        Returns
        -------
        int
            Number of texts in the store.
        """
        rank, world = _dist_info()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        wanted = sorted({normalize_text(t) for t in texts})
        if any(not t for t in wanted):
            raise ValueError("empty transcript given to the teacher cache")
        if rank == 0:
            old_texts, old_emb = self._load_valid_store()
        _barrier()
        if rank != 0:
            old_texts, old_emb = self._read_quietly()
        known = set(old_texts)
        missing = [t for t in wanted if t not in known]
        if not missing:
            _barrier()
            self._open(verify=False)
            return len(self._rows)

        shard = missing[rank::world]
        start = time.time()
        # A rank can have an empty share (fewer new texts than ranks).
        if shard:
            vectors = self.teacher.encode(
                shard, batch_size=batch_size, device=device
            )
            vectors = vectors.numpy().astype(np.float32)
            _check_teacher_vectors(shard, vectors)
        else:
            # Width unknown without asking the teacher; the merge ignores
            # empty shares.
            vectors = np.empty((0, 0), dtype=np.float32)
        logger.info(
            f"teacher embedded {len(shard)} transcripts on rank {rank} in "
            f"{time.time() - start:.1f}s"
        )
        parts = self.path.parent / f".{self.path.name}.parts"
        parts.mkdir(exist_ok=True)
        if world > 1:
            np.save(parts / f"rank{rank}.npy", vectors)
        _barrier()
        if rank == 0:
            if world > 1:
                shards = [np.load(parts / f"rank{r}.npy") for r in range(world)]
                # Undo the round-robin split: row i of the missing list
                # lives in shard i % world at position i // world.
                dim = max(block.shape[1] for block in shards)
                vectors = np.empty((len(missing), dim), dtype=np.float32)
                for r, block in enumerate(shards):
                    if len(block):
                        vectors[r::world] = block
            all_texts = old_texts + missing
            all_emb = (
                vectors
                if old_emb is None
                else np.concatenate([old_emb.astype(np.float32), vectors])
            )
            self._write_store(all_texts, all_emb)
            shutil.rmtree(parts, ignore_errors=True)
            logger.info(
                f"teacher cache {self.path}: {len(missing)} new, "
                f"{len(all_texts)} total"
            )
        _barrier()
        self._open(verify=False)
        return len(self._rows)

    def _read_quietly(self):
        """Texts of the store as rank 0 left it, or none if unreadable.

        Non-zero ranks use it to learn which texts are missing; the
        embeddings are not needed there, so they are always None.

        Returns
        -------
        tuple
            ``(texts, None)``: the list of stored texts (empty if the
            store cannot be opened) and no embeddings.
        """
        try:
            self._open(verify=False)
        except CorruptCacheError:
            return [], None
        texts = list(self._rows)
        self._embeddings = None
        return texts, None
