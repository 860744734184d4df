"""The whole lifecycle as an artist meets it: the `ronrender` CLI against a local
farm of real processes, Blender rendering every frame, verification, payment."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shared.image_checks import ExpectedImage, check_render_output

pytestmark = pytest.mark.system

RONRENDER = str(Path(sys.executable).parent / "ronrender")


def ronrender(farm, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The artist CLI against ``farm``, with ``env`` added to the farm's environment."""
    return subprocess.run(
        [RONRENDER, "--url", farm.url, *args],
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
        env={**farm.env, **env},
    )


def wait_until_settled(farm, job_id: str, timeout_s: float = 60) -> dict:
    """The job once its close (fee and refund) is confirmed on chain, a moment after COMPLETED."""
    deadline = time.monotonic() + timeout_s
    while True:
        job = farm.admin_get(f"/api/v1/jobs/{job_id}")
        if job["money"]["fee_wei"] != "0" or time.monotonic() > deadline:
            return job
        time.sleep(0.3)


def test_submit_renders_every_frame_on_two_nodes(start_farm, scene_files, tmp_path):
    farm = start_farm(nodes=2)
    submitted = ronrender(farm, "submit", str(scene_files["tiny"]), "--yes", "--json")
    assert submitted.returncode == 0, submitted.stderr
    job = json.loads(submitted.stdout)
    assert job["state"] == "COMPLETED"
    assert job["frame_counts"]["VERIFIED"] == 4
    job = wait_until_settled(farm, job["id"])
    money = {k: int(v) for k, v in job["money"].items()}
    assert money["release_wei"] == 4 * int(job["price_per_frame_wei"])
    assert money["lock_wei"] == money["release_wei"] + money["fee_wei"] + money["refund_wei"]

    downloaded = ronrender(farm, "download", job["id"], str(tmp_path / "frames"))
    assert downloaded.returncode == 0, downloaded.stderr
    frames = sorted((tmp_path / "frames").iterdir())
    assert [f.name for f in frames] == [f"frame_0000{n}.png" for n in range(1, 5)]
    for frame in frames:
        assert check_render_output(str(frame), ExpectedImage("PNG", 64, 36)).accepted
    assert frames[0].read_bytes() != frames[3].read_bytes()  # the animation moves

    status = ronrender(farm, "status", job["id"])
    assert status.returncode == 0
    assert "COMPLETED" in status.stdout
    assert status.stdout.count("VERIFIED") == 4


def test_cli_overrides_render_an_exr_at_half_size(start_farm, scene_files, tmp_path):
    farm = start_farm(nodes=1)
    submitted = ronrender(
        farm, "submit", str(scene_files["tiny"]), "--frames", "2-2", "--format", "OPEN_EXR",
        "--resolution-percentage", "50", "--samples", "2", "--yes", "--json",
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    job = json.loads(submitted.stdout)
    assert (job["frames_total"], job["width"], job["height"]) == (1, 32, 18)
    ronrender(farm, "download", job["id"], str(tmp_path / "frames"))
    exr = tmp_path / "frames" / "frame_00002.exr"
    assert check_render_output(str(exr), ExpectedImage("OPEN_EXR", 32, 18)).accepted

    again = ronrender(farm, "submit", str(scene_files["tiny"]), "--frames", "1-1", "--yes", "--no-wait")
    assert again.returncode == 0, again.stderr
    assert "already stored; not sent again" in again.stderr  # the same bytes move once


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_cli_bad_input_is_a_clear_error(start_farm, scene_files, tmp_path):
    farm = start_farm(nodes=0)
    not_blend = tmp_path / "notes.blend"
    not_blend.write_text("just some text")
    result = ronrender(farm, "submit", str(not_blend), "--yes")
    assert result.returncode != 0
    assert "not a .blend file" in result.stderr

    result = ronrender(farm, "submit", str(scene_files["tiny"]), "--frames", "1-99", "--yes")
    assert result.returncode != 0
    assert "outside the scene's range 1-4" in result.stderr

    result = ronrender(farm, "submit", str(scene_files["missing_texture"]), "--yes")
    assert result.returncode != 0
    assert "does_not_exist.png" in result.stderr

    result = ronrender(farm, "submit", str(scene_files["truncated"]), "--yes")
    assert result.returncode != 0
    assert "Blender could not open the file" in result.stderr

    result = ronrender(farm, "submit", str(scene_files["tiny"]))
    assert result.returncode != 0
    assert "pass --yes" in result.stderr

    result = ronrender(farm, "status", "no-such-job")
    assert result.returncode != 0
    assert "no job no-such-job" in result.stderr
