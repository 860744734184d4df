"""Rendering frames in a Blender child that stays up between frames of one job.

Starting Blender and opening the scene costs more than rendering a small frame,
so a node keeps one child per (scene, render settings): started on a job's first
frame, reused for the next ones, and replaced when the job changes, when it
crashes, hangs past the frame's time limit, or when the render is cancelled.
Progress is parsed from Blender's log and handed to a callback; answers come
back on a pipe of their own, so the log never mixes with them.

An idle slot starts its next child ahead of need (``prestart``): Blender loads
while there is no work, and a job's first frame only opens the scene.

Each slot has its own session, pinned to its device. The child runs in the
node's sandbox when there is one, and always writes into its own directory
(the only one the sandbox lets it write); finished images are moved out. It
reads the scene from the session's scene directory, read-only in the sandbox,
where the job's file is hard-linked when the job is known.
The whole log of the current frame is kept for diagnostics.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import select
import shutil
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from node_runner import defaults
from node_runner.sandbox import ResourceLimits, Sandbox, child_env
from shared.protocol import FrameAssignment, RenderSettings
from shared.render_progress import RenderProgress, parse_render_line
from shared.supervised_process import LOG_TAIL_LINES, ProcessResult

log = logging.getLogger(__name__)

SERVER_SCRIPT = Path(__file__).resolve().parent / "blender_child" / "render_server.py"
OUTPUT_EXTENSIONS = {"PNG": ".png", "OPEN_EXR": ".exr"}
STARTUP_TIME_LIMIT_S = 300.0
POLL_S = 0.05
# An idle slot's child that holds a scene gives way to a spare after this long: the
# next frame is more likely another job's by then.
LOADED_IDLE_S = 30.0


@dataclass(frozen=True)
class RenderDevice:
    """The device a slot renders on: the CPU, or one GPU by its Cycles id and backend."""

    backend: str = "CPU"  # CPU, OPTIX, CUDA, HIP, ONEAPI or METAL
    device_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"backend": self.backend, "device_id": self.device_id}


CPU_DEVICE = RenderDevice()
NO_LIMITS = ResourceLimits()


@dataclass(frozen=True)
class RenderResult:
    output_path: Path | None
    process: ProcessResult
    log: str = ""  # everything Blender printed for this frame (its start included, if it started for it)

    @property
    def failure_reason(self) -> str | None:
        if self.output_path is not None:
            return None
        if self.process.stopped_because:
            return f"render stopped: {self.process.stopped_because}"
        if self.process.exit_code not in (None, 0):
            return f"Blender exited with code {self.process.exit_code}"
        return "Blender wrote no output file"


class BlenderGone(Exception):
    """The child exited, hung or was stopped; it is replaced on the next frame."""

    def __init__(self, stopped_because: str | None) -> None:
        super().__init__(stopped_because or "exited")
        self.stopped_because = stopped_because


class BlenderSession:
    """One Blender child, reused across consecutive frames of the same job."""

    def __init__(
        self,
        blender_python: str,
        threads: int,
        work_dir: Path,
        *,
        device: RenderDevice = CPU_DEVICE,
        sandbox: Sandbox | None = None,
        limits: ResourceLimits = NO_LIMITS,
        prestart: bool = True,
    ) -> None:
        self.blender_python = blender_python
        self.threads = threads
        self.work_dir = work_dir
        self.device = device
        self.sandbox = sandbox
        self.limits = limits
        self.prestart_enabled = prestart
        self.scene_dir = work_dir.with_name(work_dir.name + "-scene")
        self.starts = 0  # children started (a spare counts when it starts, not when it is used)
        self._log: list[str] = []
        self._startup_log: list[str] = []
        self._pump: threading.Thread | None = None
        self._key: tuple[str, RenderSettings] | None = None
        self._process: subprocess.Popen[str] | None = None
        self._answers_fd = -1
        self._buffer = b""
        self._tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
        self._on_progress: Callable[[RenderProgress], None] | None = None
        self._last_output = time.monotonic()
        self._last_used = time.monotonic()
        self._prestart_failed = False

    def render(
        self,
        assignment: FrameAssignment,
        scene_path: Path,
        output_dir: Path,
        *,
        on_progress: Callable[[RenderProgress], None],
        cancel: threading.Event,
        border: tuple[float, float, float, float] | None = None,
    ) -> RenderResult:
        """Render the assigned frame into ``output_dir``; never raises for Blender's failures.

        With ``border`` (a spot check) only that crop of the frame is rendered, on the CPU.
        """
        started = time.monotonic()
        extension = OUTPUT_EXTENSIONS[assignment.settings.output_format]
        name = f"frame_{assignment.frame_number:05d}{extension}"
        if border is not None:
            name = f"crop_{assignment.frame_number:05d}{extension}"
        output_path = output_dir / name
        child_output = self.work_dir / "out" / name  # the child writes only under its own directory
        child_output.unlink(missing_ok=True)
        self._tail.clear()
        self._on_progress = on_progress
        deadline = started + assignment.time_limit_s
        try:
            key = (assignment.scene_sha256, assignment.settings)
            if self._key != key or not self._alive():
                self._open(key, scene_path, assignment.settings, cancel, deadline)
                self._log = list(self._startup_log)
            else:  # a kept-up child: its start (how the scene opened) belongs in this frame's log too
                self._log = [*self._startup_log, "RonRender: Blender kept up from an earlier frame"]
            request: dict[str, Any] = {"frame": assignment.frame_number, "output_path": str(child_output)}
            if border is not None:
                request["border"] = list(border)
            self._send(json.dumps(request) + "\n")
            answer = self._next_answer(cancel, deadline)
        except (BlenderGone, BrokenPipeError) as gone:
            stopped = gone.stopped_because if isinstance(gone, BlenderGone) else None
            process = self._process
            self.close()
            exit_code = process.returncode if process is not None else None
            return RenderResult(None, self._result(exit_code, stopped, started), self._frame_log())
        produced = answer.get("ok") and _is_plain_file(child_output)
        if not answer.get("ok"):
            self._note(f"RonRender: {answer.get('error', 'render failed')}")
        if produced:
            output_dir.mkdir(parents=True, exist_ok=True)
            shutil.move(child_output, output_path)
        self._last_used = time.monotonic()
        return RenderResult(
            output_path if produced else None, self._result(0, None, started), self._frame_log()
        )

    def prestart(self) -> None:
        """Start a child now, while the slot is idle: the next job's first frame then finds
        Blender loaded and only opens its scene. A child holding a scene is kept for that
        job's next frames until it has been idle for LOADED_IDLE_S. A spare that died
        unused is not replaced until a frame starts one that works (no restart loop)."""
        if not self.prestart_enabled or self._prestart_failed:
            return
        if self._alive():
            if self._key is None or time.monotonic() - self._last_used < LOADED_IDLE_S:
                return
        elif self._process is not None and self._key is None:  # a spare that died waiting
            self._prestart_failed = True
            log.warning("Blender exited before it had a job; it starts with the next frame instead")
            self.close()
            return
        self.close()
        try:
            self._spawn()
        except OSError as error:  # the frame that comes starts its own (and says why if it cannot)
            self._prestart_failed = True
            self.close()
            log.warning("could not start Blender ahead of work: %s", error)

    def close(self) -> None:
        """Stop the child (TERM, then KILL its whole process group) and drop its staged
        scene (a hard link would keep an evicted scene's bytes on disk)."""
        process, self._process, self._key = self._process, None, None
        if self.scene_dir.is_dir():
            for staged in self.scene_dir.iterdir():
                staged.unlink(missing_ok=True)
        if self._answers_fd >= 0:
            os.close(self._answers_fd)
            self._answers_fd = -1
        if process is None:
            return
        if process.poll() is None:
            for sig, grace in ((signal.SIGTERM, 3.0), (signal.SIGKILL, None)):
                try:
                    os.killpg(process.pid, sig)
                except ProcessLookupError:
                    break
                if grace is not None:
                    try:
                        process.wait(timeout=grace)
                        break
                    except subprocess.TimeoutExpired:
                        continue
        process.wait()
        pump, self._pump = self._pump, None
        if pump is not None:
            pump.join(timeout=2.0)  # its last lines (a crash's message) are still in the pipe
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()

    # Internals

    def _open(
        self,
        key: tuple[str, RenderSettings],
        scene_path: Path,
        settings: RenderSettings,
        cancel: threading.Event,
        deadline: float,
    ) -> None:
        """Have a spare child (started now if there is none) open the job's scene."""
        if self._key is not None or not self._alive():  # holds another scene, or is gone
            self.close()
            self._spawn()
        try:
            staged = self._stage_scene(scene_path)
        except OSError as error:  # the node's disk, not the scene: the frame fails, the node goes on
            raise BlenderGone(f"the scene could not be staged for Blender: {error}") from error
        opening = {
            "scene_path": str(staged),
            "threads": self.threads,
            "device": self.device.to_json(),
            **_as_json(settings),
        }
        line = json.dumps({"open": opening}) + "\n"
        try:
            self._send(line)
        except BrokenPipeError:  # the spare died while it waited: not this job's doing
            self.close()
            self._spawn()
            self._send(line)
        self._key = key
        self._last_output = time.monotonic()  # a spare may have been quiet for long
        self._next_answer(cancel, min(deadline, time.monotonic() + STARTUP_TIME_LIMIT_S))
        self._prestart_failed = False  # Blender starts here: spares may be tried again
        self._startup_log = self._log[: defaults.STARTUP_LOG_MAX_LINES]

    def confined(self, argv: list[str]) -> list[str]:
        """``argv`` as the child runs: in the sandbox (writing only its work directory,
        reading the scene directory), under the resource limits."""
        if self.sandbox is not None:
            argv = self.sandbox.wrap(
                argv,
                writable=self.work_dir,
                needed=[self.scene_dir, SERVER_SCRIPT],
                python=self.blender_python,
                gpu=self.device.backend != "CPU",
            )
        return self.limits.wrap(argv)

    def _send(self, line: str) -> None:
        assert self._process is not None and self._process.stdin is not None
        self._process.stdin.write(line)
        self._process.stdin.flush()

    def _stage_scene(self, scene_path: Path) -> Path:
        """The scene hard-linked (copied across filesystems) into the session's scene
        directory, the one place a child started before its job can read it from."""
        self.scene_dir.mkdir(parents=True, exist_ok=True)
        for earlier in self.scene_dir.iterdir():
            earlier.unlink()
        staged = self.scene_dir / scene_path.name
        try:
            os.link(scene_path, staged)
        except OSError:
            try:
                shutil.copyfile(scene_path, staged)
            except OSError:
                staged.unlink(missing_ok=True)
                raise
        return staged

    def _spawn(self) -> None:
        """Start a child with no scene: it loads Blender and waits for its ``open``."""
        (self.work_dir / "out").mkdir(parents=True, exist_ok=True)
        self.scene_dir.mkdir(parents=True, exist_ok=True)
        read_fd, write_fd = os.pipe()
        # Line-buffer Blender's C stdio too, so progress arrives while it renders.
        line_buffered = ["stdbuf", "-oL"] if shutil.which("stdbuf") else []
        argv = [*line_buffered, self.blender_python, str(SERVER_SCRIPT), str(write_fd)]
        self._log = []
        try:
            self._process = subprocess.Popen(
                self.confined(argv),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                pass_fds=(write_fd,),
                start_new_session=True,
                text=True,
                errors="replace",
                bufsize=1,
                cwd=str(self.work_dir),
                env=child_env(self.work_dir),
            )
        except OSError:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        self._answers_fd, self._buffer = read_fd, b""
        self._key = None
        self.starts += 1
        self._last_output = time.monotonic()
        self._pump = threading.Thread(target=self._pump_log, args=(self._process,), daemon=True)
        self._pump.start()

    def _pump_log(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self._last_output = time.monotonic()
            self._note(line.rstrip("\n"))
            progress = parse_render_line(line)
            if progress is not None and self._on_progress is not None:
                self._on_progress(progress)

    def _next_answer(self, cancel: threading.Event, deadline: float) -> dict[str, Any]:
        while b"\n" not in self._buffer:
            stopped = None
            if cancel.is_set():
                stopped = "cancelled"
            elif time.monotonic() > deadline:
                stopped = "max_time"
            elif time.monotonic() - self._last_output > defaults.RENDER_NO_OUTPUT_TIMEOUT_S:
                stopped = "no_output"
            if stopped:
                raise BlenderGone(stopped)
            ready, _, _ = select.select([self._answers_fd], [], [], POLL_S)
            if ready:
                chunk = os.read(self._answers_fd, 65536)
                if not chunk:  # the child closed the pipe: it exited
                    raise BlenderGone(None)
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def _note(self, line: str) -> None:
        self._tail.append(line)
        if len(self._log) < defaults.FRAME_LOG_MAX_LINES:
            self._log.append(line)

    def _frame_log(self) -> str:
        return "\n".join(self._log)

    def _alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _result(self, exit_code: int | None, stopped: str | None, started: float) -> ProcessResult:
        return ProcessResult(
            exit_code=exit_code,
            stopped_because=stopped,
            log_tail="\n".join(self._tail),
            wall_s=time.monotonic() - started,
        )


def _is_plain_file(path: Path) -> bool:
    """A non-empty regular file, not a link: the child could point a link at a file the
    sandbox hides from it (the node's wallet), and the node would upload that file."""
    try:
        status = path.lstat()
    except FileNotFoundError:
        return False
    return stat.S_ISREG(status.st_mode) and status.st_size > 0


def _as_json(settings: RenderSettings) -> dict[str, Any]:
    values = asdict(settings)
    return {k: values[k] for k in ("output_format", "engine", "samples", "resolution_percentage")}
