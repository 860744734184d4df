"""Verification in the backend: a picture is paid once per job, and every verified
frame gets a thumbnail."""

from __future__ import annotations

import pytest

from tests.backend.helpers import JOBS, claim, noise_png, put_output, register, rendering_job

pytestmark = pytest.mark.integration


def test_same_image_for_two_frames_is_rejected_and_the_thumbnail_served(
    client, run_workers, scene_files, tmp_path, escrow
):
    job = rendering_job(client, run_workers, scene_files["tiny"], escrow, frame_start=1, frame_end=2)
    node = register(client)
    image = noise_png(tmp_path / "same.png", 64, 36)
    first = claim(client, node)
    assert put_output(client, first, image).status_code == 202
    run_workers()
    second = claim(client, node)
    assert put_output(client, second, image).status_code == 202
    run_workers()

    frames = {f["number"]: f for f in client.get(f"{JOBS}/{job['id']}/frames").json["frames"]}
    done, copied = frames[first["frame_number"]], frames[second["frame_number"]]
    assert done["state"] == "VERIFIED" and done["verdict"] == "ACCEPTED"
    assert copied["state"] == "PENDING"
    assert copied["verdict"] == "DUPLICATE_FRAME"
    assert copied["last_rejection"].startswith("DUPLICATE_FRAME")

    thumbnail = client.get(f"{JOBS}/{job['id']}/frames/{first['frame_number']}/thumbnail")
    assert thumbnail.status_code == 200
    assert thumbnail.mimetype == "image/png"
    assert thumbnail.data.startswith(b"\x89PNG\r\n\x1a\n")
    assert done["thumbnail_sha256"]
    missing = client.get(f"{JOBS}/{job['id']}/frames/{second['frame_number']}/thumbnail")
    assert missing.status_code == 404
