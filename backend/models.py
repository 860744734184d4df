"""Database models of the render lifecycle: scene files, jobs, frames, attempts,
nodes and payments. The schema itself is managed by Alembic migrations."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ColumnElement,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    literal_column,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column, relationship

from backend.extensions import db
from shared.states import (
    AttemptOutcome,
    FrameState,
    JobState,
    NodeState,
    PaymentKind,
    PaymentState,
    SceneState,
    SpotCheckState,
    TokenKind,
)


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_public_id() -> str:
    return uuid.uuid4().hex


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every database (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime")
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Wei(TypeDecorator[int]):
    """An integer amount of wei: NUMERIC(78, 0) on PostgreSQL, decimal text on SQLite
    (whose integers stop at 2**63, about 9.2 RON)."""

    impl = String(80)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(78, 0))
        return dialect.type_descriptor(String(80))

    def process_bind_param(self, value: int | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"wei must be an int, got {type(value).__name__}")
        return Decimal(value) if dialect.name == "postgresql" else str(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:
        return None if value is None else int(value)


def _enum(enum_class: type) -> Enum:
    return Enum(enum_class, native_enum=False, length=32, validate_strings=True)


def is_one_of(column: ColumnElement[Any], names: Iterable[str]) -> ColumnElement[bool]:
    """``column IN ('A', 'B')`` with the names (states, outcomes: fixed words of the schema)
    written into the SQL. A statement built once then needs no bound list expanded at each
    execution, which cost as much as the rest of preparing it."""
    words = sorted(str(name) for name in names)
    if not all(word.isidentifier() for word in words):  # a word of the schema, never a value from outside
        raise ValueError(f"not a state name: {words}")
    return column.in_([literal_column(f"'{word}'") for word in words])


class SceneFile(db.Model):
    """A packed .blend, stored once by its content address, and what Blender read from it."""

    __tablename__ = "scene_files"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[SceneState] = mapped_column(_enum(SceneState), default=SceneState.ANALYZING)
    analysis: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


class Job(db.Model):
    """One submission: a scene file, a frame range, overrides, requirements, an estimate."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_public_id)
    scene_sha256: Mapped[str] = mapped_column(ForeignKey("scene_files.sha256"), index=True)
    state: Mapped[JobState] = mapped_column(_enum(JobState), index=True)
    frame_start: Mapped[int] = mapped_column(Integer)
    frame_end: Mapped[int] = mapped_column(Integer)
    frame_step: Mapped[int] = mapped_column(Integer)
    output_format: Mapped[str] = mapped_column(String(16))
    engine: Mapped[str] = mapped_column(String(32))
    samples: Mapped[int | None] = mapped_column(Integer, nullable=True)
    resolution_x: Mapped[int] = mapped_column(Integer)
    resolution_y: Mapped[int] = mapped_column(Integer)
    resolution_percentage: Mapped[int] = mapped_column(Integer)
    required_device: Mapped[str] = mapped_column(String(8))
    required_memory_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    min_blender_version: Mapped[int] = mapped_column(Integer)  # major * 100 + minor
    frames_total: Mapped[int] = mapped_column(Integer)
    price_per_frame_wei: Mapped[int] = mapped_column(Wei)
    fee_bps: Mapped[int] = mapped_column(Integer)
    estimate_wei: Mapped[int] = mapped_column(Wei)
    estimated_render_us_per_frame: Mapped[int] = mapped_column(BigInteger, default=0)
    safety_margin_percent: Mapped[int] = mapped_column(Integer, default=0)
    artist_address: Mapped[str | None] = mapped_column(String(42), nullable=True, index=True)
    # The signed-in account that created the job; only it (and admins) may see or steer it.
    owner_address: Mapped[str | None] = mapped_column(String(42), nullable=True, index=True)
    lock_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)

    scene: Mapped[SceneFile] = relationship()

    @property
    def output_width(self) -> int:
        return self.resolution_x * self.resolution_percentage // 100

    @property
    def output_height(self) -> int:
        return self.resolution_y * self.resolution_percentage // 100


# The partial index ix_frames_pending's condition. A query it serves must say the same
# with the value written in (``matchmaker``): a bound value hides it from the planner.
PENDING_FRAME_SQL = f"state = '{FrameState.PENDING}'"


class Frame(db.Model):
    """One frame of a job: the unit of work, of verification and of payment."""

    __tablename__ = "frames"
    __table_args__ = (
        UniqueConstraint("job_id", "number"),
        Index("ix_frames_job_state", "job_id", "state"),
        # The claim path: a job's next pending frame is the first entry of an index that
        # holds pending frames only, read in its own order (priority, number), which no
        # other index offers (for ORDER BY number, PostgreSQL with statistics walked the
        # unique (job_id, number) index past every frame already handed out).
        Index(
            "ix_frames_pending",
            "job_id",
            "priority",
            "number",
            postgresql_where=text(PENDING_FRAME_SQL),
            sqlite_where=text(PENDING_FRAME_SQL),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    state: Mapped[FrameState] = mapped_column(_enum(FrameState), default=FrameState.PENDING)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    # 1 for a frame handed back (a dropped, failed or rejected attempt): claimed before fresh ones.
    priority: Mapped[int] = mapped_column(Integer, default=0)
    current_attempt_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    output_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_rejection: Mapped[str | None] = mapped_column(Text, nullable=True)
    # What verification measured on the verified output: its pixel fingerprint (for
    # duplicates among the job's frames), noise and detail statistics, and a preview.
    output_fingerprint: Mapped[str | None] = mapped_column(Text, nullable=True)
    output_stats: Mapped[dict[str, float] | None] = mapped_column(JSON, nullable=True)
    thumbnail_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)

    job: Mapped[Job] = relationship()


class Node(db.Model):
    """A registered node_runner service and the hardware it offers."""

    __tablename__ = "nodes"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_public_id)
    name: Mapped[str] = mapped_column(String(128))
    payout_address: Mapped[str | None] = mapped_column(String(42), nullable=True)
    # The wallet that signed in to register the node; payouts go to it (proved by the signature).
    owner_address: Mapped[str | None] = mapped_column(String(42), nullable=True, index=True)
    sandboxed: Mapped[bool] = mapped_column(Boolean, default=False)
    benchmark_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    slots: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    cpu_cores: Mapped[int] = mapped_column(Integer)
    memory_bytes: Mapped[int] = mapped_column(BigInteger)
    gpus: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    max_gpu_memory_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    blender_version: Mapped[str] = mapped_column(String(32))
    blender_version_number: Mapped[int] = mapped_column(Integer)
    state: Mapped[NodeState] = mapped_column(_enum(NodeState), default=NodeState.ONLINE, index=True)
    frames_verified: Mapped[int] = mapped_column(Integer, default=0)
    frames_rejected: Mapped[int] = mapped_column(Integer, default=0)
    frames_failed: Mapped[int] = mapped_column(Integer, default=0)
    frames_timed_out: Mapped[int] = mapped_column(Integer, default=0)
    frames_dropped: Mapped[int] = mapped_column(Integer, default=0)
    suspended_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    registered_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    last_heartbeat_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


class Attempt(db.Model):
    """One lease's history: which node rendered which frame, and how it ended."""

    __tablename__ = "attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    frame_id: Mapped[int] = mapped_column(ForeignKey("frames.id"), index=True)
    node_id: Mapped[str] = mapped_column(ForeignKey("nodes.id"), index=True)
    lease_token: Mapped[str] = mapped_column(String(64), unique=True)
    outcome: Mapped[AttemptOutcome] = mapped_column(_enum(AttemptOutcome), default=AttemptOutcome.OPEN)
    progress: Mapped[float] = mapped_column(default=0.0)
    progress_detail: Mapped[str] = mapped_column(String(128), default="")
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    lease_expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    output_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    output_fingerprint: Mapped[str | None] = mapped_column(Text, nullable=True)
    log_tail: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The lease handed out with this attempt's upload (claim_next): an upload repeated
    # because its answer was lost is answered with the same next frame.
    next_attempt_id: Mapped[int | None] = mapped_column(ForeignKey("attempts.id"), nullable=True)

    frame: Mapped[Frame] = relationship()
    node: Mapped[Node] = relationship()


class SpotCheck(db.Model):
    """Another node re-renders a few small crops of an uploaded frame; the frame is
    verified only if they equal the same regions of the upload.

    The checker works under an attempt of its own on the same frame (its lease,
    heartbeats and sweep are an attempt's); the frame's current attempt stays the
    checked one, so payment goes to the node that rendered the frame.
    """

    __tablename__ = "spot_checks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    frame_id: Mapped[int] = mapped_column(ForeignKey("frames.id"), index=True)
    checked_attempt_id: Mapped[int] = mapped_column(ForeignKey("attempts.id"), index=True)
    state: Mapped[SpotCheckState] = mapped_column(
        _enum(SpotCheckState), default=SpotCheckState.PENDING, index=True
    )
    # Render borders [min_x, max_x, min_y, max_y], fractions of the frame on pixel edges.
    crops: Mapped[list[list[float]]] = mapped_column(JSON)
    # The content address of each crop the checker uploaded (None until it arrives).
    crop_sha256s: Mapped[list[str | None]] = mapped_column(JSON, default=list)
    checker_node_id: Mapped[str | None] = mapped_column(ForeignKey("nodes.id"), nullable=True)
    checker_attempt_id: Mapped[int | None] = mapped_column(
        ForeignKey("attempts.id"), nullable=True, index=True
    )
    result: Mapped[str | None] = mapped_column(Text, nullable=True)
    # A second check of the same crops by a third wallet, opened when the first one
    # found a mismatch, so that one dishonest checker cannot reject an honest frame.
    confirms_spot_check_id: Mapped[int | None] = mapped_column(ForeignKey("spot_checks.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)

    frame: Mapped[Frame] = relationship()
    checked_attempt: Mapped[Attempt] = relationship(foreign_keys=[checked_attempt_id])


class Payment(db.Model):
    """A movement of escrowed RON in the outbox: recorded before it is sent, at most
    one per (job, frame, kind), so no frame is paid twice. A batch of releases
    shares one transaction."""

    __tablename__ = "payments"
    __table_args__ = (
        UniqueConstraint("job_id", "frame_number", "kind"),
        Index("ix_payments_state_kind", "state", "kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)
    frame_number: Mapped[int] = mapped_column(Integer, default=-1)  # -1 for job-wide
    frame_index: Mapped[int] = mapped_column(Integer, default=-1)  # the contract's 0-based index
    kind: Mapped[PaymentKind] = mapped_column(_enum(PaymentKind))
    state: Mapped[PaymentState] = mapped_column(_enum(PaymentState), default=PaymentState.RECORDED)
    amount_wei: Mapped[int] = mapped_column(Wei)
    recipient: Mapped[str | None] = mapped_column(String(64), nullable=True)
    tx_hash: Mapped[str | None] = mapped_column(String(66), nullable=True, index=True)
    raw_tx: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    confirmed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class SceneOwner(db.Model):
    """Who uploaded a scene file: the same bytes are stored once but belong to each uploader."""

    __tablename__ = "scene_owners"

    scene_sha256: Mapped[str] = mapped_column(ForeignKey("scene_files.sha256"), primary_key=True)
    owner_address: Mapped[str] = mapped_column(String(42), primary_key=True)
    uploaded_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


class ApiToken(db.Model):
    """A bearer credential bound to a wallet address. Only its sha256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_public_id)
    owner_address: Mapped[str] = mapped_column(String(42), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[TokenKind] = mapped_column(_enum(TokenKind))
    name: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class SceneUpload(db.Model):
    """A scene file arriving in chunks: resumable after a dropped connection.

    The bytes so far are staged in the backend's data directory; ``received_bytes``
    is where the next chunk must start. Completing it stores the file like a
    one-shot upload (content-addressed, analysed once).
    """

    __tablename__ = "scene_uploads"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_public_id)
    owner_address: Mapped[str] = mapped_column(String(42), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    received_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
