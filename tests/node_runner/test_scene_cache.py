"""The scene cache over real HTTP: a Flask app serves scene files with ``send_file``
as the backend does (Range requests included). A second job of the same file is
served from disk, the least recently used scene goes at the size limit, a partial
download resumes, and a corrupted download is detected and fetched again."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask, Response, request, send_file
from werkzeug.serving import make_server

from node_runner.backend_client import BackendClient
from node_runner.scene_cache import SceneCache, SceneChecksumMismatch

pytestmark = pytest.mark.integration

SIZE = 300_000


class SceneServer:
    """Serves ``/api/v1/scenes/<sha>/file`` from a folder; can corrupt its next answers."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.requests: list[dict[str, str | None]] = []
        self.corrupt_next = 0
        app = Flask(__name__)

        @app.get("/api/v1/scenes/<sha256>/file")
        def scene_file(sha256: str) -> Response:
            self.requests.append({"sha256": sha256, "range": request.headers.get("Range")})
            path = self.folder / sha256
            if self.corrupt_next:
                self.corrupt_next -= 1
                data = bytearray(path.read_bytes())
                data[len(data) // 2] ^= 0xFF  # one flipped byte: same size, wrong hash
                return Response(bytes(data), mimetype="application/octet-stream")
            return send_file(path, mimetype="application/octet-stream")

        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def add(self, data: bytes) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        (self.folder / sha256).write_bytes(data)
        return sha256

    def stop(self) -> None:
        self._server.shutdown()


@pytest.fixture
def server(tmp_path) -> Iterator[SceneServer]:
    folder = tmp_path / "served"
    folder.mkdir()
    scene_server = SceneServer(folder)
    yield scene_server
    scene_server.stop()


def cache_for(server: SceneServer, root: Path, limit_bytes: int = 10 * SIZE) -> SceneCache:
    client = BackendClient(server.url, threading.Event(), retry_window_s=5)
    return SceneCache(root, client, limit_bytes)


def scene_bytes(seed: int) -> bytes:
    return bytes((seed + i) % 251 for i in range(SIZE))


def test_a_second_job_of_the_same_file_needs_no_download(server, tmp_path):
    sha = server.add(scene_bytes(1))
    cache = cache_for(server, tmp_path / "cache")
    with cache.use(sha) as first:
        assert first.read_bytes() == scene_bytes(1)
    with cache.use(sha) as second:
        assert second == first
    assert (cache.downloads, cache.hits, len(server.requests)) == (1, 1, 1)


def test_least_recently_used_scenes_go_at_the_limit(server, tmp_path):
    a, b, c = (server.add(scene_bytes(seed)) for seed in (1, 2, 3))
    cache = cache_for(server, tmp_path / "cache", limit_bytes=2 * SIZE)
    cache.ensure(a)
    cache.ensure(b)
    cache.ensure(a)  # a is used again: b is now the least recently used
    cache.ensure(c)
    assert cache.evicted == [b]
    assert cache.path_for(a).exists() and cache.path_for(c).exists() and not cache.path_for(b).exists()
    with cache.use(a):  # a scene in use is never evicted, even when it is the oldest
        cache.ensure(b)
        assert cache.path_for(a).exists()
    assert cache.evicted == [b, c]


def test_a_partial_download_resumes_with_a_range_request(server, tmp_path):
    data = scene_bytes(4)
    sha = server.add(data)
    cache = cache_for(server, tmp_path / "cache")
    cache.path_for(sha).with_suffix(".partial").write_bytes(data[:100_000])  # left by a cut connection
    assert cache.ensure(sha).read_bytes() == data
    assert server.requests[-1]["range"] == "bytes=100000-"
    assert cache.bytes_downloaded == SIZE - 100_000


def test_a_corrupted_download_is_detected_and_fetched_again(server, tmp_path):
    data = scene_bytes(5)
    sha = server.add(data)
    cache = cache_for(server, tmp_path / "cache")
    server.corrupt_next = 1
    assert cache.ensure(sha).read_bytes() == data
    assert cache.downloads == 2 and len(server.requests) == 2
    assert server.requests[1]["range"] is None  # corrupted bytes are never resumed from

    other = server.add(scene_bytes(6))
    server.corrupt_next = 99
    with pytest.raises(SceneChecksumMismatch):
        cache.ensure(other)
    assert not cache.path_for(other).exists()
    assert not cache.path_for(other).with_suffix(".partial").exists()
