"""The small messages a worker thread posts for the main thread to apply.

No bpy module use. A thread never touches bpy: it puts one of these on a
``queue.SimpleQueue``; a ``bpy.app.timers`` callback (or, in background mode,
the operator itself once the work is done) applies them to the session and to
Blender's data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Progress:
    """What a task is doing now; ``fraction`` is None when unknown."""

    task: str
    text: str
    fraction: float | None = None


@dataclass(frozen=True)
class EstimateReady:
    """A job was created (AWAITING_ACCEPTANCE) for ``request`` and the scene as it was
    at ``scene_revision``: its price is the estimate."""

    task: str
    job: dict[str, Any]
    request: dict[str, Any]
    scene_sha256: str
    scene_bytes: int
    scene_revision: int = 0


@dataclass(frozen=True)
class JobAccepted:
    """The artist's job was accepted: the farm locks the estimate and renders."""

    task: str
    job: dict[str, Any]


@dataclass(frozen=True)
class JobUpdated:
    """A job as the farm sees it now, with why frames failed (if any did)."""

    task: str
    job: dict[str, Any]
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class FramesPulled:
    """Verified frames of a job are on disk in ``directory``, one file per frame number."""

    task: str
    job_id: str
    directory: str
    files: tuple[str, ...]
    frame_start: int
    frame_end: int
    output_format: str
    downloaded: int


@dataclass(frozen=True)
class WalletBalance:
    """The artist's escrow balance and spending cap, in wei."""

    task: str
    address: str
    free_balance_wei: int
    spending_cap_wei: int


@dataclass(frozen=True)
class TaskFailed:
    """The task stopped on an error; ``reason`` is a code, ``message`` for the artist."""

    task: str
    message: str
    reason: str
    problems: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class TaskDone:
    """The task ended (after its last other message), successfully or not."""

    task: str
    text: str = ""


Message = (
    Progress | EstimateReady | JobAccepted | JobUpdated | FramesPulled | WalletBalance | TaskFailed | TaskDone
)
