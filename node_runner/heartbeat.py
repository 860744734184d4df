"""The node's heartbeat: a timer thread that reports the progress of the frame
being rendered and cancels frames the backend says are no longer ours."""

from __future__ import annotations

import logging
import threading
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
    def __init__(self, client: BackendClient, node_id: str, interval_s: float, stop: threading.Event) -> None:
        super().__init__(name="heartbeat", daemon=True)
        self.client = client
        self.node_id = node_id
        self.interval_s = interval_s
        self.stop = stop
        self._lock = threading.Lock()
        self._active: ActiveFrame | None = None

    def set_active(self, active: ActiveFrame | None) -> None:
        with self._lock:
            self._active = active
        self.beat()

    def beat(self) -> None:
        with self._lock:
            active = self._active
        slots = [active.as_slot_progress()] if active is not None else []
        try:
            abandon = self.client.heartbeat(self.node_id, slots)
        except Exception as error:  # a missed beat is retried on the next tick
            log.warning("heartbeat failed: %s", error)
            return
        if active is not None and active.assignment.attempt_id in abandon:
            log.info("backend withdrew frame %s; stopping its render", active.assignment.frame_number)
            active.cancel.set()

    def run(self) -> None:
        while not self.stop.wait(self.interval_s):
            self.beat()
