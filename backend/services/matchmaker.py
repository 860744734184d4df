"""Registering nodes and handing each asking node the best frame it can render.

Frames handed back after a miss are claimed first, by reputable nodes only;
a node that missed a job too often is kept off it. A claim takes the first
candidate frame whose guarded transition out of PENDING succeeds (to RENDERING
when the node starts it at once, else ASSIGNED). On
PostgreSQL the one candidate is locked with SKIP LOCKED, so racing claims do
not even contend; SQLite serialises writers.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cachetools import LRUCache
from flask import current_app
from sqlalchemy import ColumnElement, Select, and_, bindparam, delete, func, literal_column, or_, select

from backend import defaults, observability
from backend.errors import NodeSuspended, NotFound
from backend.extensions import app_scoped, db
from backend.models import Attempt, Frame, Job, Node, SceneFile, is_one_of, utc_now
from backend.services import heartbeats, reputation, spot_checks
from backend.services.frame_transitions import lease_first_locked, open_lease, transition_frame
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
JOB_TERMS_CACHE_SIZE = 4096  # jobs whose terms a process keeps
JOB_TERMS_KEY = "ronrender_job_terms"


@dataclass(frozen=True)
class Claim:
    attempt_id: int
    frame_number: int
    assignment: dict[str, Any]  # what the node is told (``AssignmentOut``)


@dataclass(frozen=True)
class _JobTerms:
    """What a node is told about a job, the same for each of its frames (fixed once the
    job is created, so a process keeps them instead of reading the job per claim)."""

    job_id: str
    artist_address: str
    scene_sha256: str
    scene_size_bytes: int
    settings: tuple[tuple[str, Any], ...]


_job_terms_lock = threading.Lock()


def _job_terms(job_id: str) -> _JobTerms:
    cache = app_scoped(JOB_TERMS_KEY, lambda: LRUCache(maxsize=JOB_TERMS_CACHE_SIZE))
    with _job_terms_lock:
        terms = cache.get(job_id)
    if terms is None:
        job, scene_size_bytes = db.session.execute(
            select(Job, SceneFile.size_bytes)
            .join(SceneFile, SceneFile.sha256 == Job.scene_sha256)
            .where(Job.id == job_id)
        ).one()
        terms = _JobTerms(
            job_id=job.id,
            artist_address=job.artist_address,
            scene_sha256=job.scene_sha256,
            scene_size_bytes=scene_size_bytes,
            settings=(
                ("output_format", job.output_format),
                ("engine", job.engine),
                ("samples", job.samples),
                ("resolution_percentage", job.resolution_percentage),
                ("width", job.output_width),
                ("height", job.output_height),
            ),
        )
        with _job_terms_lock:
            cache[job_id] = terms
    return terms


def _assignment(
    attempt_id: int,
    lease_token: str,
    frame_number: int,
    job_id: str,
    kind: AssignmentKind = AssignmentKind.FRAME,
    crops: list[list[float]] | None = None,
) -> dict[str, Any]:
    terms = _job_terms(job_id)
    return {
        "kind": kind,
        "crops": crops or [],
        "attempt_id": attempt_id,
        "lease_token": lease_token,
        "artist_address": terms.artist_address,
        "job_id": terms.job_id,
        "frame_number": frame_number,
        "scene_sha256": terms.scene_sha256,
        "scene_size_bytes": terms.scene_size_bytes,
        "settings": dict(terms.settings),
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


# The claim's statements are written on the tables, not the mapped classes: a statement
# on mapped attributes takes the ORM's longer way through every execution (about twice the
# CPU of the same SQL on the table), and a claim runs several.
_jobs, _frames, _attempts = Job.__table__.c, Frame.__table__.c, Attempt.__table__.c


def _fits() -> Any:
    """SQL condition: the job's requirements are met by the node whose values are bound
    (``memory_bytes``, ``gpu_memory_bytes``: -1 without a GPU, ``blender_version_number``)."""
    on_cpu = and_(
        is_one_of(_jobs.required_device, [DeviceType.ANY, DeviceType.CPU]),
        _jobs.required_memory_bytes <= bindparam("memory_bytes"),
    )
    on_gpu = and_(
        is_one_of(_jobs.required_device, [DeviceType.ANY, DeviceType.GPU]),
        _jobs.required_memory_bytes <= bindparam("gpu_memory_bytes"),
    )
    return and_(or_(on_cpu, on_gpu), _jobs.min_blender_version <= bindparam("blender_version_number"))


def _blocked_jobs() -> Any:
    """Jobs the node ``node_id`` missed too often (failed, rejected, dropped or timed out):
    it gets no more of them."""
    misses = [AttemptOutcome.FAILED, AttemptOutcome.REJECTED, AttemptOutcome.EXPIRED]
    return (
        select(_frames.job_id)
        .select_from(Frame.__table__.join(Attempt.__table__, _attempts.frame_id == _frames.id))
        .where(_attempts.node_id == bindparam("node_id"), is_one_of(_attempts.outcome, misses))
        .group_by(_frames.job_id)
        .having(func.count() >= defaults.JOB_BLOCKLIST_AFTER_FAILURES)
    )


def _is_pending() -> ColumnElement[bool]:
    """frames.state = 'PENDING' with the value written into the SQL, as the partial index
    ix_frames_pending says it: only then may the planner use that index (PostgreSQL's
    generic plans of a prepared statement, and SQLite's, cannot match a bound value)."""
    return _frames.state == literal_column(f"'{FrameState.PENDING}'")


@functools.cache
def _claimable_jobs() -> Select[Any]:
    """The rendering jobs that fit the node and still have pending frames, oldest first, and
    whether each has handed-back ones. Built once: a claim binds only the node's values."""

    def has_pending(lowest_priority: int) -> Any:
        """Whether the job has a pending frame of at least this priority, asked as its first
        such frame in ix_frames_pending's own order (priority, number), not as EXISTS:
        PostgreSQL may run an EXISTS as a join that reads and hashes every pending frame,
        or (in a generic plan) as a scan of the whole table; this is one index probe."""
        first = (
            select(_frames.id)
            .where(_frames.job_id == _jobs.id, _is_pending(), _frames.priority >= lowest_priority)
            .order_by(_frames.priority, _frames.number)
            .limit(1)
        )
        return first.scalar_subquery().is_not(None)

    return (
        select(_jobs.id, has_pending(1).label("has_retries"))
        .where(_jobs.state == JobState.RENDERING, _fits(), has_pending(0), _jobs.id.not_in(_blocked_jobs()))
        .order_by(_jobs.created_at)
    )


@functools.cache
def _next_pending_frames(postgres: bool, handed_back: bool) -> Select[Any]:
    """A job's next pending frames (``of_job_id`` bound), handed-back ones (priority 1) or
    fresh ones (0): one range scan of ix_frames_pending. On PostgreSQL only the one frame
    taken is locked, with SKIP LOCKED, so racing claims take the next one without waiting.

    The priority is a range and the order (priority, number), never ``priority = p ORDER BY
    number``: the planner folds an equality away, and then the unique (job_id, number)
    index offers the same order, which PostgreSQL takes once it has statistics, walking
    past every frame already handed out at each claim.

    The bound name is no column's: in the statement that leases the frame it finds, which
    also updates frames, a value named ``job_id`` would be read as one to set."""
    priority = _frames.priority >= 1 if handed_back else _frames.priority <= 0
    frames = (
        select(_frames.id, _frames.number)
        .where(_frames.job_id == bindparam("of_job_id"), _is_pending(), priority)
        .order_by(_frames.priority, _frames.number)
    )
    if postgres:  # LIMIT 1 written into the SQL: a generic plan then still expects one row
        return frames.limit(literal_column("1")).with_for_update(skip_locked=True)
    return frames.limit(defaults.CLAIM_CANDIDATES)


@observability.CLAIM_SECONDS.time()
def claim_frame(
    node: Node,
    *,
    exclude_job_ids: list[str] | None = None,
    exclude_artists: list[str] | None = None,
    starts_at_once: bool = False,
) -> Claim | None:
    """Give the node one frame under a new lease, or None when nothing fits.

    A waiting spot check of another wallet's frame comes first (it is small, and a
    frame's payment waits on it); then frames handed back after a miss, which go
    only to reputable nodes; a suspended node gets nothing. The frame is ASSIGNED
    until the node's beat says it started, or RENDERING at once for a node that
    ``starts_at_once``.
    """
    if node.suspended_reason:
        raise NodeSuspended(f"node {node.id} is suspended: {node.suspended_reason}")
    node_id = node.id  # read before the commit expires the row (reading it then reloads it)
    heartbeats.note_heard(node, utc_now())
    claimed = _claim(
        node, exclude_job_ids=exclude_job_ids, exclude_artists=exclude_artists, starts_at_once=starts_at_once
    )
    db.session.commit()
    if claimed is not None:
        log_assigned(node_id, claimed)
    return claimed


@observability.CLAIM_SECONDS.time()
def claim_with_upload(node: Node, uploaded_job_id: str, *, starts_at_once: bool = False) -> Claim | None:
    """The uploading node's next frame, leased in the upload's own transaction (the caller
    commits both, or neither); None when nothing fits or the node may not claim now (its
    own claim then says why). The caller has noted the node heard.

    A frame of the job just uploaded starts RENDERING at once: the node holds that scene
    and its Blender is warm, so it needs no separate beat to say it started. So does any
    frame for a node that ``starts_at_once``.
    """
    if node.suspended_reason:
        return None
    return _claim(node, continuing_job_id=uploaded_job_id, starts_at_once=starts_at_once)


def _claim(
    node: Node,
    *,
    exclude_job_ids: list[str] | None = None,
    exclude_artists: list[str] | None = None,
    continuing_job_id: str | None = None,
    starts_at_once: bool = False,
) -> Claim | None:
    """A lease on the first spot check or frame that fits, uncommitted. A frame of
    ``continuing_job_id``, or any frame when the node ``starts_at_once``, starts RENDERING."""
    now = utc_now()
    checked = spot_checks.claim_spot_check(
        node, now, exclude_job_ids=exclude_job_ids, exclude_artists=exclude_artists
    )
    if checked is not None:
        spot_check, lease = checked
        frame = spot_check.frame
        kind, crops = AssignmentKind.SPOT_CHECK, spot_check.crops
        assignment = _assignment(lease.attempt_id, lease.token, frame.number, frame.job_id, kind, crops)
        return Claim(attempt_id=lease.attempt_id, frame_number=frame.number, assignment=assignment)
    node_id = node.id
    for job_id, handed_back in _claimable_jobs_for(node, exclude_job_ids, exclude_artists):
        started = starts_at_once or job_id == continuing_job_id
        starts = FrameState.RENDERING if started else FrameState.ASSIGNED
        claim = _lease_next_frame(node_id, job_id, handed_back, starts, now)
        if claim is not None:
            return claim
    return None


def log_assigned(node_id: str, claim: Claim) -> None:
    """One log line per lease handed out, once it is committed."""
    ids = {"job_id": claim.assignment["job_id"], "frame": claim.frame_number, "attempt_id": claim.attempt_id}
    if claim.assignment["kind"] == AssignmentKind.SPOT_CHECK:
        log.info("spot check assigned", extra={**ids, "checker": node_id})
    else:
        log.info("frame assigned", extra={**ids, "node_id": node_id})


def handed_assignment(attempt_id: int) -> dict[str, Any] | None:
    """What the node was told for a lease handed with an upload, told again when the same
    upload is repeated (its answer was lost); None once that lease is no longer held."""
    attempt = db.session.get(Attempt, attempt_id)
    if attempt is None or attempt.outcome != AttemptOutcome.OPEN:
        return None
    frame = attempt.frame
    if spot_checks.holds_live_check(attempt):
        crops = spot_checks.checked_by(attempt).crops  # type: ignore[union-attr]
        kind = AssignmentKind.SPOT_CHECK
        return _assignment(attempt.id, attempt.lease_token, frame.number, frame.job_id, kind, crops)
    if frame.current_attempt_id != attempt.id or frame.state not in LIVE_FRAME_STATES:
        return None
    return _assignment(attempt.id, attempt.lease_token, frame.number, frame.job_id)


def _claimable_jobs_for(
    node: Node, exclude_job_ids: list[str] | None, exclude_artists: list[str] | None
) -> list[tuple[str, bool]]:
    """(job id, handed back) to take a frame from, best first: handed-back frames (priority
    1) before fresh ones, older jobs first; a job is named for a priority it has frames of.

    Index-backed on both databases: one query finds the rendering jobs that fit and still
    have pending frames, and which of them have handed-back ones (probes of ix_frames_pending
    per job). The statement is built once per process.
    """
    jobs = _claimable_jobs()
    if exclude_job_ids:
        jobs = jobs.where(_jobs.id.not_in(exclude_job_ids))
    if exclude_artists:
        jobs = jobs.where(func.lower(_jobs.artist_address).not_in([a.lower() for a in exclude_artists]))
    node_values = {
        "node_id": node.id,
        "memory_bytes": node.memory_bytes,
        "gpu_memory_bytes": node.max_gpu_memory_bytes if node.gpus else -1,  # no job fits on none
        "blender_version_number": node.blender_version_number,
    }
    rows = db.session.execute(jobs, node_values).all()
    reputable = reputation.score(node) >= defaults.REPUTATION_FOR_RETRIES
    handed_back = [(row.id, True) for row in rows if reputable and row.has_retries]
    return handed_back + [(row.id, False) for row in rows]


def _lease_next_frame(
    node_id: str, job_id: str, handed_back: bool, starts: FrameState, now: datetime
) -> Claim | None:
    """A new lease on the job's next pending frame of that priority, uncommitted; None when
    other claims took them all. The next frame is one range scan of ix_frames_pending; on
    PostgreSQL it is locked and leased in that same statement."""
    postgres = db.engine.dialect.name == "postgresql"
    candidates = _next_pending_frames(postgres, handed_back)
    if postgres:
        leased = lease_first_locked(candidates, {"of_job_id": job_id}, node_id, starts, now)
        if leased is None:
            return None
        lease, frame_number = leased.lease, leased.frame_number
        assignment = _assignment(lease.attempt_id, lease.token, frame_number, job_id)
        return Claim(attempt_id=lease.attempt_id, frame_number=frame_number, assignment=assignment)
    for frame_id, frame_number in db.session.execute(candidates, {"of_job_id": job_id}).all():
        claim = _lease(node_id, frame_id, frame_number, job_id, starts, now)
        if claim is not None:
            return claim
    return None


def _lease(
    node_id: str, frame_id: int, frame_number: int, job_id: str, starts: FrameState, now: datetime
) -> Claim | None:
    """A new lease on the frame, if it is still PENDING (None if another claim took it);
    uncommitted. SQLite's way: it serialises writers, so it locks nothing ahead.

    The attempt is written first, so the guarded move out of PENDING also names it: one
    statement fewer than moving the frame and then pointing it at its attempt."""
    lease = open_lease(node_id, frame_id, now)
    attempt_id = lease.attempt_id
    if not transition_frame(frame_id, starts, expect=[FrameState.PENDING], current_attempt_id=attempt_id):
        db.session.execute(delete(Attempt.__table__).where(Attempt.__table__.c.id == attempt_id))
        return None
    assignment = _assignment(attempt_id, lease.token, frame_number, job_id)
    return Claim(attempt_id=attempt_id, frame_number=frame_number, assignment=assignment)


_online_count_lock = threading.Lock()


def idle_retry_after_s() -> int | None:
    """How long an idle node's slot should wait before asking again, when the farm is so
    large that its idle slots (each claims on its own) would otherwise flood the backend
    with empty claims (their total rate is held near RONRENDER_IDLE_CLAIMS_PER_S); None
    for a small farm."""
    counted = app_scoped("ronrender_online_slots", lambda: {"slots": 0, "until": 0.0})
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
