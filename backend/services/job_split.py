"""Turning an analysed scene file and an artist's request into a job and one
frame per frame number (the seed's "mini-jobs"), all in one transaction."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import func, insert, literal, select, text

from backend import defaults
from backend.errors import (
    FrameRangeOutsideScene,
    MissingExternalFiles,
    NotFound,
    RonRenderError,
    SceneInvalid,
    SceneNotReady,
)
from backend.extensions import db
from backend.models import Frame, Job, SceneFile
from backend.services.estimate import estimate_job
from backend.services.matchmaker import blender_version_number
from shared.image_checks import DEFAULT_MAX_OUTPUT_PIXELS
from shared.states import FrameState, JobState, OutputFormat, SceneState

MAX_FRAMES_PER_JOB = 1_000_000

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobRequest:
    """What the artist asked for; None means "as the scene says"."""

    scene_sha256: str
    frame_start: int | None = None
    frame_end: int | None = None
    frame_step: int | None = None
    engine: str | None = None
    samples: int | None = None
    resolution_percentage: int | None = None
    output_format: str | None = None
    required_device: str | None = None
    required_memory_bytes: int = 0
    owner_address: str | None = None


def create_job(request: JobRequest) -> Job:
    """Validate the request against the scene, then create the job and its frames."""
    scene = db.session.get(SceneFile, request.scene_sha256)
    if scene is None:
        raise NotFound(f"no scene file {request.scene_sha256}")
    if scene.state == SceneState.ANALYZING:
        raise SceneNotReady("the scene file is still being analysed; try again shortly")
    if scene.state == SceneState.INVALID:
        raise SceneInvalid(scene.error or "the scene file is not usable")
    info = scene.analysis or {}
    if info["missing_files"]:
        names = ", ".join(f"{m['kind']} {m['path']}" for m in info["missing_files"])
        raise MissingExternalFiles(
            f"the scene uses files that are not packed: {names}; pack them before submitting",
            missing_files=info["missing_files"],
        )
    if not info["has_camera"]:
        raise SceneInvalid("the scene has no active camera")
    start = info["frame_start"] if request.frame_start is None else request.frame_start
    end = info["frame_end"] if request.frame_end is None else request.frame_end
    step = request.frame_step or info["frame_step"]
    if start > end:
        raise FrameRangeOutsideScene(f"frame range {start}-{end} is empty")
    if start < info["frame_start"] or end > info["frame_end"]:
        raise FrameRangeOutsideScene(
            f"frame range {start}-{end} is outside the scene's range "
            f"{info['frame_start']}-{info['frame_end']}",
            scene_frame_start=info["frame_start"],
            scene_frame_end=info["frame_end"],
        )
    numbers = range(start, end + 1, step)
    if len(numbers) > MAX_FRAMES_PER_JOB:
        raise RonRenderError(f"a job may have at most {MAX_FRAMES_PER_JOB} frames")
    output_format = request.output_format or info["output_format"]
    if output_format not in set(OutputFormat):
        output_format = OutputFormat.PNG
    samples = request.samples if request.samples is not None else info["samples"]
    percentage = request.resolution_percentage or info["resolution_percentage"]
    width = info["resolution_x"] * percentage // 100
    height = info["resolution_y"] * percentage // 100
    if width * height > DEFAULT_MAX_OUTPUT_PIXELS:
        raise RonRenderError(
            f"{width}x{height} is more pixels than a frame may have ({DEFAULT_MAX_OUTPUT_PIXELS})",
            max_pixels=DEFAULT_MAX_OUTPUT_PIXELS,
        )
    job = Job(
        owner_address=request.owner_address,
        scene_sha256=scene.sha256,
        state=JobState.AWAITING_ACCEPTANCE,
        frame_start=start,
        frame_end=end,
        frame_step=step,
        output_format=output_format,
        engine=request.engine or info["engine"],
        samples=samples,
        resolution_x=info["resolution_x"],
        resolution_y=info["resolution_y"],
        resolution_percentage=percentage,
        required_device=request.required_device or info["device"],
        required_memory_bytes=request.required_memory_bytes,
        min_blender_version=blender_version_number(info["saved_with_blender"]),
        frames_total=len(numbers),
        price_per_frame_wei=0,
        fee_bps=0,
        estimate_wei=0,
    )
    estimate = estimate_job(info["probe"], job.output_width, job.output_height, samples, len(numbers))
    job.price_per_frame_wei = estimate.price_per_frame_wei
    job.fee_bps = estimate.fee_bps
    job.estimate_wei = estimate.total_wei
    job.estimated_render_us_per_frame = estimate.render_us_per_frame
    job.safety_margin_percent = estimate.margin_percent
    db.session.add(job)
    db.session.flush()
    _insert_frames(job.id, numbers)
    db.session.commit()
    if len(numbers) >= defaults.ANALYZE_AFTER_SPLIT_FRAMES:
        _refresh_frame_statistics()
    log.info(
        "job created: %d frames, estimate %d wei",
        job.frames_total,
        job.estimate_wei,
        extra={"job_id": job.id},
    )
    return job


def _insert_frames(job_id: str, numbers: range) -> None:
    """One frame row per number, generated inside the database by one INSERT … SELECT
    (no row travels from Python: 100,000 frames are one statement)."""
    if db.engine.dialect.name == "postgresql":
        series = func.generate_series(numbers.start, numbers.stop - 1, numbers.step).table_valued("n")
        series = series.render_derived(name="numbers")
        number = series.c.n
    else:  # SQLite: a recursive common table expression counts the numbers
        first = select(literal(numbers.start).label("n")).cte("numbers", recursive=True)
        series = first.union_all(
            select(first.c.n + numbers.step).where(first.c.n + numbers.step < numbers.stop)
        )
        number = series.c.n
    rows = select(
        literal(job_id), number, literal(FrameState.PENDING.value), literal(0), literal(0)
    ).select_from(series)
    columns = [Frame.job_id, Frame.number, Frame.state, Frame.failures, Frame.priority]
    db.session.execute(insert(Frame).from_select(columns, rows))


def _refresh_frame_statistics() -> None:
    """ANALYZE frames on PostgreSQL after a large split, so that the planner knows the new
    job's pending frames before its first claim. Without statistics, or with ones taken
    before, it guesses that the job has one pending frame, and the claim may then read and
    sort every pending frame of the job instead of taking the first from ix_frames_pending.
    (Autovacuum analyzes it only once a tenth of the table has changed.)"""
    if db.engine.dialect.name == "postgresql":
        db.session.execute(text("ANALYZE frames"))
        db.session.commit()


def get_job(job_id: str) -> Job:
    job = db.session.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    return job
