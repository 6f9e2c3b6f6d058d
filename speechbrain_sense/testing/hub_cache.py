"""A HuggingFace Hub cache, laid out as a real download leaves it.

There is no Hub in tests, but users load models as ``source="org/name"``,
which SpeechBrain resolves through ``huggingface_hub``'s cache::

    <cache>/models--org--name/refs/main              the commit hash
    <cache>/models--org--name/blobs/<sha256>         the file contents
    <cache>/models--org--name/snapshots/<commit>/f   -> ../../blobs/<sha256>

:func:`make_hub_cache` writes that layout from a model folder, with only
the files a download would hold, so that ``HF_HUB_OFFLINE=1`` loads see
exactly what they would see after a download: in particular, a file's
real path is its blob, whose name says nothing and whose folder holds no
other file of the repo.

Authors
 * speechbrain-sense developers 2026
"""

import hashlib
import os
import shutil
from pathlib import Path


def make_hub_cache(
    model_dir, cache_dir, repo_id, files=None, symlinks=True, commit=None
):
    """Writes ``repo_id``'s cache entry from the files of ``model_dir``.

    Arguments
    ---------
    model_dir : str or Path
        The folder whose files the "download" holds.
    cache_dir : str or Path
        The cache root (``HF_HUB_CACHE``).
    repo_id : str
        ``org/name``.
    files : list of str, optional
        The files to put in the cache (default: every file of
        ``model_dir``, not recursive).
    symlinks : bool
        Snapshot files are relative symlinks to ``blobs/`` (what
        ``huggingface_hub`` does where it can); otherwise copies (what it
        does on filesystems without symlinks, e.g. Windows without
        developer mode).
    commit : str, optional
        The 40-hex commit hash (default: derived from the contents).

    Returns
    -------
    Path
        The snapshot folder.

    Example
    -------
    >>> import tempfile
    >>> src = Path(tempfile.mkdtemp())
    >>> _ = (src / "hyperparams.yaml").write_text("a: 1\\n")
    >>> snap = make_hub_cache(src, tempfile.mkdtemp(), "org/name")
    >>> (snap / "hyperparams.yaml").is_symlink()
    True
    >>> (snap / "hyperparams.yaml").resolve().parent.name
    'blobs'
    """
    model_dir, cache_dir = Path(model_dir), Path(cache_dir)
    if files is None:
        files = sorted(p.name for p in model_dir.iterdir() if p.is_file())
    missing = [name for name in files if not (model_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{model_dir} has no {missing}")
    digests = {
        name: hashlib.sha256((model_dir / name).read_bytes()).hexdigest()
        for name in files
    }
    if commit is None:
        joined = "".join(f"{n}:{d}" for n, d in sorted(digests.items()))
        commit = hashlib.sha1(joined.encode()).hexdigest()
    repo = cache_dir / f"models--{repo_id.replace('/', '--')}"
    blobs = repo / "blobs"
    snapshot = repo / "snapshots" / commit
    blobs.mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    for name, digest in digests.items():
        blob = blobs / digest
        if not blob.exists():
            shutil.copyfile(model_dir / name, blob)
        target = snapshot / name
        if target.exists() or target.is_symlink():
            target.unlink()
        if symlinks:
            target.symlink_to(os.path.relpath(blob, snapshot))
        else:
            shutil.copyfile(blob, target)
    return snapshot
