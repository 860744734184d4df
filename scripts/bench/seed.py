"""A claimable job without a chain, written straight into the bench's database.

In the farm a job's frames go out only once the escrow lock is confirmed on chain
(``AWAITING_ACCEPTANCE -> LOCKING -> RENDERING``). The scheduler and split benchmarks
measure the backend, not the chain, so they record a scene file as analysed (a
stated analysis, no Blender), create the job with the backend's own
``job_split.create_job`` and then move the job to ``RENDERING`` with the backend's
guarded state update, as ``payments.lock_job`` would once the lock is confirmed.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

BENCH_BLENDER_VERSION = "4.5"
BENCH_WIDTH, BENCH_HEIGHT = 8, 8


def scene_analysis(frames: int, output_format: str = "PNG") -> dict[str, Any]:
    """What scene analysis would record for a tiny CPU scene of ``frames`` frames."""
    return {
        "scene_name": "Scene",
        "frame_start": 1,
        "frame_end": frames,
        "frame_step": 1,
        "resolution_x": BENCH_WIDTH,
        "resolution_y": BENCH_HEIGHT,
        "resolution_percentage": 100,
        "engine": "CYCLES",
        "samples": 16,
        "output_format": output_format,
        "device": "CPU",
        "has_camera": True,
        "saved_with_blender": BENCH_BLENDER_VERSION,
        "opened_with_blender": BENCH_BLENDER_VERSION,
        "scripts_blocked": False,
        "missing_files": [],
        "animated": True,
        "probe": {
            "frame": 1,
            "width": BENCH_WIDTH,
            "height": BENCH_HEIGHT,
            "samples": 16,
            "render_us": 1000,
            "blank": False,
        },
    }


def claimable_job(
    config: dict[str, Any],
    frames: int,
    *,
    rendering: bool = True,
    output_format: str = "PNG",
    owner_address: str | None = None,
) -> tuple[str, float]:
    """Create a job of ``frames`` frames in the bench database; returns its id and the
    seconds ``create_job`` took (the split). ``rendering`` also marks its lock confirmed;
    ``owner_address`` is the artist who may read it."""
    from backend import create_app
    from backend.extensions import db
    from backend.models import Job, SceneFile
    from backend.services.guarded_update import move_state
    from backend.services.job_split import JobRequest, create_job
    from shared.states import JobState, SceneState

    app = create_app(config)
    with app.app_context():
        sha256 = hashlib.sha256(f"bench-scene-{frames}-{time.time_ns()}".encode()).hexdigest()
        db.session.add(
            SceneFile(
                sha256=sha256,
                size_bytes=1,
                state=SceneState.READY,
                analysis=scene_analysis(frames, output_format),
            )
        )
        db.session.commit()
        started = time.perf_counter()
        job = create_job(JobRequest(scene_sha256=sha256, owner_address=owner_address))
        split_s = time.perf_counter() - started
        job_id = job.id
        if rendering:
            move_state(Job, job_id, [JobState.AWAITING_ACCEPTANCE], JobState.RENDERING)
            db.session.commit()
        db.session.remove()
        db.engine.dispose()
    return job_id, split_s


def mark_uploads_verified(config: dict[str, Any], job_id: str) -> int:
    """Mark the job's uploaded frames VERIFIED with their uploaded output, as the
    verifier would (the transfer benchmark runs no RQ worker); returns how many."""
    from sqlalchemy import select

    from backend import create_app
    from backend.extensions import db
    from backend.models import Attempt, Frame
    from shared.states import FrameState

    app = create_app(config)
    with app.app_context():
        frames = db.session.scalars(
            select(Frame).where(Frame.job_id == job_id, Frame.state == FrameState.UPLOADED)
        ).all()
        for frame in frames:
            attempt = db.session.get(Attempt, frame.current_attempt_id)
            assert attempt is not None
            frame.state = FrameState.VERIFIED
            frame.output_sha256 = attempt.output_sha256
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    return len(frames)
