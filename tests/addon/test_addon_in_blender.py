"""The add-on inside Blender (bpy in background mode, in a child process that
``blender_session.py`` drives): installed from the built zip, registered,
drawn, used against a real local farm, and unregistered without leftovers."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import local_farm
import pytest
from PIL import Image

from artist_cli.artist_client import ArtistClient
from artist_cli.wallet import Wallet
from tests.addon.http_stub import canned_json

pytestmark = pytest.mark.addon

NOTHING_LEFT = {
    "types": [],
    "operators": False,
    "scene_property": False,
    "wm_property": False,
    "preferences": False,
    "timers": [],
    "handlers": [],
    "threads": [],
}


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def farm_log(farm) -> str:
    """The end of the backend's log, for a failing test."""
    log = Path(farm.log_dir) / "backend.log"
    return "\n--- backend.log ---\n" + log.read_text(errors="replace")[-3000:] if log.exists() else ""


def drawn(log: list, kind: str) -> list:
    return [entry for entry in log if entry[0] == kind]


def test_registers_draws_reports_and_unregisters_cleanly(run_blender, http_stub, tmp_path):
    png = tmp_path / "any.png"
    Image.new("RGB", (4, 4), (10, 200, 30)).save(png)
    http_stub.on("GET", "/openapi.json", canned_json(200, {"openapi": "3.0.3"}))
    result = run_blender("lifecycle", closed_port=closed_port(), any_png=str(png), http_url=http_stub.url)

    registered = result["registered"]
    assert registered["scene_property"] and registered["wm_property"] and registered["operators"]
    assert {"RONRENDER_PT_main", "RONRENDER_PT_jobs", "RONRENDER_OT_submit_job"} <= set(registered["types"])
    assert result["default_request"]["output_format"] == "PNG"
    assert (result["default_request"]["frame_start"], result["default_request"]["frame_end"]) == (1, 250)
    before, after = result["revisions"]
    assert after > before  # the depsgraph handler saw the edit

    panels = [entry[1][0] for entry in drawn(result["draw_empty"], "panel")]
    assert panels == [
        "RONRENDER_PT_main",
        "RONRENDER_PT_frames",
        "RONRENDER_PT_requirements",
        "RONRENDER_PT_jobs",
    ]
    assert drawn(result["draw_empty"], "problem") == []
    operators = {entry[1][0] for entry in drawn(result["draw_empty"], "operator")}
    assert {"ronrender.estimate", "ronrender.submit_job", "ronrender.refresh_jobs"} <= operators
    labels = " ".join(entry[2].get("text", "") for entry in drawn(result["draw_empty"], "label"))
    assert "No jobs yet" in labels and "Escrow balance not checked yet" in labels

    # Unreachable farm: a report with the reason, quickly, and nothing left busy.
    assert "cannot reach the farm" in result["unreachable"]["error"]
    assert "UNREACHABLE" in result["unreachable"]["error"]
    assert result["unreachable_s"] < 10
    assert not result["unreachable_state"]["busy"]
    assert result["unreachable_state"]["report_level"] == "ERROR"
    assert "BAD_URL" in result["bad_url"]["error"]
    assert "NO_JOB" in result["pull_nothing"]["error"]

    # The same estimate through a worker thread and the pump timer, as in the UI.
    assert result["async_started"] == {"result": ["FINISHED"]}
    assert result["async_busy"] and result["async_timer_registered"]
    assert result["async_state"]["report_level"] == "ERROR" and not result["async_state"]["busy"]
    assert "UNREACHABLE" in result["async_state"]["report_text"]
    assert result["refresh_timer_registered"]

    # A scene whose files cannot be packed: which files, and why.
    unpackable = result["unpackable"]["error"]
    assert "PACKING_FAILED" in unpackable
    assert f"image 'gone' ({tmp_path / 'broken' / 'textures' / 'gone.png'}): not found on disk" in unpackable
    assert f"image 'sequence' ({png}): image sequences cannot be packed" in unpackable
    assert "gone" in result["unpackable_state"]["report_problems"]

    assert result["leftovers"] == NOTHING_LEFT
    assert result["temp_dirs"] == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_pack_submit_follow_and_pull_frames_on_a_farm(run_blender, start_farm):
    farm = start_farm(nodes=1)
    keystore = farm.artist_keystore  # the add-on signs the acceptance with the artist's wallet
    password = local_farm.LOCAL_KEYSTORE_PASSWORD
    artist = ArtistClient(farm.url)
    artist.sign_in_with(Wallet.open(keystore, password))
    api_token = artist.create_api_token("blender add-on", None)["token"]
    result = run_blender(
        "farm",
        timeout_s=240,
        env_vars={"RONRENDER_KEYSTORE_PASSWORD": password},
        farm_url=farm.url,
        keystore=str(keystore),
        api_token=api_token,
    )

    # The estimate packed, uploaded (with progress) and priced the scene.
    assert result["estimate"] == {"result": ["FINISHED"]}, result["_output"] + farm_log(farm)
    messages = result["messages"]
    assert any(m.startswith("Progress:Packing") for m in messages)
    assert any(m.startswith("Progress:Uploading the scene") and m.endswith(":1.0") for m in messages)
    assert any(m.startswith("EstimateReady") for m in messages)
    state = result["estimate_state"]
    assert state["estimate_state"] == "AWAITING_ACCEPTANCE" and state["estimate_matches"]
    assert "3 frames, 64×36, PNG" in state["estimate_lines"] and "price per frame:" in state["estimate_lines"]

    # The artist's open file and saved .blend are exactly as they were.
    before = result["before"]
    assert result["after_estimate"] == before
    assert before["images"] == [["green.png", "//textures/green.png", False]]
    assert before["linked_objects"] == ["LibCube"] and before["libraries"] == ["//library.blend"]
    after_render = result["after_render"]
    assert after_render["blend_sha256"] == before["blend_sha256"]
    assert after_render["images"][:1] == before["images"] and after_render["libraries"] == before["libraries"]

    # Submit accepted the estimated job (no second upload), which rendered to the end
    # with the texture and the library moved away: the upload was self-contained.
    if keystore:
        assert "BAD_KEYSTORE" in result["wrong_password"]["error"]
        assert state["wallet_text"].startswith("escrow balance ")
    assert result["submit"] == {"result": ["FINISHED"]}, result["_output"]
    assert result["submitted_job_id"] == result["estimate_job_id"]
    final = result["final"]
    assert final["state"] == "COMPLETED" and final["verified"] == 3 and final["progress"] == 1.0
    assert final["frames_text"] == "3 / 3 frames verified"
    assert final["money_text"].startswith("locked ") and "refunded 0 RON" in final["money_text"]
    stored = result["stored_scene"]
    assert stored["libraries"] == 0 and stored["linked"] == []
    assert "LibCube" in stored["objects"]
    assert stored["images"] and all(packed for _name, _path, packed in stored["images"])

    # Frames pulled while the job was still running, then all of them.
    assert result["pulls_while_running"] and result["pulls_while_running"][0]["result"] == ["FINISHED"]
    assert result["pull"] == {"result": ["FINISHED"]}
    png = result["png"]
    assert png["source"] == "SEQUENCE" and png["frames_on_disk"] == 3
    assert (png["frame_start"], png["frame_end"]) == (1, 3)
    assert png["filepath"].startswith("//ronrender_frames/")
    assert [f["file"] for f in png["frames"]] == ["frame_00001.png", "frame_00002.png", "frame_00003.png"]
    for frame in png["frames"]:
        assert frame["equal"], frame
        red, green, blue = frame["centre"][:3]
        assert abs(red - 0.2) < 0.05 and abs(green - 0.8) < 0.05 and abs(blue - 0.1) < 0.05, frame
    directory = Path(png["directory"])
    assert {f["sha256"] for f in png["frames"]} == {
        hashlib.sha256((directory / f["file"]).read_bytes()).hexdigest() for f in png["frames"]
    }
    jobs_drawn = result["draw_jobs"]
    assert drawn(jobs_drawn, "problem") == []
    assert any(e[2].get("factor") == "1.0" for e in drawn(jobs_drawn, "progress"))

    # OpenEXR, submitted without an estimate first (Submit estimates, then accepts), then
    # cancelled once a frame is verified: the rest is refunded, the verified frames pull.
    assert result["exr_submit"] == {"result": ["FINISHED"]}, result["_output"]
    kinds = [m.split(":")[0] for m in result["exr_messages"] if not m.startswith("Progress")]
    assert kinds == ["EstimateReady", "JobAccepted", "TaskDone"]
    (cancel,) = result["exr_cancel"]
    assert cancel["result"] == ["FINISHED"]
    assert "is cancelled" in result["exr_cancel_state"]["report_text"]
    settled = result["exr_settled"]
    assert settled["state"] == "CANCELLED" and not settled["can_cancel"] and settled["is_final"]
    assert 1 <= settled["verified"] < 3
    assert "refunded 0 RON" not in settled["money_text"], settled
    exr = result["exr"]
    assert exr["file_format"] == "OPEN_EXR" and exr["is_float"]
    assert exr["frames_on_disk"] == len(exr["frames"]) == settled["verified"]
    assert all(frame["equal"] for frame in exr["frames"])
    linear = [0.0331, 0.6038, 0.0100]  # the texture's sRGB colour in linear light: EXR keeps floats
    assert all(
        abs(a - b) < 0.02 for frame in exr["frames"] for a, b in zip(frame["centre"], linear, strict=False)
    )
    book = [entry["job_id"] for entry in result["job_book"]["jobs"]]
    assert book == [result["exr_job_id"], result["estimate_job_id"]]

    assert result["leftovers"] == NOTHING_LEFT
    assert result["temp_dirs"] == []
