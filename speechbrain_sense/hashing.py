"""Content hashes of files, shared by every cache and index.

The teacher cache, the feature shards and the search index all decide
whether a file changed by its SHA-256; one function computes it.

Authors
 * speechbrain-sense developers 2026
"""

import hashlib


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
