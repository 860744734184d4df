"""The node's heartbeat: a timer thread that reports the progress of every slot's
frame in one heartbeat and cancels frames the backend says are no longer ours.

A beat is due when the backend has heard nothing from the node for an interval (a claim
counts: it renews the node's presence and starts a fresh lease), or when a frame has gone
an interval without its lease renewed. Frames shorter than the interval then cost no beat
at all: their upload (which claims the next) says everything.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from node_runner.backend_client import BackendClient
from shared.protocol import FrameAssignment, SlotProgress
from shared.render_progress import RenderProgress

log = logging.getLogger(__name__)


@dataclass
class ActiveFrame:
    """The frame a slot is rendering, its latest progress, and a way to stop its render."""

    assignment: FrameAssignment
    progress: float = 0.0
    detail: str = "starting"
    cancel: threading.Event = field(default_factory=threading.Event)
    reported_at: float = field(default_factory=lambda: time.monotonic())  # lease begun or last renewed

    def update(self, progress: RenderProgress) -> None:
        self.progress = progress.fraction
        self.detail = progress.detail

    def as_slot_progress(self) -> SlotProgress:
        return SlotProgress(
            attempt_id=self.assignment.attempt_id,
            lease_token=self.assignment.lease_token,
            progress=self.progress,
            detail=self.detail,
        )


class Heartbeat(threading.Thread):
    def __init__(
        self,
        client: BackendClient,
        node_id: str,
        interval_s: float,
        stop: threading.Event,
        active_frames: Callable[[], list[ActiveFrame]],
    ) -> None:
        super().__init__(name="heartbeat", daemon=True)
        self.client = client
        self.node_id = node_id
        self.interval_s = interval_s
        self.stop = stop
        self.active_frames = active_frames
        self._lock = threading.Lock()  # the service beats once more from its own thread at stop
        self._beaten_at = time.monotonic()  # registration, then each beat
        self._quiet_until = 0.0  # after a failed beat, the next try waits an interval

    def beat(self) -> None:
        with self._lock:
            active = self.active_frames()
            sent_at = time.monotonic()
            try:
                abandon = set(self.client.heartbeat(self.node_id, [a.as_slot_progress() for a in active]))
            except Exception as error:  # retried an interval later, not every tick
                log.warning("heartbeat failed: %s", error)
                self._quiet_until = sent_at + self.interval_s
                return
            self._beaten_at = sent_at
            for frame in active:
                frame.reported_at = sent_at
        for frame in active:
            if frame.assignment.attempt_id in abandon:
                log.info("backend withdrew frame %s; stopping its render", frame.assignment.frame_number)
                frame.cancel.set()

    def due(self) -> bool:
        """Whether the backend needs a beat now (see the module's docstring)."""
        now = time.monotonic()
        if now < self._quiet_until:
            return False
        last_heard = max(self._beaten_at, self.client.claimed_at)
        if now - last_heard >= self.interval_s:
            return True
        return any(now - frame.reported_at >= self.interval_s for frame in self.active_frames())

    def run(self) -> None:
        tick_s = min(self.interval_s, max(0.5, self.interval_s / 5))
        while not self.stop.wait(tick_s):
            if self.due():
                self.beat()
