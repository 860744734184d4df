"""The owner's terms: when the node may take new frames (a weekly schedule, idle-only
mode, pause), when it should leave (stop after the current frame), and which work
it refuses (a blocklist). Pure logic with an injectable clock and idle probe."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, time
from enum import StrEnum
from pathlib import Path

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RULE = re.compile(
    r"^(?P<days>[a-z]{3}(?:-[a-z]{3})?(?:,[a-z]{3}(?:-[a-z]{3})?)*)"
    r"(?:\s+(?P<start>\d{1,2}:\d{2})-(?P<end>\d{1,2}:\d{2}))?$"
)
CONTROL_FILE = "control.json"


class ScheduleError(ValueError):
    pass


@dataclass(frozen=True)
class ScheduleRule:
    """Days of the week (0 = Monday) and a time window; an end before the start runs
    past midnight into the next day, so "fri 22:00-06:00" covers Saturday's early hours."""

    days: frozenset[int]
    start: time
    end: time

    def covers(self, moment: datetime) -> bool:
        day, now = moment.weekday(), moment.time()
        if self.start < self.end:
            return day in self.days and self.start <= now < self.end
        if self.start == self.end:  # whole days
            return day in self.days
        return (day in self.days and now >= self.start) or ((day - 1) % 7 in self.days and now < self.end)


def parse_rule(text: str) -> ScheduleRule:
    """Parse "mon-fri 18:00-08:00", "sat,sun" or "wed 00:00-24:00"."""
    match = _RULE.match(text.strip().lower())
    if not match:
        raise ScheduleError(f"cannot read schedule rule {text!r}; write e.g. 'mon-fri 18:00-08:00'")
    days: set[int] = set()
    for part in match["days"].split(","):
        first, _, last = part.partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise ScheduleError(f"unknown day in {text!r}; use {', '.join(DAYS)}")
        a, b = DAYS.index(first), DAYS.index(last or first)
        days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    start, end = _clock(match["start"] or "00:00", text), _clock(match["end"] or "00:00", text)
    return ScheduleRule(frozenset(days), start, end)


def _clock(value: str, rule: str) -> time:
    hours, minutes = (int(part) for part in value.split(":"))
    if hours == 24 and minutes == 0:
        return time(0, 0)
    if not (0 <= hours < 24 and 0 <= minutes < 60):
        raise ScheduleError(f"bad time {value!r} in {rule!r}")
    return time(hours, minutes)


@dataclass(frozen=True)
class Schedule:
    """Hours of the week the owner lets the node work; no rules means any time."""

    rules: tuple[ScheduleRule, ...] = ()

    @classmethod
    def parse(cls, texts: Iterable[str]) -> Schedule:
        return cls(tuple(parse_rule(text) for text in texts))

    def allows(self, moment: datetime) -> bool:
        return not self.rules or any(rule.covers(moment) for rule in self.rules)


def load_idle_probe(max_load_per_core: float, own_busy_cores: Callable[[], float]) -> Callable[[], bool]:
    """An idle probe from the 1-minute load average, less the load of the node's own renders,
    so a node in idle-only mode does not take its own work for the owner's."""
    cores = os.cpu_count() or 1

    def idle() -> bool:
        others = max(0.0, os.getloadavg()[0] - own_busy_cores())
        return others / cores < max_load_per_core

    return idle


class Control(StrEnum):
    """What the owner asked from another terminal (``ronrender-node pause`` and friends)."""

    RUN = "RUN"
    PAUSED = "PAUSED"
    STOP_AFTER_FRAME = "STOP_AFTER_FRAME"


def write_control(work_dir: Path, control: Control) -> None:
    """Written atomically, so the running node never reads half a file."""
    work_dir.mkdir(parents=True, exist_ok=True)
    path = work_dir / CONTROL_FILE
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps({"control": control.value}))
    os.replace(partial, path)


def read_control(work_dir: Path) -> Control:
    try:
        return Control(json.loads((work_dir / CONTROL_FILE).read_text())["control"])
    except (OSError, ValueError, KeyError):
        return Control.RUN


class Waiting(StrEnum):
    """Why a slot takes no new frame right now."""

    PAUSED = "paused by the owner"
    OUTSIDE_SCHEDULE = "outside the owner's schedule"
    BUSY = "the machine is in use (idle-only mode)"


@dataclass
class OwnerTerms:
    """Decides, before each claim, whether a slot may take a new frame."""

    work_dir: Path
    schedule: Schedule = Schedule()
    idle_only: bool = False
    idle_probe: Callable[[], bool] = lambda: True
    clock: Callable[[], datetime] = datetime.now
    blocked_jobs: frozenset[str] = frozenset()
    blocked_artists: frozenset[str] = frozenset()

    def control(self) -> Control:
        return read_control(self.work_dir)

    def why_not_claim(self) -> Waiting | None:
        """None when a new frame may be claimed now, else the reason to wait."""
        if self.control() == Control.PAUSED:
            return Waiting.PAUSED
        if not self.schedule.allows(self.clock()):
            return Waiting.OUTSIDE_SCHEDULE
        if self.idle_only and not self.idle_probe():
            return Waiting.BUSY
        return None

    def blocks(self, job_id: str, artist_address: str | None) -> bool:
        if job_id in self.blocked_jobs:
            return True
        return artist_address is not None and artist_address.lower() in self.blocked_artists
