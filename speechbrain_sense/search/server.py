"""A search page on the web: ``python -m speechbrain_sense.search serve``.

:func:`create_app` is a FastAPI application over one index and its
model; :func:`serve` runs it with uvicorn, on this machine only
(``127.0.0.1``) unless told otherwise. Endpoints::

    GET  /                    the page (static/index.html, app.js, style.css)
    GET  /api/status          index counts and the model's source
    GET  /api/search?q=&k=    a typed query, any language
    POST /api/search/audio    a spoken query (multipart: file, k)
    GET  /audio/{passage_id}  the recording a passage is in (HTTP Range)

**Recordings by passage id, never by path.** The page asks for
``/audio/<passage id>``, and the server looks up the file in the index:
no path from the request is ever joined to the folder, so ``../``, an
absolute path or an encoded one has nothing to reach. The stored path is
still resolved (links included) and must lie inside the indexed folder,
because the folder may have changed since it was indexed.

**Uploads are bounded while they arrive.** A spoken query larger than
``max_upload_bytes`` is refused with 413 from its ``Content-Length``, and
the body is counted as it is read, so a chunked upload (no length) or a
wrong length cannot get past the limit either.

**One model call at a time.** FastAPI runs the endpoints in a thread
pool; the encoder, the text teacher and the index's SQLite connection
are not made for concurrent calls, so queries hold a lock. Recordings
and status are read through a second connection, so playing audio does
not wait for a query.

Authors
 * speechbrain-sense developers 2026
"""

import contextlib
import importlib.resources
import mimetypes
import os
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path

from speechbrain_sense.audio import AudioReadError
from speechbrain_sense.search.query import query_index
from speechbrain_sense.search.store import (
    SearchIndex,
    check_model,
    resolve_inside,
)

#: Longest typed query accepted, characters.
MAX_QUERY_CHARS = 1000
#: Most results one query may ask for.
MAX_K = 100
#: Hosts a loopback server answers to; other names in ``Host`` are refused,
#: so a web page cannot reach this server through DNS rebinding.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")

# Media types Python's table lacks or gives as video (browsers play them).
_AUDIO_TYPES = {
    ".opus": "audio/ogg",
    ".webm": "audio/webm",
    ".mka": "audio/x-matroska",
    ".mp4": "audio/mp4",
    ".wav": "audio/wav",
}
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; media-src 'self' blob:",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _model_name(source):
    """A model's hub id, or the last component of its local folder.

    Arguments
    ---------
    source : str
        What the model was loaded from.

    Returns
    -------
    str

    Example
    -------
    >>> _model_name("/models/runs/sense-cv"), _model_name("org/sense")
    ('sense-cv', 'org/sense')
    """
    if Path(source).is_absolute() or Path(source).exists():
        return Path(source).name
    return source


def static_folder():
    """The folder of the page's files, inside the package.

    Returns
    -------
    pathlib.Path
        ``speechbrain_sense/search/static``.
    """
    return Path(str(importlib.resources.files(__package__) / "static"))


def parse_k(value):
    """The number of results a request asks for, checked.

    Arguments
    ---------
    value : str or None
        The ``k`` of the request (None: the default, 10).

    Returns
    -------
    int
        From 1 to :data:`MAX_K`.

    Raises
    ------
    ValueError
        When ``value`` is not such a number (the message says so).

    Example
    -------
    >>> parse_k("5"), parse_k(None)
    (5, 10)
    """
    if value is None or value == "":
        return 10
    try:
        k = int(value)
    except ValueError:
        k = None
    if k is None or not 1 <= k <= MAX_K:
        raise ValueError(f"k must be a whole number from 1 to {MAX_K}")
    return k


def check_text_query(text):
    """A typed query, checked: not empty, not too long.

    Arguments
    ---------
    text : str or None
        The ``q`` of the request.

    Returns
    -------
    str
        The query, stripped.

    Raises
    ------
    ValueError
        When it is empty or longer than :data:`MAX_QUERY_CHARS`.

    Example
    -------
    >>> check_text_query("  cats ")
    'cats'
    """
    text = (text or "").strip()
    if not text:
        raise ValueError("the query is empty: type what to search for")
    if len(text) > MAX_QUERY_CHARS:
        raise ValueError(
            f"the query is {len(text)} characters long; the most is "
            f"{MAX_QUERY_CHARS}"
        )
    return text


def recording_path(audio_root, raw_path):
    """The file to serve for a stored path, if it lies inside the folder.

    Arguments
    ---------
    audio_root : str or Path
        The indexed folder.
    raw_path : bytes
        A path as the index stores it (relative to the folder; any bytes).

    Returns
    -------
    str or None
        The resolved file (links followed), or None when it resolves
        outside the folder. It may not exist.

    Example
    -------
    >>> recording_path("/audio", b"a/b.wav")
    '/audio/a/b.wav'
    >>> recording_path("/audio", b"../etc/passwd") is None
    True
    """
    root = os.path.realpath(os.fsencode(audio_root))
    # Concatenated, not os.path.join: a stored absolute path must not
    # replace the root.
    real = resolve_inside(root, root + b"/" + raw_path)
    if real is None or real == root:
        return None
    return os.fsdecode(real)


def audio_media_type(path):
    """The ``Content-Type`` a recording is served with.

    Arguments
    ---------
    path : str
        The file.

    Returns
    -------
    str

    Example
    -------
    >>> audio_media_type("x.opus"), audio_media_type("x.flac")
    ('audio/ogg', 'audio/flac')
    """
    suffix = os.path.splitext(path)[1].lower()
    if suffix in _AUDIO_TYPES:
        return _AUDIO_TYPES[suffix]
    return mimetypes.guess_type(path)[0] or "application/octet-stream"


def hit_json(rank, hit):
    """One result as the API returns it.

    Arguments
    ---------
    rank : int
        1 for the best.
    hit : dict
        A result of :func:`speechbrain_sense.search.query.query_index`.

    Returns
    -------
    dict
        ``rank``, ``path``, ``start``, ``end``, ``score``, ``passage_id``
        and ``audio_url`` (the recording; a player seeks to ``start``).
    """
    return {
        "rank": rank,
        "path": hit["path"],
        "start": round(float(hit["start"]), 3),
        "end": round(float(hit["end"]), 3),
        "score": round(float(hit["score"]), 4),
        "passage_id": hit["passage_id"],
        "audio_url": f"/audio/{hit['passage_id']}",
    }


def _upload_suffix(filename):
    """A safe file name ending for an upload (helps format probing)."""
    suffix = os.path.splitext(filename or "")[1]
    return suffix if re.fullmatch(r"\.[A-Za-z0-9]{1,5}", suffix) else ".bin"


def _decode_failure(error, path, name):
    """Why an upload did not decode, its name in place of the temporary."""
    text = str(error)
    head = f"{path}: "
    if head in text:
        text = text.split(head, 1)[1]
    return "cannot decode the uploaded audio: " + text.replace(
        str(path), name or "upload"
    )


def create_app(
    db_path,
    model,
    max_upload_bytes=20_000_000,
    allowed_hosts=None,
    backend="exact",
):
    """The search application over one index.

    Arguments
    ---------
    db_path : str or Path
        The index database (:mod:`speechbrain_sense.search.store`).
    model : speechbrain_sense.search.query.SearchModel
        The model the index was built with (checked now).
    max_upload_bytes : int
        Largest spoken-query request body accepted (413 beyond).
    allowed_hosts : list of str, optional
        Host names the server answers to (any when None).
    backend : str
        :func:`speechbrain_sense.search.query.query_index`'s backend.

    Returns
    -------
    fastapi.FastAPI
    """
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import FileResponse
    from fastapi.staticfiles import StaticFiles
    from starlette.datastructures import UploadFile
    from starlette.formparsers import MultiPartException, MultiPartParser
    from starlette.middleware.trustedhost import TrustedHostMiddleware

    query_db = SearchIndex(db_path)
    try:
        check_model(query_db, model.identity)
        if query_db.audio_root is None:
            raise ValueError(f"{db_path} is empty: run `index` first")
    except Exception:
        query_db.close()
        raise
    lookup_db = SearchIndex(db_path)
    query_lock, lookup_lock = threading.Lock(), threading.Lock()
    static = static_folder()

    @contextlib.asynccontextmanager
    async def lifespan(app):
        """Closes the index connections when the server stops."""
        yield
        query_db.close()
        lookup_db.close()

    app = FastAPI(
        title="speechbrain-sense search",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    if allowed_hosts:
        app.add_middleware(
            TrustedHostMiddleware, allowed_hosts=list(allowed_hosts)
        )
    app.mount("/static", StaticFiles(directory=static), name="static")

    def search(text=None, audio=None, k=10):
        """Runs one query under the lock; the API's JSON answer."""
        began = time.perf_counter()
        with query_lock:
            hits = query_index(
                query_db, model, text=text, audio=audio, k=k, backend=backend
            )
        return {
            "results": [hit_json(i, h) for i, h in enumerate(hits, 1)],
            "took_ms": round(1000 * (time.perf_counter() - began), 1),
        }

    @app.get("/", include_in_schema=False)
    def page():
        """The search page."""
        return FileResponse(static / "index.html", headers=_PAGE_HEADERS)

    @app.get("/api/status")
    def status():
        """What is indexed, and by which model."""
        with lookup_lock:
            stats = lookup_db.stats()
            root = lookup_db.audio_root
        return {
            **stats,
            "folder": root.name if root is not None else None,
            # A hub id as it is; a local folder by its name only (the
            # page need not show where models lie on the server's disk).
            "model": _model_name(model.identity["source"]),
            "max_upload_bytes": max_upload_bytes,
            "max_query_chars": MAX_QUERY_CHARS,
            "max_k": MAX_K,
        }

    @app.get("/api/search")
    def search_text(q: str | None = None, k: str | None = None):
        """Passages for a typed query."""
        try:
            text, k = check_text_query(q), parse_k(k)
        except ValueError as error:
            raise HTTPException(400, str(error)) from error
        return {"query": text, **search(text=text, k=k)}

    too_large = (
        f"the upload is larger than the limit of {max_upload_bytes} bytes"
    )

    async def bounded_body(request):
        """The request body, refused (413) past ``max_upload_bytes``."""
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_upload_bytes:
                raise HTTPException(413, too_large)
            yield chunk

    @app.post("/api/search/audio")
    async def search_audio(request: Request):
        """Passages for a spoken query (an uploaded or recorded clip)."""
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise HTTPException(400, "bad Content-Length")
            if int(declared) > max_upload_bytes:
                raise HTTPException(413, too_large)
        if not request.headers.get("content-type", "").startswith(
            "multipart/form-data"
        ):
            raise HTTPException(
                400, "send the spoken query as multipart/form-data (file)"
            )
        parser = MultiPartParser(
            request.headers, bounded_body(request), max_files=1, max_fields=8
        )
        try:
            form = await parser.parse()
        except MultiPartException as error:
            raise HTTPException(400, error.message) from error
        try:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise HTTPException(
                    400, "no audio in the upload (form field 'file')"
                )
            try:
                k = parse_k(form.get("k"))
            except ValueError as error:
                raise HTTPException(400, str(error)) from error
            with tempfile.TemporaryDirectory(prefix="sense-query-") as tmp:
                path = Path(tmp) / ("query" + _upload_suffix(upload.filename))
                with open(path, "wb") as out:
                    await run_in_threadpool(
                        shutil.copyfileobj, upload.file, out
                    )
                try:
                    return await run_in_threadpool(search, audio=path, k=k)
                except AudioReadError as error:
                    raise HTTPException(
                        400, _decode_failure(error, path, upload.filename)
                    ) from error
                except ValueError as error:  # e.g. shorter than one frame
                    raise HTTPException(
                        400, f"cannot search with this audio: {error}"
                    ) from error
        finally:
            await form.close()

    @app.get("/audio/{passage_id}")
    def recording(passage_id: str):
        """The recording that holds a passage (seekable: HTTP Range)."""
        if not passage_id.isdigit():
            raise HTTPException(404, "no such passage")
        with lookup_lock:
            try:
                passage = lookup_db.passage(int(passage_id))
            except KeyError:
                passage = None
            root = lookup_db.audio_root
        if passage is None:
            raise HTTPException(404, "no such passage")
        path = recording_path(root, passage["path"])
        if path is None:
            raise HTTPException(
                403, "this recording lies outside the indexed folder"
            )
        if not os.path.isfile(path):
            raise HTTPException(404, "the recording is no longer there")
        return FileResponse(
            path,
            media_type=audio_media_type(path),
            headers={"X-Content-Type-Options": "nosniff"},
        )

    return app


def serve(
    db_path,
    model,
    host="127.0.0.1",
    port=8000,
    max_upload_bytes=20_000_000,
    backend="exact",
):
    """Runs the search page with uvicorn until interrupted.

    Arguments
    ---------
    db_path : str or Path
        The index database.
    model : speechbrain_sense.search.query.SearchModel
        The index's model.
    host : str
        Address to listen on (``127.0.0.1``: this machine only).
    port : int
        TCP port.
    max_upload_bytes : int
        Largest spoken query accepted.
    backend : str
        :func:`speechbrain_sense.search.query.query_index`'s backend.
    """
    import uvicorn

    app = create_app(
        db_path,
        model,
        max_upload_bytes=max_upload_bytes,
        backend=backend,
        allowed_hosts=list(LOOPBACK_HOSTS) if host in LOOPBACK_HOSTS else None,
    )
    # The text encoder loads on first use: load it now, so that a missing
    # one fails at start rather than at the first query.
    model.teacher  # noqa: B018
    uvicorn.run(app, host=host, port=port, log_level="info")
