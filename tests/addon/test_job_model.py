"""The job model and the session without Blender: exact RON, job views from the
farm's JSON, the job request, and how messages change what the panel shows."""

from __future__ import annotations

import pytest
from ronrender_addon.errors import AddonError
from ronrender_addon.job_model import JobView, format_ron, frame_problems, job_request, parse_wei
from ronrender_addon.messages import (
    EstimateReady,
    JobAccepted,
    JobUpdated,
    Progress,
    TaskDone,
    TaskFailed,
)
from ronrender_addon.online import online_allowed
from ronrender_addon.session import Session

pytestmark = pytest.mark.addon


def job_json(**changes) -> dict:
    job = {
        "id": "0123456789abcdef0123456789abcdef",
        "state": "RENDERING",
        "frames_total": 4,
        "frame_start": 1,
        "frame_end": 4,
        "output_format": "PNG",
        "width": 64,
        "height": 36,
        "price_per_frame_wei": "92160000000",
        "estimate_wei": "387072000000",
        "fee_bps": 500,
        "lock_error": None,
        "frame_counts": {"PENDING": 1, "RENDERING": 1, "VERIFIED": 2, "FAILED": 0, "CANCELLED": 0},
        "money": {
            "lock_wei": "387072000000",
            "release_wei": "184320000000",
            "fee_wei": "0",
            "refund_wei": "0",
        },
    }
    job.update(changes)
    return job


@pytest.mark.parametrize(
    ("wei", "text"),
    [
        (0, "0 RON"),
        ("1000000000000000000", "1 RON"),
        ("92160000000", "0.00000009216 RON"),
        (1, "0.000000000000000001 RON"),
        ("1234567890123456789012345678901", "1,234,567,890,123.456789012345678901 RON"),
    ],
)
def test_ron_is_written_exactly(wei, text):
    assert format_ron(wei) == text


def test_wei_refuses_floats_and_negatives():
    with pytest.raises(TypeError):
        parse_wei(0.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        parse_wei("-5")


def test_a_job_view_reads_counts_money_and_problems():
    view = JobView.from_json(job_json(lock_error="no balance"), problems=("frame 3: blank image",))
    assert (view.verified, view.in_flight, view.frames_total) == (2, 1, 4)
    assert view.progress == 0.5
    assert view.frames_text == "2 / 4 frames verified, 1 rendering"
    assert view.money_text == "locked 0.000000387072 RON · paid 0.00000018432 RON · refunded 0 RON"
    assert view.problems == ("escrow lock: no balance", "frame 3: blank image")
    assert view.can_cancel and not view.is_final
    done = JobView.from_json(job_json(state="COMPLETED"))
    assert done.is_final and not done.can_cancel


def test_frame_problems_name_the_failed_frames():
    frames = [
        {"number": 1, "state": "VERIFIED", "last_rejection": None},
        {"number": 2, "state": "FAILED", "last_rejection": "BLANK_IMAGE: every pixel is 0"},
        {"number": 3, "state": "FAILED", "last_rejection": None},
    ]
    assert frame_problems(frames) == ("frame 2: BLANK_IMAGE: every pixel is 0", "frame 3: failed")


def test_the_job_request_follows_the_panel():
    request = job_request(
        frame_start=2,
        frame_end=5,
        output_format="OPEN_EXR",
        samples=32,
        resolution_percentage=None,
        required_device="GPU",
        min_gpu_memory_gib=8,
    )
    assert request == {
        "frame_start": 2,
        "frame_end": 5,
        "output_format": "OPEN_EXR",
        "samples": 32,
        "resolution_percentage": None,
        "required_device": "GPU",
        "required_memory_bytes": 8 * 1024**3,
    }
    any_device = job_request(
        frame_start=1,
        frame_end=1,
        output_format="PNG",
        samples=None,
        resolution_percentage=50,
        required_device="ANY",
        min_gpu_memory_gib=8,
    )
    assert any_device["required_memory_bytes"] == 0
    with pytest.raises(AddonError) as raised:
        job_request(
            frame_start=5,
            frame_end=2,
            output_format="PNG",
            samples=None,
            resolution_percentage=None,
            required_device="ANY",
            min_gpu_memory_gib=0,
        )
    assert raised.value.reason == "BAD_FRAME_RANGE"


def test_the_session_follows_an_estimate_then_a_job():
    session = Session()
    request = {"frame_start": 1, "frame_end": 4}
    session.apply(Progress("scene", "Uploading", 0.5))
    assert session.activities["scene"].fraction == 0.5
    estimate = job_json(state="AWAITING_ACCEPTANCE", frame_counts={"PENDING": 4})
    report = session.apply(EstimateReady("scene", estimate, request, "ab" * 32, 1234))
    assert report is not None and "0.00000009216 RON" in report.text and "0.000000387072 RON" in report.text
    assert session.estimate_for(request) is not None
    assert session.estimate_for({**request, "frame_end": 3}) is None
    session.apply(JobAccepted("scene", job_json(state="LOCKING")))
    assert session.estimate is None and session.job_ids == [estimate["id"]]
    assert session.unfinished_job_ids() == [estimate["id"]]
    session.apply(TaskDone("scene"))
    assert "scene" not in session.activities
    session.apply(JobUpdated("refresh", job_json(state="COMPLETED")))
    assert session.unfinished_job_ids() == []


def test_a_failed_task_becomes_an_error_report_with_its_problems():
    session = Session()
    report = session.apply(
        TaskFailed("scene", "2 file(s) cannot be packed", "PACKING_FAILED", ("image 'a'",))
    )
    assert report is not None and report.level == "ERROR"
    assert report.text == "2 file(s) cannot be packed [PACKING_FAILED]" and report.problems == ("image 'a'",)
    stopped = session.apply(TaskFailed("scene", "stopped", "CANCELLED"))
    assert stopped is not None and stopped.level == "WARNING"


def test_updates_of_unknown_jobs_are_not_listed():
    session = Session()
    session.apply(JobUpdated("refresh", job_json()))
    assert session.job_ids == [] and session.jobs == {}


@pytest.mark.parametrize(
    ("online_access", "background", "override", "allowed"),
    [
        (True, False, False, True),
        (False, False, False, False),  # the UI with online access off
        (False, True, False, True),  # a script in background mode
        (False, True, True, False),  # background with --offline-mode
        (True, True, True, True),  # background with --online-mode
    ],
)
def test_when_the_addon_goes_online(online_access, background, override, allowed):
    assert online_allowed(online_access, background, override) is allowed


def test_an_edit_of_the_scene_makes_the_estimate_stale():
    session = Session()
    request = {"frame_start": 1, "frame_end": 4}
    estimate = job_json(state="AWAITING_ACCEPTANCE")
    session.apply(EstimateReady("scene", estimate, request, "ab" * 32, 1234, session.scene_revision))
    assert session.estimate_for(request) is not None
    assert session.scene_changed() is True  # it just became stale
    assert session.scene_changed() is False  # already stale
    assert session.estimate_for(request) is None
