"""Registering nodes and handing each asking node the best frame it can render.

Frames handed back after a miss are claimed first, by reputable nodes only;
a node that missed a job too often is kept off it. A claim takes the first
candidate frame whose guarded transition PENDING -> ASSIGNED succeeds. On
PostgreSQL the one candidate is locked with SKIP LOCKED, so racing claims do
not even contend; SQLite serialises writers.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import and_, false, func, or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from backend import defaults, observability
from backend.errors import NodeSuspended, NotFound
from backend.extensions import db
from backend.models import Attempt, Frame, Job, Node, SceneFile, utc_now
from backend.services import reputation, spot_checks
from backend.services.frame_transitions import open_lease, transition_frame
from shared.protocol import IDLE_POLL_INTERVAL_S
from shared.states import (
    LIVE_FRAME_STATES,
    AssignmentKind,
    AttemptOutcome,
    DeviceType,
    FrameState,
    JobState,
    NodeState,
)

log = logging.getLogger(__name__)
ONLINE_COUNT_TTL_S = 5.0


@dataclass(frozen=True)
class Claim:
    attempt: Attempt
    frame: Frame
    job: Job
    assignment: dict[str, Any]  # what the node is told (``AssignmentOut``)
    kind: AssignmentKind = AssignmentKind.FRAME
    crops: list[list[float]] | None = None  # render borders, for a spot check


def _assignment(
    attempt: Attempt,
    frame_number: int,
    job: Job,
    scene_size_bytes: int,
    kind: AssignmentKind = AssignmentKind.FRAME,
    crops: list[list[float]] | None = None,
) -> dict[str, Any]:
    return {
        "kind": kind,
        "crops": crops or [],
        "attempt_id": attempt.id,
        "lease_token": attempt.lease_token,
        "artist_address": job.artist_address,
        "job_id": job.id,
        "frame_number": frame_number,
        "scene_sha256": job.scene_sha256,
        "scene_size_bytes": scene_size_bytes,
        "settings": {
            "output_format": job.output_format,
            "engine": job.engine,
            "samples": job.samples,
            "resolution_percentage": job.resolution_percentage,
            "width": job.output_width,
            "height": job.output_height,
        },
        "time_limit_s": current_app.config["RONRENDER_FRAME_TIME_LIMIT_S"],
    }


def blender_version_number(version: str) -> int:
    """ "4.5.15 LTS" -> 405."""
    major, minor = version.split(" ")[0].split(".")[:2]
    return int(major) * 100 + int(minor)


def register_node(
    *,
    name: str,
    cpu_cores: int,
    memory_bytes: int,
    blender_version: str,
    gpus: list[dict[str, Any]],
    payout_address: str | None,
    owner_address: str | None = None,
    sandboxed: bool = False,
    benchmark_ms: int | None = None,
    slots: list[dict[str, Any]] | None = None,
) -> Node:
    node = Node(
        owner_address=owner_address,
        sandboxed=sandboxed,
        benchmark_ms=benchmark_ms,
        slots=slots or [],
        name=name,
        cpu_cores=cpu_cores,
        memory_bytes=memory_bytes,
        blender_version=blender_version,
        blender_version_number=blender_version_number(blender_version),
        gpus=gpus,
        max_gpu_memory_bytes=max((int(g.get("memory_bytes") or 0) for g in gpus), default=0),
        payout_address=payout_address,
        state=NodeState.ONLINE,
    )
    db.session.add(node)
    db.session.commit()
    return node


def get_node(node_id: str) -> Node:
    node = db.session.get(Node, node_id)
    if node is None:
        raise NotFound(f"no node {node_id}")
    return node


def _fits(node: Node) -> Any:
    """SQL condition: the job's requirements are met by this node."""
    on_cpu = and_(
        Job.required_device.in_([DeviceType.ANY, DeviceType.CPU]),
        Job.required_memory_bytes <= node.memory_bytes,
    )
    on_gpu = (
        and_(
            Job.required_device.in_([DeviceType.ANY, DeviceType.GPU]),
            Job.required_memory_bytes <= node.max_gpu_memory_bytes,
        )
        if node.gpus
        else false()
    )
    return and_(or_(on_cpu, on_gpu), Job.min_blender_version <= node.blender_version_number)


def _blocked_jobs(node: Node) -> Any:
    """Jobs this node missed too often (failed, rejected, dropped or timed out): it gets no more of them."""
    misses = [AttemptOutcome.FAILED, AttemptOutcome.REJECTED, AttemptOutcome.EXPIRED]
    return (
        select(Frame.job_id)
        .join(Attempt, Attempt.frame_id == Frame.id)
        .where(Attempt.node_id == node.id, Attempt.outcome.in_(misses))
        .group_by(Frame.job_id)
        .having(func.count() >= defaults.JOB_BLOCKLIST_AFTER_FAILURES)
    )


@observability.CLAIM_SECONDS.time()
def claim_frame(
    node: Node,
    *,
    exclude_job_ids: list[str] | None = None,
    exclude_artists: list[str] | None = None,
    continuing_job_id: str | None = None,
    handed_with: int | None = None,
) -> Claim | None:
    """Give the node one frame under a new lease, or None when nothing fits.

    A waiting spot check of another wallet's frame comes first (it is small, and a
    frame's payment waits on it); then frames handed back after a miss, which go
    only to reputable nodes; a suspended node gets nothing. Asked with an upload:
    ``handed_with`` is the uploaded attempt (it records the new lease), and a frame of
    ``continuing_job_id`` (the job just uploaded a frame of) starts RENDERING.
    """
    if node.suspended_reason:
        raise NodeSuspended(f"node {node.id} is suspended: {node.suspended_reason}")
    now = utc_now()
    node.last_heartbeat_at = now
    node.state = NodeState.ONLINE
    checked = spot_checks.claim_spot_check(
        node, now, exclude_job_ids=exclude_job_ids, exclude_artists=exclude_artists, handed_with=handed_with
    )
    if checked is not None:
        spot_check, attempt = checked
        frame = spot_check.frame
        kind, crops = AssignmentKind.SPOT_CHECK, spot_check.crops
        return Claim(
            attempt=attempt,
            frame=frame,
            job=frame.job,
            assignment=_assignment(attempt, frame.number, frame.job, frame.job.scene.size_bytes, kind, crops),
            kind=kind,
            crops=crops,
        )
    for frame_id, job_id in _pending_frames(node, exclude_job_ids, exclude_artists):
        starts = FrameState.RENDERING if job_id == continuing_job_id else FrameState.ASSIGNED
        if not transition_frame(frame_id, starts, expect=[FrameState.PENDING]):
            continue
        return _lease(node, frame_id, now, handed_with)
    db.session.commit()
    return None


def claim_next(node: Node, uploaded_attempt_id: int, uploaded_job_id: str) -> dict[str, Any] | None:
    """The uploading node's next frame (what it is told), asked in the same request as the
    upload; None when nothing fits or the node may not claim now (its own claim then says why).

    A frame of the job just uploaded starts RENDERING at once: the node holds that scene
    and its Blender is warm, so it needs no separate beat to say it started.
    """
    if node.suspended_reason:
        return None
    try:
        claimed = claim_frame(node, continuing_job_id=uploaded_job_id, handed_with=uploaded_attempt_id)
    except (NodeSuspended, SQLAlchemyError) as error:  # the upload stands; the node's claim retries
        db.session.rollback()
        log.warning("no next frame with the upload of node %s: %s", node.id, error)
        return None
    return claimed.assignment if claimed is not None else None


def handed_assignment(attempt_id: int) -> dict[str, Any] | None:
    """What the node was told for a lease handed with an upload, told again when the same
    upload is repeated (its answer was lost); None once that lease is no longer held."""
    attempt = db.session.get(Attempt, attempt_id)
    if attempt is None or attempt.outcome != AttemptOutcome.OPEN:
        return None
    frame = attempt.frame
    job = frame.job
    if spot_checks.holds_live_check(attempt):
        crops = spot_checks.checked_by(attempt).crops  # type: ignore[union-attr]
        return _assignment(attempt, frame.number, job, job.scene.size_bytes, AssignmentKind.SPOT_CHECK, crops)
    if frame.current_attempt_id != attempt.id or frame.state not in LIVE_FRAME_STATES:
        return None
    return _assignment(attempt, frame.number, job, job.scene.size_bytes)


def _pending_frames(
    node: Node, exclude_job_ids: list[str] | None, exclude_artists: list[str] | None
) -> Iterator[tuple[int, str]]:
    """(frame id, job id) to try, best first: handed-back frames (priority 1) before fresh ones, older
    jobs first, lowest frame number first.

    Index-backed on both databases: one query finds the rendering jobs that fit and still
    have pending frames (a probe of ix_frames_claim per job), then each job's next frame is
    one range scan of that index. On PostgreSQL the frame row is locked with SKIP LOCKED,
    so racing claims take different frames without waiting.
    """
    has_pending = select(Frame.id).where(Frame.job_id == Job.id, Frame.state == FrameState.PENDING).exists()
    jobs = (
        select(Job.id)
        .where(Job.state == JobState.RENDERING, _fits(node), has_pending, Job.id.not_in(_blocked_jobs(node)))
        .order_by(Job.created_at)
    )
    if exclude_job_ids:
        jobs = jobs.where(Job.id.not_in(exclude_job_ids))
    if exclude_artists:
        jobs = jobs.where(func.lower(Job.artist_address).not_in([a.lower() for a in exclude_artists]))
    job_ids = db.session.scalars(jobs).all()
    reputable = reputation.score(node) >= defaults.REPUTATION_FOR_RETRIES
    for priority in (1, 0) if reputable else (0,):
        for job_id in job_ids:
            frames = (
                select(Frame.id)
                .where(Frame.job_id == job_id, Frame.state == FrameState.PENDING, Frame.priority == priority)
                .order_by(Frame.number)
            )
            if db.engine.dialect.name == "postgresql":
                # Lock only the one frame we take; racing claims skip it and take the next.
                frames = frames.limit(1).with_for_update(skip_locked=True)
            else:
                frames = frames.limit(defaults.CLAIM_CANDIDATES)
            yield from ((frame_id, job_id) for frame_id in db.session.scalars(frames).all())


def _lease(node: Node, frame_id: int, now: datetime, handed_with: int | None = None) -> Claim:
    """A new lease on a frame just moved to ASSIGNED (or straight to RENDERING)."""
    node_id = node.id  # read before the commit expires the row
    attempt = open_lease(node_id, frame_id, now, handed_with=handed_with)
    db.session.execute(
        update(Frame)
        .where(Frame.id == frame_id)
        .values(current_attempt_id=attempt.id)
        .execution_options(synchronize_session=False)
    )
    # One read for all the node is told, made before the commit expires the rows.
    frame, job, scene_size_bytes = db.session.execute(
        select(Frame, Job, SceneFile.size_bytes)
        .join(Job, Job.id == Frame.job_id)
        .join(SceneFile, SceneFile.sha256 == Job.scene_sha256)
        .where(Frame.id == frame_id)
        .execution_options(populate_existing=True)
    ).one()
    assignment = _assignment(attempt, frame.number, job, scene_size_bytes)
    db.session.commit()
    log.info(
        "frame assigned",
        extra={
            "job_id": assignment["job_id"],
            "frame": assignment["frame_number"],
            "node_id": node_id,
            "attempt_id": assignment["attempt_id"],
        },
    )
    return Claim(attempt=attempt, frame=frame, job=job, assignment=assignment)


_online_count_lock = threading.Lock()


def idle_retry_after_s() -> int | None:
    """How long an idle node's slot should wait before asking again, when the farm is so
    large that its idle slots (each claims on its own) would otherwise flood the backend
    with empty claims (their total rate is held near RONRENDER_IDLE_CLAIMS_PER_S); None
    for a small farm."""
    counted = current_app.extensions.setdefault("ronrender_online_slots", {"slots": 0, "until": 0.0})
    with _online_count_lock:
        now = time.monotonic()
        if now >= counted["until"]:  # counted at most once per few seconds per process
            online = select(Node.slots).where(Node.state == NodeState.ONLINE)
            slots = sum(max(1, len(node_slots or ())) for node_slots in db.session.scalars(online))
            counted.update(slots=slots, until=now + ONLINE_COUNT_TTL_S)
        slots = counted["slots"]
    wait_s = slots / current_app.config["RONRENDER_IDLE_CLAIMS_PER_S"]
    if wait_s <= IDLE_POLL_INTERVAL_S:  # the slots' own pace stays within the budget
        return None
    return min(math.ceil(wait_s), defaults.IDLE_RETRY_AFTER_MAX_S)  # Retry-After counts whole seconds
