"""What the panel shows, as plain data, and how each message changes it.
No bpy module use.

The main thread owns a ``Session``: it applies the messages that worker threads
post, and the Blender side mirrors it into the window manager's properties.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from .job_model import JobView, format_ron
from .messages import (
    EstimateReady,
    FramesPulled,
    JobAccepted,
    JobUpdated,
    Message,
    Progress,
    TaskDone,
    TaskFailed,
    WalletBalance,
)

SCENE_TASK = "scene"
REFRESH_TASK = "refresh"
WALLET_TASK = "wallet"


def pull_task(job_id: str) -> str:
    return f"pull:{job_id}"


def accept_task(job_id: str) -> str:
    return f"accept:{job_id}"


def cancel_task(job_id: str) -> str:
    return f"cancel:{job_id}"


@dataclass
class Activity:
    """A task in flight: what it is doing and how far along (None: unknown)."""

    text: str
    fraction: float | None = None


@dataclass(frozen=True)
class Estimate:
    """The estimate on screen: a job AWAITING_ACCEPTANCE and the request it answers."""

    job: JobView
    request: dict[str, Any]
    scene_sha256: str
    scene_bytes: int
    scene_revision: int = 0

    @property
    def lines(self) -> list[str]:
        job = self.job
        return [
            f"{job.frames_total} frames, {job.width}×{job.height}, {job.output_format}",
            f"price per frame: {format_ron(job.price_per_frame_wei)}",
            f"total: {format_ron(job.estimate_wei)} (fee {job.fee_bps / 100:g}% included)",
        ]


@dataclass(frozen=True)
class Report:
    """What the artist is told: level is INFO, WARNING or ERROR, as Blender's reports."""

    level: str
    text: str
    problems: tuple[str, ...] = ()


@dataclass
class Session:
    activities: dict[str, Activity] = field(default_factory=dict)
    estimate: Estimate | None = None
    job_ids: list[str] = field(default_factory=list)
    jobs: dict[str, JobView] = field(default_factory=dict)
    last_report: Report | None = None
    pulled: dict[str, FramesPulled] = field(default_factory=dict)
    wallet: WalletBalance | None = None
    scene_revision: int = 0

    def reset(self) -> None:
        """Forget everything (the add-on is being unregistered)."""
        self.__init__()  # type: ignore[misc]

    def track(self, job_id: str, *, first: bool = True) -> None:
        """Show ``job_id`` in the job list (newest first)."""
        if job_id in self.job_ids:
            return
        if first:
            self.job_ids.insert(0, job_id)
        else:
            self.job_ids.append(job_id)

    def forget(self, job_id: str) -> None:
        if job_id in self.job_ids:
            self.job_ids.remove(job_id)
        self.jobs.pop(job_id, None)
        self.pulled.pop(job_id, None)

    def unfinished_job_ids(self) -> list[str]:
        """Jobs whose state may still change without the artist (or is not known yet)."""
        return [
            i
            for i in self.job_ids
            if i not in self.jobs or not (self.jobs[i].is_final or self.jobs[i].needs_artist)
        ]

    @property
    def wallet_text(self) -> str:
        wallet = self.wallet
        if wallet is None:
            return ""
        return (
            f"escrow balance {format_ron(wallet.free_balance_wei)} "
            f"(spending cap {format_ron(wallet.spending_cap_wei)})"
        )

    @property
    def wallet_short(self) -> bool:
        """The wallet cannot cover the estimate on screen."""
        if self.wallet is None or self.estimate is None:
            return False
        return self.wallet.free_balance_wei < self.estimate.job.estimate_wei

    def scene_changed(self) -> bool:
        """The scene was edited; returns True when that made the estimate on screen stale."""
        self.scene_revision += 1
        return self.estimate is not None and self.estimate.scene_revision == self.scene_revision - 1

    def estimate_for(self, request: dict[str, Any] | None) -> Estimate | None:
        """The estimate on screen if it answers exactly ``request`` for the scene as it is
        now, and can still be accepted."""
        current = self.estimate
        if (
            current is None
            or current.request != request
            or current.scene_revision != self.scene_revision
            or not current.job.is_awaiting_acceptance
        ):
            return None
        return current

    def apply(self, message: Message) -> Report | None:
        """Change the session for ``message``; returns what to tell the artist, if anything."""
        report: Report | None = None
        if isinstance(message, Progress):
            self.activities[message.task] = Activity(message.text, message.fraction)
        elif isinstance(message, EstimateReady):
            estimate = Estimate(
                JobView.from_json(message.job),
                message.request,
                message.scene_sha256,
                message.scene_bytes,
                message.scene_revision,
            )
            self.estimate = estimate
            report = Report("INFO", f"Estimate for job {estimate.job.short_id}: " + "; ".join(estimate.lines))
        elif isinstance(message, JobAccepted):
            job = JobView.from_json(message.job)
            self.jobs[job.job_id] = job
            self.track(job.job_id)
            if self.estimate is not None and self.estimate.job.job_id == job.job_id:
                self.estimate = None
            report = Report(
                "INFO",
                f"Job {job.short_id} accepted: {format_ron(job.estimate_wei)} to be locked, "
                f"{job.frames_total} frames to render",
            )
        elif isinstance(message, JobUpdated):
            job = JobView.from_json(message.job, message.problems)
            if job.job_id in self.job_ids:
                self.jobs[job.job_id] = job
            if self.estimate is not None and self.estimate.job.job_id == job.job_id:
                self.estimate = replace(self.estimate, job=job)
            if message.task.startswith("cancel:"):
                report = Report("INFO", f"Job {job.short_id} is {job.state.lower()}; {job.money_text}")
        elif isinstance(message, FramesPulled):
            self.pulled[message.job_id] = message
            report = Report(
                "INFO",
                f"{len(message.files)} verified frames of job {message.job_id[:8]} in {message.directory} "
                f"({message.downloaded} new)",
            )
        elif isinstance(message, WalletBalance):
            self.wallet = message
            if message.task == WALLET_TASK:
                report = Report("INFO", self.wallet_text)
        elif isinstance(message, TaskFailed):
            level = "WARNING" if message.reason == "CANCELLED" else "ERROR"
            report = Report(level, f"{message.message} [{message.reason}]", message.problems)
        elif isinstance(message, TaskDone):
            self.activities.pop(message.task, None)
        if report is not None:
            self.last_report = report
        return report
