"""Uploading scene files: streamed, content-addressed, deduplicated; bad uploads
get a 4xx JSON error and leave nothing behind."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from pathlib import Path

import pytest

from backend.extensions import db
from backend.models import Job, SceneFile
from backend.services import scene_analysis
from tests.backend.helpers import SCENES, upload

pytestmark = pytest.mark.integration


def stored_objects(app) -> list[Path]:
    return [p for p in (Path(app.config["RONRENDER_STORAGE_DIR"]) / "objects").rglob("*") if p.is_file()]


def test_upload_stores_by_sha256_and_once(app, client, scene_files):
    data = scene_files["tiny"].read_bytes()
    first = upload(client, scene_files["tiny"])
    assert first.status_code == 201
    assert first.json["sha256"] == hashlib.sha256(data).hexdigest()
    assert first.json["size_bytes"] == len(data)
    assert first.json["state"] == "ANALYZING"
    again = upload(client, scene_files["tiny"])
    assert again.status_code == 200
    assert again.json["sha256"] == first.json["sha256"]
    assert len(stored_objects(app)) == 1


def test_analysis_reads_the_scene_with_blender(client, run_workers, scene_files):
    sha256 = upload(client, scene_files["tiny"]).json["sha256"]
    run_workers()
    scene = client.get(f"{SCENES}/{sha256}").json
    assert scene["state"] == "READY"
    analysis = scene["analysis"]
    assert (analysis["frame_start"], analysis["frame_end"], analysis["frame_step"]) == (1, 4, 1)
    assert (analysis["resolution_x"], analysis["resolution_y"]) == (64, 36)
    assert analysis["resolution_percentage"] == 100
    assert analysis["engine"] == "CYCLES"
    assert analysis["samples"] == 4
    assert analysis["output_format"] == "PNG"
    assert analysis["missing_files"] == []
    assert analysis["crops_render_exactly"] is True  # no denoiser, no compositor: spot-checkable


def _next_child_loaded(timeout_s: float = 30.0) -> subprocess.Popen[str]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready = scene_analysis._ready
        if ready is not None and ready[0].poll() is None:
            return ready[0]
        time.sleep(0.05)
    raise AssertionError("the next analysis's Blender was not loaded")


def test_an_analysis_worker_reads_each_scene_in_a_blender_loaded_ahead(app, client, run_workers, scene_files):
    app.config["RONRENDER_ANALYSIS_PRELOAD_AFTER_S"] = 2.0
    try:
        with app.app_context():
            scene_analysis.keep_blender_ready()
        loaded = scene_analysis._ready[0]
        assert loaded.poll() is None
        # It loads, and later reads the scene, below the priority of renders and requests.
        assert os.getpriority(os.PRIO_PROCESS, loaded.pid) == min(os.getpriority(os.PRIO_PROCESS, 0) + 10, 19)
        sha256 = upload(client, scene_files["tiny"]).json["sha256"]
        run_workers()
        scene = client.get(f"{SCENES}/{sha256}").json
        assert scene["state"] == "READY" and scene["analysis"]["frame_end"] == 4
        assert "probe" in scene["analysis"]
        assert loaded.poll() == 0  # it read this scene and exited
        # The next one loads once the worker has been idle a while, not while the job starts.
        assert scene_analysis._ready is None
        following = _next_child_loaded()
        assert following is not loaded

        following.kill()  # the next one dies while it waits...
        following.wait()
        sha256 = upload(client, scene_files["missing_texture"]).json["sha256"]
        run_workers()
        assert client.get(f"{SCENES}/{sha256}").json["state"] == "READY"  # ...not the scene's fault
        assert _next_child_loaded() is not following
    finally:
        scene_analysis._keep_ready = False
        scene_analysis._drop_ready()


def test_analysis_reports_missing_textures(client, run_workers, scene_files):
    sha256 = upload(client, scene_files["missing_texture"]).json["sha256"]
    run_workers()
    missing = client.get(f"{SCENES}/{sha256}").json["analysis"]["missing_files"]
    assert missing == [{"kind": "image", "name": "missing", "path": "//textures/does_not_exist.png"}]


def test_not_a_blend_is_refused_and_nothing_kept(app, client, tmp_path):
    fake = tmp_path / "photo.blend"
    fake.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 1000)
    response = upload(client, fake)
    assert response.status_code == 415
    assert response.json["reason"] == "NOT_A_BLEND_FILE"
    assert "not a .blend" in response.json["message"]
    assert stored_objects(app) == []
    assert db.session.query(SceneFile).count() == 0


def test_empty_upload_is_refused(app, client):
    response = client.post(SCENES, data=b"", content_type="application/octet-stream")
    assert response.status_code == 400
    assert response.json["reason"] == "EMPTY_UPLOAD"
    assert stored_objects(app) == []


def test_oversized_upload_is_refused_and_nothing_kept(app, client, scene_files):
    app.config["RONRENDER_MAX_SCENE_UPLOAD_BYTES"] = 1000
    response = upload(client, scene_files["tiny"])
    assert response.status_code == 413
    assert response.json["reason"] == "UPLOAD_TOO_LARGE"
    assert stored_objects(app) == []
    staging = Path(app.config["RONRENDER_STORAGE_DIR"]) / "staging"
    assert not staging.exists() or list(staging.iterdir()) == []


def test_truncated_blend_becomes_invalid_and_its_bytes_are_dropped(app, client, run_workers, scene_files):
    sha256 = upload(client, scene_files["truncated"]).json["sha256"]
    run_workers()
    scene = client.get(f"{SCENES}/{sha256}").json
    assert scene["state"] == "INVALID"
    assert "Blender could not open the file" in scene["error"]
    assert stored_objects(app) == []
    job = client.post("/api/v1/jobs", json={"scene_sha256": sha256})
    assert job.status_code == 422
    assert job.json["reason"] == "SCENE_INVALID"
    assert db.session.query(Job).count() == 0


def test_unknown_scene_is_404_json(client):
    response = client.get(f"{SCENES}/{'0' * 64}")
    assert response.status_code == 404
    assert response.json["reason"] == "NOT_FOUND"
