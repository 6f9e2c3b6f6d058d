"""Content hashes of files, shared by every cache and index.

The teacher cache, the feature shards and the search index all decide
whether a file changed by its SHA-256 (:func:`file_sha256`). Model
fingerprints, which must stay cheap on multi-GB weights, hash a file's
name, size and edges instead (:func:`update_with_file_edges`).

Authors
 * speechbrain-sense developers 2026
"""

import hashlib
import os


def file_sha256(path, chunk=1 << 22):
    """SHA-256 of a file's content, read in chunks to bound memory.

    Arguments
    ---------
    path : str, bytes or Path
        The file.
    chunk : int
        Bytes read per step (4 MiB).

    Returns
    -------
    str
        Hex digest.

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "x")
    >>> _ = open(path, "wb").write(b"abc")
    >>> file_sha256(path)[:16]
    'ba7816bf8f01cfea'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


EDGE_BYTES = 1 << 20


def update_with_file_edges(digest, path, name):
    """Feeds a file's name, size and first and last MiB to ``digest``.

    Cheap on a 2 GB checkpoint, and any retraining changes the edges.

    Arguments
    ---------
    digest : hashlib object
        Updated in place.
    path : str or Path
        The file.
    name : str
        The name it is hashed under (relative to its model folder, so
        that copying the folder keeps the fingerprint).

    Example
    -------
    >>> import hashlib, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "w.bin")
    >>> _ = open(path, "wb").write(b"abc")
    >>> digest = hashlib.sha256()
    >>> update_with_file_edges(digest, path, "w.bin")
    >>> digest.hexdigest()[:12]
    '4b29ef504e46'
    """
    size = os.path.getsize(path)
    digest.update(f"{name}:{size}".encode())
    with open(path, "rb") as f:
        digest.update(f.read(EDGE_BYTES))
        f.seek(max(0, size - EDGE_BYTES))
        digest.update(f.read(EDGE_BYTES))
