"""The node's main loop: register, then claim, render, upload, repeat, until asked to stop."""

from __future__ import annotations

import logging
import shutil
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from node_runner import defaults
from node_runner.backend_client import BackendClient
from node_runner.hardware import detect_hardware
from node_runner.heartbeat import ActiveFrame, Heartbeat
from node_runner.render import BlenderSession
from node_runner.scene_cache import SceneCache
from shared.api_client import ApiError, is_transient
from shared.protocol import FrameAssignment

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NodeConfig:
    backend_url: str
    name: str
    work_dir: Path
    payout_address: str | None = None
    blender_python: str = sys.executable
    threads: int = 0
    heartbeat_interval_s: float = defaults.HEARTBEAT_INTERVAL_S
    idle_poll_interval_s: float = defaults.IDLE_POLL_INTERVAL_S
    retry_window_s: float = defaults.BACKEND_RETRY_WINDOW_S


class NodeService:
    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.stop = threading.Event()
        self.client = BackendClient(config.backend_url, self.stop, config.retry_window_s)
        self.scenes = SceneCache(config.work_dir / "scenes", self.client)
        self.node_id: str | None = None
        self.blender = BlenderSession(config.blender_python, config.threads, config.work_dir / "blender")
        self._active: ActiveFrame | None = None
        self.frames_done = 0

    def request_stop(self) -> None:
        """Stop after handing back the current frame (SIGTERM, Ctrl-C)."""
        self.stop.set()
        active = self._active
        if active is not None:
            active.cancel.set()

    def run(self) -> None:
        hardware = detect_hardware(self.config.blender_python)
        self.node_id = self.client.register(self.config.name, hardware, self.config.payout_address)
        log.info(
            "node %s registered as %s (Blender %s)", self.config.name, self.node_id, hardware.blender_version
        )
        heartbeat = Heartbeat(self.client, self.node_id, self.config.heartbeat_interval_s, self.stop)
        heartbeat.start()
        try:
            while not self.stop.is_set():
                assignment = self._claim()
                if assignment is None:
                    self.stop.wait(self.config.idle_poll_interval_s)
                    continue
                self._work_on(assignment, heartbeat)
        finally:
            heartbeat.set_active(None)
            self.blender.close()
            shutil.rmtree(self.config.work_dir / "attempts", ignore_errors=True)
            log.info("node %s stopped after %d frames", self.config.name, self.frames_done)

    def _claim(self) -> FrameAssignment | None:
        assert self.node_id is not None
        try:
            return self.client.claim(self.node_id)
        except ApiError as error:
            if error.reason != "NODE_SUSPENDED":
                raise
            log.warning("%s; asking again in %.0f s", error.message, defaults.SUSPENDED_RETRY_S)
            self.stop.wait(defaults.SUSPENDED_RETRY_S)
            return None
        except Exception as error:
            if not is_transient(error):
                raise
            log.warning("backend unreachable, still retrying: %s", error)
            return None

    def _work_on(self, assignment: FrameAssignment, heartbeat: Heartbeat) -> None:
        active = ActiveFrame(assignment)
        self._active = active
        heartbeat.set_active(active)
        work_dir = self.config.work_dir / "attempts" / str(assignment.attempt_id)
        work_dir.mkdir(parents=True, exist_ok=True)
        log.info("rendering frame %d of job %s", assignment.frame_number, assignment.job_id)
        try:
            scene_path = self.scenes.ensure(assignment.scene_sha256)
            result = self.blender.render(
                assignment, scene_path, work_dir, on_progress=active.update, cancel=active.cancel
            )
            if self.stop.is_set():
                self._hand_back(assignment)
            elif active.cancel.is_set():
                log.info("frame %d withdrawn by the backend", assignment.frame_number)
            elif result.output_path is not None:
                self.client.upload_output(assignment, result.output_path)
                self.frames_done += 1
                log.info("uploaded frame %d of job %s", assignment.frame_number, assignment.job_id)
            else:
                reason = result.failure_reason or "unknown"
                log.warning("frame %d failed: %s", assignment.frame_number, reason)
                self.client.report_failure(assignment, reason, result.process.log_tail)
        except ApiError as error:
            log.warning("backend refused frame %d: %s", assignment.frame_number, error)
        finally:
            self._active = None
            heartbeat.set_active(None)
            shutil.rmtree(work_dir, ignore_errors=True)

    def _hand_back(self, assignment: FrameAssignment) -> None:
        try:
            self.client.release(assignment)
            log.info("handed frame %d back", assignment.frame_number)
        except Exception as error:  # the lease will expire on its own
            log.warning("could not hand frame %d back: %s", assignment.frame_number, error)
