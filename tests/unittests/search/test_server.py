"""The search server's API: shapes, limits, errors and what it serves.

One real uvicorn server per module (in a thread, on a free loopback
port) over an index of three espeak recordings, built with a tiny random
SENSE model whose text side is the real MiniLM teacher. Rankings mean
nothing here; what is checked is the HTTP contract: a typed and a spoken
query answer in the documented shape, bad input is a 400 with a clear
message, uploads are bounded whatever ``Content-Length`` says, Range
requests seek, and no request, however spelled, returns a file from
outside the indexed folder.
"""

import glob
import http.client
import json
import os
import select
import shutil
import socket
import tempfile
import threading
import time
import urllib.parse

import numpy as np
import pytest
import soundfile
import torch

from speechbrain_sense.search.store import INDEXED, SearchIndex

LIMIT = 300_000  # max_upload_bytes of the test server
SECRET = b"RIFF-TOP-SECRET-" * 64  # a file outside the indexed folder


def speak(text, path):
    """Writes ``text`` spoken by espeak, with silence around, to ``path``."""
    from speechbrain_sense.synthetic.espeak import ESpeakSynthesizer

    spoken = ESpeakSynthesizer().synthesize(text, "en")
    silence = np.zeros(int(0.5 * spoken.sample_rate), np.float32)
    wave = np.concatenate([silence, spoken.waveform, silence])
    soundfile.write(path, wave, spoken.sample_rate)


def tiny_search_model(folder):
    """A tiny random exported SENSE model taught by MiniLM, loaded."""
    from speechbrain_sense.encoders.export import export_student
    from speechbrain_sense.encoders.pooling import SenseEmbeddingHead
    from speechbrain_sense.encoders.student import SenseStudent
    from speechbrain_sense.encoders.w2v_bert import SenseW2VBert
    from speechbrain_sense.search.query import SearchModel
    from speechbrain_sense.testing.tiny_models import save_tiny_w2v_bert

    w2v = str(save_tiny_w2v_bert(folder / "w2v"))
    torch.manual_seed(0)
    student = SenseStudent(
        SenseW2VBert(w2v, w2v),
        SenseEmbeddingHead(32, 384, projection="linear"),
    )
    export_student(
        student.state_dict(),
        w2v,
        folder / "model",
        training={"teacher": {"builder": "minilm", "arguments": {}}},
    )
    return SearchModel(folder / "model")


def start_server(app):
    """Runs ``app`` with uvicorn in a thread; returns (server, port)."""
    import uvicorn

    from speechbrain_sense.testing import free_port

    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    return server, thread, port


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The indexed folder, the outside secret, and the running server."""
    from speechbrain_sense.search.indexer import PassageSettings, index_folder
    from speechbrain_sense.search.server import LOOPBACK_HOSTS, create_app

    tmp = tmp_path_factory.mktemp("search_server")
    audio = tmp / "audio"
    (audio / "sub").mkdir(parents=True)
    speak("the cat sat on the mat", audio / "cat.wav")
    speak("stock markets fell sharply today", audio / "sub" / "markets.wav")
    # A file name that is not UTF-8 must be served like any other.
    latin1 = os.fsencode(audio) + b"/\xe9t\xe9.wav"
    shutil.copyfile(audio / "cat.wav", latin1)
    speak("a cat", tmp / "query.wav")
    (tmp / "outside").mkdir()
    secret = tmp / "outside" / "secret.wav"
    secret.write_bytes(SECRET)

    model = tiny_search_model(tmp)
    db = tmp / "index.db"
    index_folder(audio, model, db, PassageSettings(vad=False), progress=False)

    # The folder changed after indexing, or the database was edited:
    # rows whose paths lead outside the folder (a link, "..", absolute).
    (audio / "escape.wav").symlink_to(secret)
    escapes = [b"escape.wav", b"../outside/secret.wav", os.fsencode(secret)]
    index = SearchIndex(db)
    dim = model.identity["dim"]
    for raw in escapes:
        index.replace_file(
            raw, 1, 1, "0", 1.0, INDEXED, None, [(0.0, 1.0)], np.ones((1, dim))
        )
    index.publish()
    ids = dict(
        index.db.execute(
            "SELECT f.path, MIN(p.id) FROM passages p JOIN files f "
            "ON f.id = p.file_id GROUP BY f.path"
        )
    )
    index.close()

    app = create_app(
        db, model, max_upload_bytes=LIMIT, allowed_hosts=LOOPBACK_HOSTS
    )
    server, thread, port = start_server(app)
    yield {
        "port": port,
        "audio": audio,
        "query": tmp / "query.wav",
        "ids": ids,
        "escapes": escapes,
        "model": model,
    }
    server.should_exit = True
    thread.join(timeout=10)


def request(site, method, path, body=None, headers=None):
    """One HTTP request; returns (status, headers dict, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", site["port"], timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def get_json(site, path):
    """GET ``path``; returns (status, decoded JSON)."""
    status, _, body = request(site, "GET", path)
    return status, json.loads(body)


def multipart(fields, files):
    """A multipart/form-data body; returns (content type, bytes)."""
    boundary = "sense-test-boundary"
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"'
            f"\r\n\r\n{value}\r\n".encode()
        )
    for name, (filename, data) in files.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: application/octet-stream'
            "\r\n\r\n".encode()
            + data
            + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return f"multipart/form-data; boundary={boundary}", b"".join(parts)


def upload(site, data, filename="query.wav", k=3):
    """POSTs a spoken query; returns (status, decoded JSON)."""
    kind, body = multipart({"k": k}, {"file": (filename, data)})
    status, _, answer = request(
        site, "POST", "/api/search/audio", body, {"Content-Type": kind}
    )
    return status, json.loads(answer)


def raw_exchange(site, head, chunks):
    """Sends a request by hand, stopping when the server answers early.

    Arguments
    ---------
    site : dict
        The fixture.
    head : bytes
        Request line and headers, ending with the blank line.
    chunks : iterable of bytes
        The body, sent piece by piece.

    Returns
    -------
    int or None
        The status code of the answer (None: the server closed without).
    """
    sock = socket.create_connection(("127.0.0.1", site["port"]), timeout=30)
    answer = b""
    try:
        sock.sendall(head)
        for chunk in chunks:
            if select.select([sock], [], [], 0)[0]:
                break  # answered (413) before the body was all sent
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
        sock.settimeout(30)
        try:
            while b"\r\n" not in answer:
                data = sock.recv(4096)
                if not data:
                    break
                answer += data
        except (ConnectionResetError, TimeoutError):
            pass
    finally:
        sock.close()
    if not answer.startswith(b"HTTP/1.1 "):
        return None
    return int(answer.split(b" ", 2)[1])


def test_status_names_the_model_and_counts(site):
    status, body = get_json(site, "/api/status")
    assert status == 200
    # The folder's name, not where it lies on the server's disk.
    assert body["model"] == "model"
    assert site["model"].identity["source"].endswith("/model")
    assert body["folder"] == "audio"
    assert body["files"]["indexed"] == 6  # 3 recordings, 3 escape rows
    assert body["passages"] >= 6 and body["max_upload_bytes"] == LIMIT


def test_page_and_its_files_are_served(site):
    status, headers, body = request(site, "GET", "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b'id="query"' in body and b"/static/app.js" in body
    assert "default-src 'self'" in headers["content-security-policy"]
    for name in ("app.js", "style.css"):
        assert request(site, "GET", f"/static/{name}")[0] == 200


def test_text_search_returns_ranked_passages(site):
    status, body = get_json(site, "/api/search?q=cats&k=4")
    assert status == 200 and body["query"] == "cats"
    hits = body["results"]
    assert len(hits) == 4
    assert [h["rank"] for h in hits] == [1, 2, 3, 4]
    keys = {"rank", "path", "start", "end", "score", "passage_id", "audio_url"}
    assert all(set(h) == keys for h in hits)
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert all(h["audio_url"] == f"/audio/{h['passage_id']}" for h in hits)
    assert all(0 <= h["start"] < h["end"] for h in hits)
    for hit in hits:
        if hit["path"] in ("cat.wav", "sub/markets.wav"):
            status, _, audio = request(site, "GET", hit["audio_url"])
            assert status == 200 and audio[:4] == b"RIFF"


def test_text_search_in_another_script(site):
    query = urllib.parse.quote("猫がマットの上に座った")
    status, body = get_json(site, f"/api/search?q={query}")
    passages = get_json(site, "/api/status")[1]["passages"]
    assert status == 200 and len(body["results"]) == min(10, passages)


@pytest.mark.parametrize(
    "query, message",
    [
        ("", "empty"),
        ("q=", "empty"),
        ("q=%20%20", "empty"),
        ("q=" + "x" * 1001, "1000"),
        ("q=cats&k=0", "k must be"),
        ("q=cats&k=101", "k must be"),
        ("q=cats&k=ten", "k must be"),
    ],
)
def test_bad_text_queries_are_400_with_a_reason(site, query, message):
    status, body = get_json(site, f"/api/search?{query}")
    assert status == 400 and message in body["detail"]


def query_folders():
    """The server's temporary upload folders that exist now."""
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "sense-query-*")))


def test_spoken_query_returns_ranked_passages(site):
    before = query_folders()
    status, body = upload(site, site["query"].read_bytes(), k=3)
    assert query_folders() == before  # the upload was deleted
    assert status == 200, body
    assert len(body["results"]) == 3
    assert body["results"][0]["audio_url"].startswith("/audio/")


def test_undecodable_upload_is_400_with_a_reason(site):
    before = query_folders()
    status, body = upload(site, b"not audio at all " * 50, "clip.mp3")
    assert status == 400 and query_folders() == before
    assert body["detail"].startswith("cannot decode the uploaded audio: ")
    assert "sense-query-" not in body["detail"]  # no temporary path
    assert "clip.mp3" in body["detail"]
    status, body = upload(site, b"", "empty.wav")
    assert status == 400 and "empty" in body["detail"]


def test_too_short_a_spoken_query_is_400(site, tmp_path):
    soundfile.write(tmp_path / "blip.wav", np.zeros(80, np.float32), 16000)
    status, body = upload(site, (tmp_path / "blip.wav").read_bytes())
    assert status == 400 and "shorter than" in body["detail"]


def test_upload_without_a_file_is_400(site):
    kind, body = multipart({"k": 3}, {})
    status, _, answer = request(
        site, "POST", "/api/search/audio", body, {"Content-Type": kind}
    )
    assert status == 400 and "'file'" in json.loads(answer)["detail"]
    status, _, _ = request(site, "POST", "/api/search/audio", b"{}")
    assert status == 400


def test_oversize_upload_with_its_length_is_413(site):
    status, body = upload(site, b"\0" * (LIMIT + 1))
    assert status == 413 and str(LIMIT) in body["detail"]


def test_oversize_upload_without_a_length_is_413(site):
    kind, body = multipart({"k": 3}, {"file": ("big.wav", b"\0" * 4 * LIMIT)})
    head = (
        "POST /api/search/audio HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: {kind}\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    pieces = [body[i : i + 16384] for i in range(0, len(body), 16384)]
    chunks = [b"%x\r\n%s\r\n" % (len(p), p) for p in pieces] + [b"0\r\n\r\n"]
    assert raw_exchange(site, head, chunks) == 413


def test_a_short_length_cannot_smuggle_a_larger_body(site):
    kind, body = multipart({"k": 3}, {"file": ("big.wav", b"\0" * 4 * LIMIT)})
    head = (
        "POST /api/search/audio HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: {kind}\r\nContent-Length: 1000\r\n\r\n"
    ).encode()
    pieces = [body[i : i + 16384] for i in range(0, len(body), 16384)]
    # The server reads the 1000 bytes it was told of: an incomplete form.
    assert raw_exchange(site, head, pieces) in (400, None)
    assert get_json(site, "/api/status")[0] == 200  # and still serves


def test_range_request_returns_the_asked_bytes(site):
    url = f"/audio/{site['ids'][b'sub/markets.wav']}"
    status, headers, body = request(site, "GET", url)
    assert status == 200 and headers["accept-ranges"] == "bytes"
    assert headers["content-type"].startswith("audio/")
    assert body[:4] == b"RIFF"
    status, headers, part = request(
        site, "GET", url, headers={"Range": "bytes=100-199"}
    )
    assert status == 206
    assert headers["content-range"] == f"bytes 100-199/{len(body)}"
    assert part == body[100:200]
    assert body == (site["audio"] / "sub" / "markets.wav").read_bytes()


def test_a_path_that_is_not_utf8_is_served(site):
    passage = site["ids"][b"\xe9t\xe9.wav"]
    status, _, body = request(site, "GET", f"/audio/{passage}")
    assert status == 200
    assert body == (site["audio"] / "cat.wav").read_bytes()


def test_stored_paths_leading_outside_are_refused(site):
    # A link or ".." resolves outside (403); an absolute path is taken as
    # relative to the folder, where there is no such file (404).
    expected = dict(zip(site["escapes"], (403, 403, 404)))
    for raw, code in expected.items():
        status, _, body = request(site, "GET", f"/audio/{site['ids'][raw]}")
        assert status == code, raw
        assert SECRET[:16] not in body


@pytest.mark.parametrize(
    "path",
    [
        "/audio/../outside/secret.wav",
        "/audio/../../outside/secret.wav",
        "/audio/%2e%2e/outside/secret.wav",
        "/audio/%2e%2e%2foutside%2fsecret.wav",
        "/audio/..%2F..%2Foutside%2Fsecret.wav",
        "/audio/{secret}",
        "/audio/{secret_quoted}",
        "/audio/-1",
        "/audio/1e3",
        "/audio/999999",
        "/static/../../outside/secret.wav",
        "/static/%2e%2e/%2e%2e/outside/secret.wav",
        "/static/{secret}",
        "/api/audio?path=../outside/secret.wav",
        "/api/audio?path={secret_quoted}",
        "/{secret}",
        "/..%2f..%2foutside%2fsecret.wav",
    ],
)
def test_request_paths_never_reach_outside(site, path):
    secret = str(site["audio"].parent / "outside" / "secret.wav")
    path = path.format(
        secret=secret.lstrip("/"), secret_quoted=urllib.parse.quote(secret, "")
    )
    status, _, body = request(site, "GET", path)
    assert status in (400, 403, 404, 405), (path, status)
    assert SECRET[:16] not in body


def test_another_host_name_is_refused(site):
    status, _, _ = request(site, "GET", "/api/status", headers={"Host": "x.io"})
    assert status == 400


def test_another_model_or_an_empty_index_is_refused(site, tmp_path):
    from speechbrain_sense.search.server import create_app
    from speechbrain_sense.search.store import ModelMismatchError

    class OtherModel:
        identity = {"fingerprint": "0" * 64, "dim": 384, "source": "other"}

    db = site["audio"].parent / "index.db"
    with pytest.raises(ModelMismatchError, match="built with the model"):
        create_app(db, OtherModel())
    SearchIndex(tmp_path / "empty.db", create=True).close()
    with pytest.raises(ValueError, match="run `index` first"):
        create_app(tmp_path / "empty.db", site["model"])
