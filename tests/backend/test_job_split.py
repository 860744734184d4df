"""Creating a job: one frame per frame number, priced in integer wei; bad requests
get a 4xx JSON error and create nothing."""

from __future__ import annotations

import pytest

from backend.extensions import db
from backend.models import Frame, Job
from tests.backend.helpers import JOBS, ready_scene, upload

pytestmark = pytest.mark.integration


def test_job_has_one_frame_per_number_and_an_estimate(client, run_workers, scene_files):
    sha256 = ready_scene(client, run_workers, scene_files["tiny"])
    response = client.post(JOBS, json={"scene_sha256": sha256, "frame_start": 2, "frame_end": 4})
    assert response.status_code == 201, response.json
    job = response.json
    assert job["state"] == "AWAITING_ACCEPTANCE"
    assert job["frames_total"] == 3
    assert (job["width"], job["height"]) == (64, 36)
    numbers = db.session.scalars(db.select(Frame.number).where(Frame.job_id == job["id"])).all()
    assert sorted(numbers) == [2, 3, 4]
    price = int(job["price_per_frame_wei"])
    assert price > 0
    assert int(job["estimate_wei"]) == price * 3 + price * 3 * job["fee_bps"] // 10_000


def test_overrides_change_the_job_not_the_scene(client, run_workers, scene_files):
    sha256 = ready_scene(client, run_workers, scene_files["tiny"])
    job = client.post(
        JOBS,
        json={"scene_sha256": sha256, "samples": 2, "resolution_percentage": 50, "output_format": "OPEN_EXR"},
    ).json
    assert (job["samples"], job["width"], job["height"], job["output_format"]) == (2, 32, 18, "OPEN_EXR")
    scene = client.get(f"/api/v1/scenes/{sha256}").json["analysis"]
    assert (scene["samples"], scene["resolution_percentage"]) == (4, 100)


@pytest.mark.parametrize(
    ("frames", "message"),
    [((0, 4), "outside the scene's range 1-4"), ((1, 9), "outside the scene's range 1-4"), ((3, 2), "empty")],
)
def test_frame_range_outside_the_scene_is_refused(client, run_workers, scene_files, frames, message):
    sha256 = ready_scene(client, run_workers, scene_files["tiny"])
    response = client.post(
        JOBS, json={"scene_sha256": sha256, "frame_start": frames[0], "frame_end": frames[1]}
    )
    assert response.status_code == 422
    assert response.json["reason"] == "FRAME_RANGE_OUTSIDE_SCENE"
    assert message in response.json["message"]
    assert db.session.query(Job).count() == 0
    assert db.session.query(Frame).count() == 0


def test_scene_with_missing_textures_is_refused(client, run_workers, scene_files):
    sha256 = ready_scene(client, run_workers, scene_files["missing_texture"])
    response = client.post(JOBS, json={"scene_sha256": sha256})
    assert response.status_code == 422
    assert response.json["reason"] == "MISSING_EXTERNAL_FILES"
    assert "does_not_exist.png" in response.json["message"]
    assert db.session.query(Job).count() == 0


def test_scene_still_analysing_is_a_409(client, scene_files):
    sha256 = upload(client, scene_files["tiny"]).json["sha256"]
    response = client.post(JOBS, json={"scene_sha256": sha256})
    assert response.status_code == 409
    assert response.json["reason"] == "SCENE_NOT_READY"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"scene_sha256": "not-a-hash"},
        {"scene_sha256": "a" * 64, "samples": 0},
        {"scene_sha256": "a" * 64, "output_format": "JPEG"},
        {"scene_sha256": "a" * 64, "engine": "POVRAY"},
    ],
)
def test_malformed_requests_are_422_with_field_errors(client, body):
    response = client.post(JOBS, json=body)
    assert response.status_code == 422
    assert response.json["reason"] == "VALIDATION_ERROR"
    assert response.json["detail"]["json"]


def test_unknown_scene_and_job_are_404(client):
    assert client.post(JOBS, json={"scene_sha256": "b" * 64}).status_code == 404
    response = client.get(f"{JOBS}/nope")
    assert response.status_code == 404
    assert response.json["message"] == "no job nope"


def test_a_frame_larger_than_the_pixel_limit_is_refused(client, run_workers, scene_files):
    from backend.models import SceneFile
    from shared.image_checks import DEFAULT_MAX_OUTPUT_PIXELS

    sha256 = ready_scene(client, run_workers, scene_files["tiny"])
    scene = db.session.get(SceneFile, sha256)
    side = int(DEFAULT_MAX_OUTPUT_PIXELS**0.5)
    scene.analysis = {**scene.analysis, "resolution_x": side, "resolution_y": side}
    db.session.commit()
    assert client.post(JOBS, json={"scene_sha256": sha256, "resolution_percentage": 100}).status_code == 201
    refused = client.post(JOBS, json={"scene_sha256": sha256, "resolution_percentage": 101})
    assert refused.status_code == 400
    assert "more pixels" in refused.json["message"]
    assert db.session.query(Job).count() == 1  # the refused one left nothing behind
