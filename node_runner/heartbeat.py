"""The node's heartbeat: a timer thread that reports the progress of every slot's
frame in one heartbeat and cancels frames the backend says are no longer ours."""

from __future__ import annotations

import logging
import threading
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
        self._lock = threading.Lock()  # slots beat on their own threads when their frame changes

    def beat(self) -> None:
        with self._lock:
            active = self.active_frames()
            try:
                abandon = set(self.client.heartbeat(self.node_id, [a.as_slot_progress() for a in active]))
            except Exception as error:  # a missed beat is retried on the next tick
                log.warning("heartbeat failed: %s", error)
                return
        for frame in active:
            if frame.assignment.attempt_id in abandon:
                log.info("backend withdrew frame %s; stopping its render", frame.assignment.frame_number)
                frame.cancel.set()

    def run(self) -> None:
        while not self.stop.wait(self.interval_s):
            self.beat()
