"""The lifecycle states of scene files, jobs, frames, attempts, nodes and payments.

Each state enum is a ``StrEnum`` so it travels as plain text in JSON and in the
database. Frame transitions are listed here, in one place; the backend guards
them in the database (see ``backend.services.frame_transitions``).
"""

from __future__ import annotations

from enum import StrEnum


class SceneState(StrEnum):
    """An uploaded scene file: being opened by Blender, usable, or rejected."""

    ANALYZING = "ANALYZING"
    READY = "READY"
    INVALID = "INVALID"


class JobState(StrEnum):
    """A job: estimated, its lock being taken on chain, rendering, then a final state.

    A lock the chain refuses (no balance, cap too low) leaves the job
    AWAITING_PAYMENT: nothing is dispatched, and accepting again retries the lock.
    """

    AWAITING_ACCEPTANCE = "AWAITING_ACCEPTANCE"
    LOCKING = "LOCKING"
    AWAITING_PAYMENT = "AWAITING_PAYMENT"
    RENDERING = "RENDERING"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"


FINAL_JOB_STATES = frozenset({JobState.COMPLETED, JobState.CANCELLED})
# States a client waiting on a job stops at: final, or needing the artist.
SETTLED_JOB_STATES = FINAL_JOB_STATES | {JobState.AWAITING_PAYMENT}


class FrameState(StrEnum):
    """One frame of a job, the unit of work, verification and payment.

    A rejected render output sends the frame back to PENDING (the attempt keeps
    the REJECTED outcome); after too many failed attempts the frame is FAILED.
    CHECKING: the output passed every check on the file, and another node is
    re-rendering crops of it (a spot check) before it is verified and paid.
    """

    PENDING = "PENDING"
    ASSIGNED = "ASSIGNED"
    RENDERING = "RENDERING"
    UPLOADED = "UPLOADED"
    CHECKING = "CHECKING"
    VERIFIED = "VERIFIED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


FINAL_FRAME_STATES = frozenset({FrameState.VERIFIED, FrameState.FAILED, FrameState.CANCELLED})
# A frame under a node's lease, not yet uploaded.
LIVE_FRAME_STATES = frozenset({FrameState.ASSIGNED, FrameState.RENDERING})

FRAME_TRANSITIONS: dict[FrameState, frozenset[FrameState]] = {
    # Straight to RENDERING when the claiming node says it starts what it is handed at
    # once (starts_at_once), or it just uploaded a frame of the same job.
    FrameState.PENDING: frozenset({FrameState.ASSIGNED, FrameState.RENDERING, FrameState.CANCELLED}),
    FrameState.ASSIGNED: frozenset(
        {
            FrameState.RENDERING,
            FrameState.UPLOADED,
            FrameState.PENDING,
            FrameState.FAILED,
            FrameState.CANCELLED,
        }
    ),
    FrameState.RENDERING: frozenset(
        {FrameState.UPLOADED, FrameState.PENDING, FrameState.FAILED, FrameState.CANCELLED}
    ),
    FrameState.UPLOADED: frozenset(
        {
            FrameState.CHECKING,
            FrameState.VERIFIED,
            FrameState.PENDING,
            FrameState.FAILED,
            FrameState.CANCELLED,
        }
    ),
    FrameState.CHECKING: frozenset(
        {FrameState.VERIFIED, FrameState.PENDING, FrameState.FAILED, FrameState.CANCELLED}
    ),
    FrameState.VERIFIED: frozenset(),
    FrameState.FAILED: frozenset(),
    FrameState.CANCELLED: frozenset(),
}


def states_leading_to(target: FrameState) -> frozenset[FrameState]:
    """Every frame state from which ``target`` may be entered."""
    return frozenset(state for state, nexts in FRAME_TRANSITIONS.items() if target in nexts)


class SpotCheckState(StrEnum):
    """A spot check of one uploaded frame: waiting for a checker node, taken by one,
    then passed (the frame is verified), failed (the upload is rejected) or skipped
    (nobody took it in time, or the checker failed: the frame is verified as usual)."""

    PENDING = "PENDING"
    ASSIGNED = "ASSIGNED"
    PASSED = "PASSED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"


class AssignmentKind(StrEnum):
    """What a claim hands out: a frame to render, or crops of another node's frame to re-render."""

    FRAME = "FRAME"
    SPOT_CHECK = "SPOT_CHECK"


class AttemptOutcome(StrEnum):
    """What became of one lease: still open, or how it ended."""

    OPEN = "OPEN"
    UPLOADED = "UPLOADED"
    CHECKING = "CHECKING"
    VERIFIED = "VERIFIED"
    REJECTED = "REJECTED"
    FAILED = "FAILED"
    RELEASED = "RELEASED"
    EXPIRED = "EXPIRED"
    CANCELLED = "CANCELLED"


class NodeState(StrEnum):
    """A node as the backend sees it."""

    ONLINE = "ONLINE"
    OFFLINE = "OFFLINE"


class PaymentKind(StrEnum):
    """A movement of escrowed RON, recorded before it is sent."""

    LOCK = "LOCK"
    RELEASE = "RELEASE"
    FEE = "FEE"
    REFUND = "REFUND"


class PaymentState(StrEnum):
    """A payment in the outbox: recorded, sent in a transaction, confirmed on chain."""

    RECORDED = "RECORDED"
    SENT = "SENT"
    CONFIRMED = "CONFIRMED"


class DeviceType(StrEnum):
    """What a slot renders on; ANY as a requirement means either."""

    CPU = "CPU"
    GPU = "GPU"
    ANY = "ANY"


class OutputFormat(StrEnum):
    """Render output formats, named as Blender names them."""

    PNG = "PNG"
    OPEN_EXR = "OPEN_EXR"


class RenderEngine(StrEnum):
    """Render engines a job may ask for, named as Blender names them."""

    CYCLES = "CYCLES"
    BLENDER_EEVEE = "BLENDER_EEVEE"
    BLENDER_EEVEE_NEXT = "BLENDER_EEVEE_NEXT"
    BLENDER_WORKBENCH = "BLENDER_WORKBENCH"


class TokenKind(StrEnum):
    """Bearer credentials: a short-lived session from a wallet signature, or a named API token."""

    SESSION = "SESSION"  # issued for a signed challenge; expires within the hour
    API = "API"  # created by a signed-in artist for scripts and the add-on; revocable


class RenderFailureKind(StrEnum):
    """Why a node's Blender failed a frame, as the node classifies it from the exit and the log."""

    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    MISSING_GPU_KERNEL = "MISSING_GPU_KERNEL"
    CRASH = "CRASH"
    TIMEOUT = "TIMEOUT"
    SCRIPTS_REFUSED = "SCRIPTS_REFUSED"
    SANDBOX = "SANDBOX"
    OTHER = "OTHER"
