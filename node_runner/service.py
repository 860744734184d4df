"""The node's main loop: check the sandbox, probe the devices, benchmark once,
register, then run one slot per device (each claiming, rendering and uploading on
its own) with one heartbeat for all, until asked to stop."""

from __future__ import annotations

import logging
import os
import shutil
import threading
from datetime import date
from pathlib import Path
from typing import Any

from node_runner import defaults
from node_runner.backend_client import BackendClient
from node_runner.benchmark import BenchmarkFailed, benchmark_ms
from node_runner.config import NodeConfig
from node_runner.hardware import Machine, detect_machine
from node_runner.heartbeat import ActiveFrame, Heartbeat
from node_runner.progress import DownloadProgress
from node_runner.render import BlenderSession
from node_runner.sandbox import ResourceLimits, Sandbox, refuse_or_warn
from node_runner.scene_cache import SceneCache
from node_runner.slot_worker import SlotWorker
from node_runner.slots import SlotSpec, plan_slots
from node_runner.status import now_iso, read_status, today_base, write_status
from node_runner.terms import Control, OwnerTerms, Schedule, load_idle_probe, read_control, write_control

__all__ = ["NodeConfig", "NodeService"]  # NodeConfig is re-exported: callers import it from here

log = logging.getLogger(__name__)


class NodeService:
    def __init__(
        self, config: NodeConfig, *, terms: OwnerTerms | None = None, sandbox: Sandbox | bool | None = True
    ) -> None:
        """``sandbox`` True detects bubblewrap; a Sandbox or None forces the choice (tests)."""
        self.config = config
        self.stop = threading.Event()
        self.client = BackendClient(
            config.backend_url, self.stop, config.retry_window_s, wallet=config.wallet
        )
        self.scenes = SceneCache(
            config.work_dir / "scenes", self.client, config.cache_limit_bytes, on_bytes=DownloadProgress()
        )
        self.terms = terms or OwnerTerms(
            config.work_dir,
            schedule=Schedule.parse(config.schedule),
            idle_only=config.idle_only,
            idle_probe=load_idle_probe(config.idle_max_load_per_core, self._own_busy_cores),
            blocked_jobs=frozenset(config.blocked_jobs),
            blocked_artists=frozenset(a.lower() for a in config.blocked_artists),
        )
        self._sandbox_choice = sandbox
        self.sandbox: Sandbox | None = None
        self.node_id: str | None = None
        self.slots: list[SlotWorker] = []
        self.benchmark_ms: int | None = None
        self._status_lock = threading.Lock()
        self._today = today_base(read_status(config.work_dir), date.today())

    @property
    def frames_done(self) -> int:
        return sum(slot.frames_done for slot in self.slots)

    @property
    def blender(self) -> BlenderSession:
        """The first slot's Blender (the only one on a one-slot node)."""
        return self.slots[0].blender

    def request_stop(self) -> None:
        """Stop after handing back the current frames (SIGTERM, Ctrl-C)."""
        self.stop.set()
        for active in self._active_frames():
            active.cancel.set()

    def run(self) -> None:
        config = self.config
        config.work_dir.mkdir(parents=True, exist_ok=True)
        if read_control(config.work_dir) == Control.STOP_AFTER_FRAME:
            write_control(config.work_dir, Control.RUN)  # a stop request from an earlier run is done
        self.sandbox = self._choose_sandbox()
        machine = detect_machine(config.blender_python)
        specs = plan_slots(
            machine.gpus,
            cpu_cores=machine.hardware.cpu_cores,
            memory_bytes=machine.hardware.memory_bytes,
            use_gpus=config.use_gpus,
            devices=config.devices,
            allow_cpu_slot=config.allow_cpu_slot,
            cpu_slots=config.cpu_slots,
            threads=config.threads,
            max_slots=config.max_slots,
        )
        self.benchmark_ms = self._benchmark(machine, specs[0])
        extra: dict[str, Any] = {"sandboxed": self.sandbox is not None, "slots": [s.to_json() for s in specs]}
        if self.benchmark_ms is not None:
            extra["benchmark_ms"] = self.benchmark_ms
        self._write_status(running=True)  # `status` can tell a node that waits for its backend
        payout_address = config.payout_address or (config.wallet.address if config.wallet else None)
        self.node_id = self.client.register(config.name, machine.hardware, payout_address, **extra)
        log.info(
            "node %s registered as %s (Blender %s) with slots %s",
            config.name, self.node_id, machine.hardware.blender_version,
            ", ".join(f"{s.name} ({s.device.backend} {s.device.device_id or ''})".strip() for s in specs),
        )  # fmt: skip
        heartbeat = Heartbeat(
            self.client, self.node_id, config.heartbeat_interval_s, self.stop, self._active_frames
        )
        self.slots = [self._slot(spec) for spec in specs]
        heartbeat.start()
        for slot in self.slots:
            slot.start()
        try:
            while any(slot.is_alive() for slot in self.slots):
                self._write_status(running=True)
                if self.stop.wait(defaults.STATUS_WRITE_INTERVAL_S):
                    self.request_stop()  # a slot that failed stops the others' renders too
                for slot in self.slots:
                    slot.join(timeout=0.05)
        finally:
            self.stop.set()
            for slot in self.slots:
                slot.join()
            heartbeat.beat()  # tell the backend the slots are empty now
            if read_control(config.work_dir) == Control.STOP_AFTER_FRAME:
                write_control(config.work_dir, Control.RUN)
            shutil.rmtree(config.work_dir / "attempts", ignore_errors=True)
            self._write_status(running=False)
            log.info("node %s stopped after %d frames", config.name, self.frames_done)
        errors = [slot.error for slot in self.slots if slot.error is not None]
        if errors:
            raise errors[0]

    # Internals

    def _choose_sandbox(self) -> Sandbox | None:
        config = self.config
        if self._sandbox_choice is True:
            hidden = [config.work_dir, *_owner_paths(config)]
            sandbox = Sandbox.detect(hidden)
        else:
            sandbox = self._sandbox_choice or None
        refuse_or_warn(sandbox, config.allow_unsandboxed)
        return sandbox

    def _benchmark(self, machine: Machine, spec: SlotSpec) -> int | None:
        if not self.config.run_benchmark:
            return None
        try:
            return benchmark_ms(
                self.config.blender_python,
                machine.hardware.blender_version,
                spec.device,
                self.config.work_dir,
            )
        except BenchmarkFailed as error:  # a node that cannot benchmark can still render
            log.warning("%s", error)
            return None

    def _slot(self, spec: SlotSpec) -> SlotWorker:
        config = self.config
        slot_dir = config.work_dir / "slots" / spec.name
        limits = ResourceLimits(
            # GPU drivers reserve far more address space than they use: no RLIMIT_AS for GPU slots.
            memory_bytes=config.memory_limit_bytes if spec.device.backend == "CPU" else 0,
            output_bytes=config.output_limit_bytes,
        )
        blender = BlenderSession(
            config.blender_python, spec.threads, slot_dir / "blender", device=spec.device,
            sandbox=self.sandbox, limits=limits, prestart=config.prestart_blender,
        )  # fmt: skip
        assert self.node_id is not None

        return SlotWorker(
            spec,
            node_id=self.node_id,
            client=self.client,
            scenes=self.scenes,
            blender=blender,
            terms=self.terms,
            stop=self.stop,
            work_dir=config.work_dir,
            idle_poll_interval_s=config.idle_poll_interval_s,
            on_change=lambda: self._write_status(running=True),
        )

    def _active_frames(self) -> list[ActiveFrame]:
        return [slot.active for slot in self.slots if slot.active is not None]

    def _own_busy_cores(self) -> float:
        """The load the node's own renders put on the CPU, left out of idle-only's measure."""
        busy = 0.0
        for slot in self.slots:
            if slot.active is not None:
                busy += slot.spec.threads or (os.cpu_count() or 1) if slot.spec.device.backend == "CPU" else 1
        return busy

    def _write_status(self, *, running: bool) -> None:
        today = dict(self._today, failed=dict(self._today["failed"]))
        slots = []
        for slot in self.slots:
            today["uploaded"] += slot.counters.uploaded
            today["blocked"] += slot.counters.blocked
            for kind, count in slot.counters.failed.items():
                today["failed"][kind] = today["failed"].get(kind, 0) + count
            active = slot.active
            slots.append(
                {
                    "name": slot.spec.name,
                    "device": slot.spec.device.backend
                    + (f" {slot.spec.device.device_id}" if slot.spec.device.device_id else ""),
                    "state": "rendering" if active else ("waiting" if slot.waiting else "idle"),
                    "waiting": slot.waiting,
                    "job_id": active.assignment.job_id if active else None,
                    "frame": active.assignment.frame_number if active else None,
                    "progress": active.progress if active else 0.0,
                    "detail": active.detail if active else "",
                }
            )
        status = {
            "node_id": self.node_id,
            "name": self.config.name,
            "backend_url": self.config.backend_url,
            "pid": os.getpid(),
            "running": running,
            "updated_at": now_iso(),
            "control": read_control(self.config.work_dir).value,
            "sandboxed": self.sandbox is not None,
            "benchmark_ms": self.benchmark_ms,
            "today": today,
            "slots": slots,
        }
        with self._status_lock:
            write_status(self.config.work_dir, status)


def _owner_paths(config: NodeConfig) -> list[Path]:
    """What a render child must never see: the wallet's folders and the config's."""
    paths: list[Path] = []
    for path in (config.wallet_keystore, config.wallet_password_file, config.config_path):
        if path is not None:
            paths.append(path.resolve().parent)
    paths.extend(config.hide_paths)
    return paths
