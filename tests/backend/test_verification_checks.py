"""Verification in the backend: a picture is paid once per job, and every verified
frame gets a thumbnail."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import OpenEXR
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


def test_a_copy_of_a_frame_verified_after_the_verifier_last_looked_is_caught(
    client, run_workers, scene_files, tmp_path, escrow
):
    # The verifier keeps a job's verified frames between frames and reads only the ones
    # verified since: the second frame is new to it when the third, its copy, arrives.
    job = rendering_job(client, run_workers, scene_files["tiny"], escrow, frame_start=1, frame_end=4)
    node = register(client)
    delivered = []
    for seed in (1, 2):
        assignment = claim(client, node)
        image = noise_png(tmp_path / f"frame_{seed}.png", 64, 36, seed=seed)
        assert put_output(client, assignment, image).status_code == 202
        run_workers()
        delivered.append((assignment, image))
    copy = claim(client, node)
    assert put_output(client, copy, delivered[1][1]).status_code == 202
    run_workers()
    honest = claim(client, node)
    assert put_output(client, honest, noise_png(tmp_path / "frame_3.png", 64, 36, seed=3)).status_code == 202
    run_workers()

    frames = {f["number"]: f for f in client.get(f"{JOBS}/{job['id']}/frames").json["frames"]}
    assert [frames[a["frame_number"]]["state"] for a, _ in delivered] == ["VERIFIED", "VERIFIED"]
    rejection = frames[copy["frame_number"]]["last_rejection"]
    assert rejection.startswith("DUPLICATE_FRAME") and "pixel-identical" in rejection
    assert frames[honest["frame_number"]]["state"] == "VERIFIED"  # a new picture is still paid


def constant_exr(path: Path, width: int, height: int, rgb: tuple[float, float, float]) -> Path:
    channels = {
        name: np.full((height, width), value, dtype=np.float32)
        for name, value in zip("RGB", rgb, strict=True)
    }
    channels["A"] = np.ones((height, width), dtype=np.float32)
    OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION}, channels).write(str(path))
    return path


def test_a_constant_frame_is_the_truth_only_where_the_scene_is_flat(
    client, run_workers, scene_files, tmp_path, escrow
):
    # The flat scene sees only the sky: its frames are one colour, however many samples.
    # (A PNG scene asked for OpenEXR, as the add-on does: its 8-bit probe must not be dithered.)
    flat = rendering_job(
        client, run_workers, scene_files["flat"], escrow, frame_start=1, frame_end=1, output_format="OPEN_EXR"
    )
    node = register(client)
    sky = constant_exr(tmp_path / "sky.exr", 64, 36, (0.05, 0.07, 0.12))
    assignment = claim(client, node)
    assert assignment["job_id"] == flat["id"]
    assert put_output(client, assignment, sky).status_code == 202
    run_workers()
    (frame,) = client.get(f"{JOBS}/{flat['id']}/frames").json["frames"]
    assert frame["state"] == "VERIFIED", frame

    # The same flat image for a scene with a torus in view is a cheat.
    scene = rendering_job(
        client, run_workers, scene_files["tiny"], escrow, frame_start=1, frame_end=1, output_format="OPEN_EXR"
    )
    assignment = claim(client, node)
    assert assignment["job_id"] == scene["id"]
    assert put_output(client, assignment, sky).status_code == 202
    run_workers()
    (frame,) = client.get(f"{JOBS}/{scene['id']}/frames").json["frames"]
    assert frame["state"] == "PENDING" and frame["verdict"] == "BLANK", frame


def test_the_preview_is_made_before_verification_writes_anything(
    client, run_workers, scene_files, tmp_path, escrow, monkeypatch
):
    """Image work runs outside any write transaction: on SQLite an open write would hold
    every node's claim and heartbeat back until the preview is done."""
    from sqlalchemy import event

    from backend.extensions import db
    from backend.services import verification

    rendering_job(client, run_workers, scene_files["tiny"], escrow, frame_start=1, frame_end=1)
    node = register(client)
    assignment = claim(client, node)
    assert put_output(client, assignment, noise_png(tmp_path / "frame.png", 64, 36)).status_code == 202

    writes: list[str] = []
    writes_before_preview: list[list[str]] = []
    thumbnail_png = verification.thumbnail_png

    def record(_conn, _cursor, statement, *_args):
        if statement.lstrip().split(" ", 1)[0].upper() in {"INSERT", "UPDATE", "DELETE"}:
            writes.append(statement)

    def preview(*args):
        writes_before_preview.append(list(writes))
        return thumbnail_png(*args)

    monkeypatch.setattr(verification, "thumbnail_png", preview)
    event.listen(db.engine, "before_cursor_execute", record)
    try:
        run_workers()
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert writes_before_preview == [[]]
    assert writes, "verification wrote its verdict after the preview"


def test_the_preview_comes_from_the_pixels_the_checks_decoded(
    client, run_workers, scene_files, tmp_path, escrow, monkeypatch
):
    """Decoding a large frame a second time for its preview cost more than all the checks."""
    from shared import image_checks, thumbnails

    job = rendering_job(client, run_workers, scene_files["tiny"], escrow, frame_start=1, frame_end=1)
    node = register(client)
    assignment = claim(client, node)
    assert put_output(client, assignment, noise_png(tmp_path / "frame.png", 64, 36)).status_code == 202
    decodes: list[str] = []
    read = image_checks._read

    def counted_read(path, expected):
        decodes.append(path)
        return read(path, expected)

    monkeypatch.setattr(image_checks, "_read", counted_read)
    monkeypatch.setattr(thumbnails, "load_pixels", lambda *_: pytest.fail("the output was decoded again"))
    run_workers()

    frame = client.get(f"{JOBS}/{job['id']}/frames").json["frames"][0]
    assert frame["state"] == "VERIFIED"
    assert frame["thumbnail_sha256"]
    assert len(decodes) == 1
    thumbnail = client.get(f"{JOBS}/{job['id']}/frames/{assignment['frame_number']}/thumbnail")
    assert thumbnail.status_code == 200 and thumbnail.data.startswith(b"\x89PNG\r\n\x1a\n")


def test_a_frame_is_verified_in_the_transaction_that_records_its_release(
    client, run_workers, scene_files, tmp_path, escrow
):
    """No commit ever shows a verified frame without its release: a worker stopped between
    two commits would have left the frame unpaid and its price refunded when the job closed."""
    from sqlalchemy import event, text

    from backend.extensions import db

    job = rendering_job(client, run_workers, scene_files["tiny"], escrow, frame_start=1, frame_end=2)
    node = register(client)
    for index in range(2):
        assignment = claim(client, node)
        image = noise_png(tmp_path / f"frame-{index}.png", 64, 36, seed=index)
        assert put_output(client, assignment, image).status_code == 202
    committed: list[tuple[int, int]] = []

    def look(_session) -> None:
        with db.engine.connect() as connection:
            counts = connection.execute(
                text(
                    "SELECT (SELECT count(*) FROM frames WHERE job_id = :job AND state = 'VERIFIED'),"
                    " (SELECT count(*) FROM payments WHERE job_id = :job AND kind = 'RELEASE')"
                ),
                {"job": job["id"]},
            ).one()
        committed.append((counts[0], counts[1]))

    event.listen(db.session, "after_commit", look)
    try:
        run_workers()
    finally:
        event.remove(db.session, "after_commit", look)
    assert (2, 2) in committed
    assert all(verified <= released for verified, released in committed), committed
