"""The add-on's farm client over a real socket, without Blender: the token,
uploads with progress, retry and stop, polling, downloads checked by sha256, and
every failure turned into a FarmError with a reason."""

from __future__ import annotations

import hashlib
import socket
import time

import pytest
from ronrender_addon import defaults
from ronrender_addon.errors import Cancelled, FarmError
from ronrender_addon.farm_client import FarmClient

from tests.addon.http_stub import Canned, canned_error, canned_json

pytestmark = pytest.mark.addon

SHA = "ab" * 32
SCENE = f"/api/v1/scenes/{SHA}"


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(defaults, "RETRY_DELAYS_S", (0.01, 0.01))
    monkeypatch.setattr(defaults, "SCENE_POLL_INTERVAL_S", 0.01)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_token_is_sent_as_a_bearer_header_only_when_set(http_stub):
    http_stub.on("GET", SCENE, canned_json(200, {"sha256": SHA, "state": "READY"}))
    FarmClient(http_stub.url, token=" t0ken ").find_scene(SHA)
    FarmClient(http_stub.url + "/").find_scene(SHA)
    first, second = http_stub.seen("GET", SCENE)
    assert first.headers["Authorization"] == "Bearer t0ken"
    assert "Authorization" not in second.headers


def test_an_upload_streams_the_file_with_its_length_and_reports_progress(http_stub, tmp_path):
    scene = tmp_path / "scene.blend"
    scene.write_bytes(b"BLENDER" + bytes(range(256)) * 400)
    http_stub.on("POST", "/api/v1/scenes", canned_json(201, {"sha256": SHA, "state": "ANALYZING"}))
    progress: list[tuple[int, int]] = []
    answer = FarmClient(http_stub.url).upload_scene(scene, lambda sent, total: progress.append((sent, total)))
    assert answer["sha256"] == SHA
    (request,) = http_stub.seen("POST", "/api/v1/scenes")
    assert request.body == scene.read_bytes()
    assert request.headers["Content-Length"] == str(scene.stat().st_size)
    assert request.headers["Content-Type"] == "application/octet-stream"
    sent = [s for s, _ in progress]
    assert sent == sorted(sent) and sent[0] == 0 and sent[-1] == scene.stat().st_size
    assert {total for _, total in progress} == {scene.stat().st_size}


def test_a_transient_failure_restarts_the_upload(http_stub, tmp_path):
    scene = tmp_path / "scene.blend"
    scene.write_bytes(b"BLENDER" * 1000)
    http_stub.on(
        "POST",
        "/api/v1/scenes",
        canned_error(503, "busy", "SERVICE_UNAVAILABLE"),
        canned_json(201, {"sha256": SHA, "state": "ANALYZING"}),
    )
    progress: list[int] = []
    FarmClient(http_stub.url).upload_scene(scene, lambda sent, _total: progress.append(sent))
    assert len(http_stub.seen("POST", "/api/v1/scenes")) == 2
    assert progress.count(0) == 2  # the bar starts over with the second attempt


def test_a_rejected_upload_is_not_retried_and_keeps_the_reason(http_stub, tmp_path):
    scene = tmp_path / "scene.blend"
    scene.write_bytes(b"not a blend file")
    http_stub.on("POST", "/api/v1/scenes", canned_error(415, "not a .blend file", "NOT_A_BLEND_FILE"))
    with pytest.raises(FarmError) as raised:
        FarmClient(http_stub.url).upload_scene(scene, lambda *_: None)
    assert (raised.value.status, raised.value.reason, raised.value.transient) == (
        415,
        "NOT_A_BLEND_FILE",
        False,
    )
    assert "not a .blend file" in str(raised.value)
    assert len(http_stub.seen("POST", "/api/v1/scenes")) == 1


def test_stopping_an_upload_raises_cancelled_unwrapped(http_stub, tmp_path):
    scene = tmp_path / "scene.blend"
    scene.write_bytes(b"B" * 200_000)
    http_stub.on("POST", "/api/v1/scenes", canned_json(201, {"sha256": SHA}))
    calls = []

    def cancelled() -> bool:
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(Cancelled):
        FarmClient(http_stub.url).upload_scene(scene, lambda *_: None, cancelled)


def test_an_unreachable_farm_is_reported_quickly_with_its_url():
    url = f"http://127.0.0.1:{closed_port()}"
    started = time.monotonic()
    with pytest.raises(FarmError) as raised:
        FarmClient(url).get_job("job")
    assert raised.value.reason == "UNREACHABLE" and raised.value.transient
    assert url in raised.value.message
    assert time.monotonic() - started < 5


def test_ping_accepts_any_http_answer_and_rejects_silence(http_stub):
    FarmClient(http_stub.url).ping()  # a 404 still proves the farm answers
    with pytest.raises(FarmError, match="cannot reach"):
        FarmClient(f"http://127.0.0.1:{closed_port()}").ping()


def test_a_bad_url_and_an_answer_that_is_not_json(http_stub):
    with pytest.raises(FarmError) as raised:
        FarmClient("farm.example")
    assert raised.value.reason == "BAD_URL"
    http_stub.on("GET", "/api/v1/jobs/j1", Canned(502, b"<html>Bad Gateway</html>", "text/html"))
    with pytest.raises(FarmError) as raised:
        FarmClient(http_stub.url).get_job("j1")
    assert raised.value.status == 502 and "Bad Gateway" in raised.value.message
    assert len(http_stub.seen("GET", "/api/v1/jobs/j1")) == defaults.GET_ATTEMPTS


def test_waiting_for_a_scene_polls_until_blender_has_read_it(http_stub):
    http_stub.on(
        "GET",
        SCENE,
        canned_json(200, {"sha256": SHA, "state": "ANALYZING"}),
        canned_json(200, {"sha256": SHA, "state": "ANALYZING"}),
        canned_json(200, {"sha256": SHA, "state": "READY"}),
    )
    assert FarmClient(http_stub.url).wait_for_scene(SHA)["state"] == "READY"
    assert len(http_stub.seen("GET", SCENE)) == 3


def test_find_scene_is_none_for_an_unknown_scene(http_stub):
    assert FarmClient(http_stub.url).find_scene(SHA) is None


def test_a_frame_download_is_checked_and_written_whole(http_stub, tmp_path):
    frame = b"\x89PNG fake frame bytes" * 100
    http_stub.on("GET", "/api/v1/jobs/j1/frames/3/output", Canned(200, frame, "image/png"))
    client = FarmClient(http_stub.url)
    target = tmp_path / "frames" / "frame_00003.png"
    client.download_frame("j1", 3, target, hashlib.sha256(frame).hexdigest())
    assert target.read_bytes() == frame
    with pytest.raises(FarmError) as raised:
        client.download_frame("j1", 3, tmp_path / "other.png", "0" * 64)
    assert raised.value.reason == "DOWNLOAD_CORRUPT"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames"]


def test_a_missing_frame_keeps_the_backend_reason(http_stub, tmp_path):
    http_stub.on(
        "GET", "/api/v1/jobs/j1/frames/9/output", canned_error(404, "no verified output", "NOT_FOUND")
    )
    with pytest.raises(FarmError) as raised:
        FarmClient(http_stub.url).download_frame("j1", 9, tmp_path / "f.png")
    assert (raised.value.status, raised.value.reason) == (404, "NOT_FOUND")
    assert not list(tmp_path.iterdir())
