"""One render slot's loop: wait for the owner's terms, claim a frame, skip it if the
owner blocks its job or artist, get its scene from the cache, render it in the
slot's own Blender (pinned to the slot's device), then upload the image or report
a classified failure. Each slot runs this on a thread of its own."""

from __future__ import annotations

import logging
import random
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from node_runner import defaults, diagnostics
from node_runner.backend_client import BackendClient, Claimed, NoWork
from node_runner.heartbeat import ActiveFrame
from node_runner.render import BlenderSession, RenderResult
from node_runner.scene_cache import SceneCache, SceneChecksumMismatch
from node_runner.slots import SlotSpec
from node_runner.terms import Control, OwnerTerms
from shared.api_client import ApiError, is_transient
from shared.protocol import FrameAssignment
from shared.render_progress import RenderProgress

log = logging.getLogger(__name__)


@dataclass
class SlotCounters:
    """What a slot did since the node started, for the status table."""

    uploaded: int = 0
    checked: int = 0  # spot checks of other nodes' frames
    failed: dict[str, int] = field(default_factory=dict)
    blocked: int = 0


class SlotWorker(threading.Thread):
    def __init__(
        self,
        spec: SlotSpec,
        *,
        node_id: str,
        client: BackendClient,
        scenes: SceneCache,
        blender: BlenderSession,
        terms: OwnerTerms,
        stop: threading.Event,
        work_dir: Path,
        idle_poll_interval_s: float,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__(name=f"slot-{spec.name}", daemon=True)
        self.spec = spec
        self.node_id = node_id
        self.client = client
        self.scenes = scenes
        self.blender = blender
        self.terms = terms
        self.stop = stop
        self.work_dir = work_dir
        self.idle_poll_interval_s = idle_poll_interval_s
        self.on_change = on_change  # the status file follows
        self.active: ActiveFrame | None = None
        self.waiting: str | None = None
        self.counters = SlotCounters()
        self.error: BaseException | None = None
        self._artists: dict[str, str | None] = {}
        self._last_logged_quarter = -1

    @property
    def frames_done(self) -> int:
        return self.counters.uploaded

    def run(self) -> None:
        try:
            self._loop()
        except BaseException as error:  # the service stops the node and says why
            self.error = error
            log.exception("slot %s stopped on an error", self.spec.name)
            self.stop.set()
        finally:
            self.blender.close()
            self.waiting = "stopped"

    def _loop(self) -> None:
        handed: Claimed | NoWork | None = None  # what the last upload's answer held
        try:
            while not self.stop.is_set():
                if isinstance(handed, Claimed):
                    claimed, handed = handed, None
                    if self._may_claim():
                        handed = self._work_on(claimed.assignment)
                    else:  # paused, or told to stop, during the upload or the claim's wait
                        self._hand_back(claimed.assignment)
                    continue
                if isinstance(handed, NoWork):  # the upload's claim found nothing: idle first
                    handed = None
                    self._idle(None)
                    continue
                if self.terms.control() == Control.STOP_AFTER_FRAME:
                    log.info("slot %s: stopping after its frame, as the owner asked", self.spec.name)
                    return
                if not self._may_claim():
                    self.stop.wait(defaults.TERMS_POLL_INTERVAL_S)
                    continue
                asked = self._claim()
                if isinstance(asked, NoWork):
                    self._idle(asked)
                    continue
                if asked is None:  # the backend could not be asked: not in step with other slots
                    self.stop.wait(
                        max(self.idle_poll_interval_s, defaults.UNREACHABLE_RETRY_S) * random.uniform(1, 2)
                    )
                    continue
                if self._blocked(asked):  # waits, so a blocked job is not claimed in a tight loop
                    self.stop.wait(self.idle_poll_interval_s)
                    continue
                handed = asked  # started above, unless the node was stopped or paused while it waited
        finally:
            if isinstance(handed, Claimed):  # stopping: a frame handed but not started goes back
                self._hand_back(handed.assignment)

    def _may_claim(self) -> bool:
        """Whether the owner's terms let this slot take a new frame now (logs why not, once)."""
        if self.terms.control() == Control.STOP_AFTER_FRAME:
            return False
        why = self.terms.why_not_claim()
        if why is not None:
            if self.waiting != why.value:
                log.info("slot %s waits: %s", self.spec.name, why.value)
                self.waiting = why.value
                self.on_change()
            return False
        self.waiting = None
        return True

    def _claims_with_upload(self) -> bool:
        """Ask for the next frame in the upload's request: only when a claim may follow at
        once, and with no blocklist (a plain claim carries it)."""
        return (
            not self.stop.is_set()
            and not self.terms.blocked_jobs
            and not self.terms.blocked_artists
            and self.terms.control() != Control.STOP_AFTER_FRAME
            and self.terms.why_not_claim() is None  # no side effects: the frame is still uploading
        )

    def _idle(self, no_work: NoWork | None) -> None:
        """No work: have Blender loaded for the next job meanwhile, and wait."""
        self.blender.prestart()
        self.stop.wait(self._idle_wait_s(no_work))

    def _idle_wait_s(self, no_work: NoWork | None) -> float:
        """The own idle interval, or longer when the backend asks (spread so that a large
        farm's idle nodes do not come back all at once); none after a claim the backend
        held until its wait ended (it answers Retry-After: 0)."""
        hint = no_work.retry_after_s if no_work is not None else None
        if hint == 0:
            return 0.0
        if hint is None or hint <= self.idle_poll_interval_s:
            return self.idle_poll_interval_s
        return hint * random.uniform(0.8, 1.2)

    def _claim(self) -> Claimed | NoWork | None:
        try:
            return self.client.claim(self.node_id, self.terms.blocked_jobs, self.terms.blocked_artists)
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

    def _blocked(self, claimed: Claimed) -> bool:
        """A claimed frame of a job or artist the owner blocks goes straight back."""
        assignment = claimed.assignment
        artist = claimed.artist_address
        if artist is None and self.terms.blocked_artists:
            artist = self._artist_of(assignment.job_id)
        if not self.terms.blocks(assignment.job_id, artist):
            return False
        self.counters.blocked += 1
        log.info(
            "slot %s: job %s is on the owner's blocklist; handing it back", self.spec.name, assignment.job_id
        )
        self._hand_back(assignment)
        return True

    def _artist_of(self, job_id: str) -> str | None:
        if job_id not in self._artists:
            try:
                self._artists[job_id] = self.client.get_job(job_id).get("artist_address")
            except Exception as error:  # unknown artist: the job id blocklist still applies
                log.warning("could not look up the artist of job %s: %s", job_id, error)
                return None
        return self._artists[job_id]

    def _work_on(self, assignment: FrameAssignment) -> Claimed | NoWork | None:
        """Render and upload the frame; returns the next frame if the upload claimed one. The
        backend marked it RENDERING when it handed it (the node starts at once): no beat."""
        active = ActiveFrame(assignment)
        self.active = active
        self._last_logged_quarter = -1
        self.on_change()
        attempt_dir = self.work_dir / "attempts" / str(assignment.attempt_id)
        attempt_dir.mkdir(parents=True, exist_ok=True)
        log.info(
            "slot %s: rendering frame %d of job %s",
            self.spec.name,
            assignment.frame_number,
            assignment.job_id,
        )
        try:
            if assignment.is_spot_check:
                self._spot_check(assignment, attempt_dir, active)
                return None
            with self.scenes.use(assignment.scene_sha256) as scene_path:
                result = self.blender.render(
                    assignment, scene_path, attempt_dir, on_progress=self._progress, cancel=active.cancel
                )
            if self.stop.is_set():
                self._hand_back(assignment)
            elif active.cancel.is_set():
                log.info("frame %d withdrawn by the backend", assignment.frame_number)
            elif result.output_path is not None:
                handed = self.client.upload_output(
                    assignment, result.output_path, claim_next=self._claims_with_upload()
                )
                self.counters.uploaded += 1
                log.info(
                    "slot %s: uploaded frame %d of job %s",
                    self.spec.name,
                    assignment.frame_number,
                    assignment.job_id,
                )
                return handed
            else:
                self._report_failure(assignment, result)
        except SceneChecksumMismatch as error:
            log.warning("frame %d: %s", assignment.frame_number, error)
            self._hand_back(assignment)
        except ApiError as error:
            log.warning("backend refused frame %d: %s", assignment.frame_number, error)
        finally:
            self.active = None
            self.on_change()
            shutil.rmtree(attempt_dir, ignore_errors=True)
        return None

    def _spot_check(self, assignment: FrameAssignment, attempt_dir: Path, active: ActiveFrame) -> None:
        """Re-render each crop of another node's frame (same Blender, same settings, on the
        CPU) and upload it; the backend compares them with that node's upload."""
        log.info(
            "slot %s: spot check of frame %d of job %s (%d crops)",
            self.spec.name, assignment.frame_number, assignment.job_id, len(assignment.crops),
        )  # fmt: skip
        with self.scenes.use(assignment.scene_sha256) as scene_path:
            for index, border in enumerate(assignment.crops):
                result = self.blender.render(
                    assignment,
                    scene_path,
                    attempt_dir,
                    on_progress=self._progress,
                    cancel=active.cancel,
                    border=border,
                )
                if self.stop.is_set():
                    self._hand_back(assignment)
                    return
                if active.cancel.is_set():
                    log.info("spot check of frame %d withdrawn by the backend", assignment.frame_number)
                    return
                if result.output_path is None:
                    self._report_failure(assignment, result)
                    return
                self.client.upload_crop(assignment, index, result.output_path)
                result.output_path.unlink(missing_ok=True)
        self.counters.checked += 1
        log.info("slot %s: spot check of frame %d uploaded", self.spec.name, assignment.frame_number)

    def _progress(self, progress: RenderProgress) -> None:
        active = self.active
        if active is None:
            return
        active.update(progress)
        quarter = int(progress.fraction * 4)
        if quarter > self._last_logged_quarter:  # plain lines in the log, one per quarter
            self._last_logged_quarter = quarter
            log.info(
                "slot %s: frame %d %3.0f%% (%s)",
                self.spec.name, active.assignment.frame_number, progress.fraction * 100, progress.detail,
            )  # fmt: skip

    def _report_failure(self, assignment: FrameAssignment, result: RenderResult) -> None:
        diagnosis = diagnostics.classify_failure(
            result.process.exit_code, result.process.stopped_because, result.log, assignment.time_limit_s
        )
        kept = diagnostics.keep_log(
            self.work_dir / "logs",
            assignment.job_id,
            assignment.frame_number,
            assignment.attempt_id,
            result.log,
        )
        kind = diagnosis.kind.value
        self.counters.failed[kind] = self.counters.failed.get(kind, 0) + 1
        log.warning(
            "slot %s: frame %d of job %s failed: %s (full log: %s)",
            self.spec.name, assignment.frame_number, assignment.job_id, diagnosis.reason, kept,
        )  # fmt: skip
        self.client.report_failure(assignment, diagnosis.reason, diagnostics.log_tail(result.log))

    def _hand_back(self, assignment: FrameAssignment) -> None:
        try:
            self.client.release(assignment)
            log.info("handed frame %d back", assignment.frame_number)
        except Exception as error:  # the lease will expire on its own
            log.warning("could not hand frame %d back: %s", assignment.frame_number, error)
