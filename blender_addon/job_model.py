"""A job as the panel shows it, built from the farm's JSON. No bpy module use.

Money stays integer wei from the JSON's decimal strings to the label: RON are
written with exact integer arithmetic, never through a float.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import AddonError
from .vendor.states import FINAL_JOB_STATES, DeviceType, FrameState, JobState, OutputFormat

WEI_PER_RON = 10**18
RON_DECIMALS = 18

# Frame states in which a node is working on the frame (CHECKING: another node spot-checks it).
IN_FLIGHT_FRAME_STATES = (FrameState.ASSIGNED, FrameState.RENDERING, FrameState.UPLOADED, FrameState.CHECKING)
CANCELLABLE_JOB_STATES = frozenset(state for state in JobState if state not in FINAL_JOB_STATES)
# Job states that wait for the artist (to accept, or to accept again after a deposit).
NEEDS_ARTIST_JOB_STATES = frozenset({"AWAITING_ACCEPTANCE", "AWAITING_PAYMENT"})


def parse_wei(value: int | str | None) -> int:
    """Wei from the API's decimal string (or an int); floats are refused."""
    if value is None or value == "":
        return 0
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"wei must be an int or a decimal string, not {type(value).__name__}")
    amount = int(value)
    if amount < 0:
        raise ValueError(f"wei cannot be negative: {value}")
    return amount


def format_ron(wei: int | str | None) -> str:
    """Wei as RON for people, exactly: ``92160000000`` → ``0.00000009216 RON``."""
    whole, fraction = divmod(parse_wei(wei), WEI_PER_RON)
    digits = f"{fraction:0{RON_DECIMALS}d}".rstrip("0")
    return f"{whole:,}.{digits} RON" if digits else f"{whole:,} RON"


@dataclass(frozen=True)
class Money:
    """A job's escrow so far, in wei: locked, paid to nodes, fee, refunded."""

    locked_wei: int = 0
    paid_wei: int = 0
    fee_wei: int = 0
    refunded_wei: int = 0

    @classmethod
    def from_json(cls, money: dict[str, Any] | None) -> Money:
        money = money or {}
        return cls(
            locked_wei=parse_wei(money.get("lock_wei")),
            paid_wei=parse_wei(money.get("release_wei")),
            fee_wei=parse_wei(money.get("fee_wei")),
            refunded_wei=parse_wei(money.get("refund_wei")),
        )


@dataclass(frozen=True)
class JobView:
    """One job: state, frame counts, money and what went wrong."""

    job_id: str
    state: str
    frames_total: int
    frame_start: int
    frame_end: int
    output_format: str
    width: int
    height: int
    verified: int
    failed: int
    cancelled: int
    in_flight: int
    price_per_frame_wei: int
    estimate_wei: int
    fee_bps: int
    money: Money
    problems: tuple[str, ...] = field(default=())

    @classmethod
    def from_json(cls, job: dict[str, Any], problems: tuple[str, ...] = ()) -> JobView:
        counts = job.get("frame_counts") or {}
        all_problems = list(problems)
        if job.get("lock_error"):
            all_problems.insert(0, f"escrow lock: {job['lock_error']}")
        return cls(
            job_id=job["id"],
            state=job["state"],
            frames_total=int(job.get("frames_total") or 0),
            frame_start=int(job.get("frame_start") or 0),
            frame_end=int(job.get("frame_end") or 0),
            output_format=job.get("output_format") or "",
            width=int(job.get("width") or 0),
            height=int(job.get("height") or 0),
            verified=int(counts.get(FrameState.VERIFIED, 0)),
            failed=int(counts.get(FrameState.FAILED, 0)),
            cancelled=int(counts.get(FrameState.CANCELLED, 0)),
            in_flight=sum(int(counts.get(state, 0)) for state in IN_FLIGHT_FRAME_STATES),
            price_per_frame_wei=parse_wei(job.get("price_per_frame_wei")),
            estimate_wei=parse_wei(job.get("estimate_wei")),
            fee_bps=int(job.get("fee_bps") or 0),
            money=Money.from_json(job.get("money")),
            problems=tuple(all_problems),
        )

    @property
    def short_id(self) -> str:
        return self.job_id[:8]

    @property
    def progress(self) -> float:
        """Verified frames over all frames, 0 to 1."""
        return self.verified / self.frames_total if self.frames_total else 0.0

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_JOB_STATES

    @property
    def is_awaiting_acceptance(self) -> bool:
        return self.state == JobState.AWAITING_ACCEPTANCE

    @property
    def needs_artist(self) -> bool:
        """Nothing happens until the artist accepts (again)."""
        return self.state in NEEDS_ARTIST_JOB_STATES

    @property
    def can_cancel(self) -> bool:
        return self.state in CANCELLABLE_JOB_STATES

    @property
    def frames_text(self) -> str:
        text = f"{self.verified} / {self.frames_total} frames verified"
        if self.failed:
            text += f", {self.failed} failed"
        if self.in_flight and not self.is_final:
            text += f", {self.in_flight} rendering"
        return text

    @property
    def money_text(self) -> str:
        money = self.money
        return (
            f"locked {format_ron(money.locked_wei)} · paid {format_ron(money.paid_wei + money.fee_wei)}"
            f" · refunded {format_ron(money.refunded_wei)}"
        )

    @property
    def frame_range_text(self) -> str:
        return f"frames {self.frame_start}–{self.frame_end}, {self.width}×{self.height} {self.output_format}"


def frame_problems(frames: list[dict[str, Any]]) -> tuple[str, ...]:
    """Why frames failed, one line per FAILED frame, from the frame list."""
    return tuple(
        f"frame {frame['number']}: {frame.get('last_rejection') or 'failed'}"
        for frame in frames
        if frame.get("state") == FrameState.FAILED
    )


GIB = 1024**3


def job_request(
    *,
    frame_start: int,
    frame_end: int,
    output_format: str,
    samples: int | None,
    resolution_percentage: int | None,
    required_device: str,
    min_gpu_memory_gib: int,
) -> dict[str, Any]:
    """The body of ``POST /jobs`` (without the scene) for the panel's settings;
    None leaves a setting as the scene has it."""
    if frame_start > frame_end:
        raise AddonError(f"the frame range {frame_start}–{frame_end} is empty", reason="BAD_FRAME_RANGE")
    if output_format not in set(OutputFormat):
        raise AddonError(f"unknown output format {output_format}", reason="BAD_OUTPUT_FORMAT")
    return {
        "frame_start": frame_start,
        "frame_end": frame_end,
        "output_format": output_format,
        "samples": samples,
        "resolution_percentage": resolution_percentage,
        "required_device": required_device,
        "required_memory_bytes": min_gpu_memory_gib * GIB if required_device == DeviceType.GPU else 0,
    }
