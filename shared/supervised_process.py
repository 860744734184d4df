"""Running a child process under supervision: own process group, time limits,
TERM then KILL, every output line handed to a callback.

Used for every Blender child (scene analysis in the backend, renders on nodes),
so neither side blocks on a hung or crashed Blender. A child may also be started
ahead of need and handed its arguments later (``start_waiting``, ``run_started``):
loading Blender then happens before the work arrives.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

LOG_TAIL_LINES = 40
TERMINATE_GRACE_S = 5.0


@dataclass(frozen=True)
class ProcessResult:
    """How a supervised child ended."""

    exit_code: int | None
    stopped_because: str | None  # "max_time", "no_output", "cancelled" or None
    log_tail: str
    wall_s: float

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0 and self.stopped_because is None


def run_supervised(
    argv: Sequence[str],
    *,
    on_line: Callable[[str], None] | None = None,
    max_time_s: float = 3600.0,
    no_output_timeout_s: float | None = None,
    cancel: threading.Event | None = None,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
    niceness: int = 0,
) -> ProcessResult:
    """Run ``argv`` to completion or until a limit or ``cancel`` stops it."""
    process = _start(argv, subprocess.DEVNULL, env, cwd, niceness)
    return _supervise(process, on_line, max_time_s, no_output_timeout_s, cancel)


def start_waiting(
    argv: Sequence[str], *, env: dict[str, str] | None = None, cwd: str | None = None, niceness: int = 0
) -> subprocess.Popen[str]:
    """Start a child ahead of need: it loads what it needs (Blender), then waits for its
    arguments, one JSON list on stdin, sent by ``run_started``. It exits if stdin closes
    first (its parent exited)."""
    return _start(argv, subprocess.PIPE, env, cwd, niceness)


def run_started(
    process: subprocess.Popen[str],
    arguments: Sequence[str],
    *,
    on_line: Callable[[str], None] | None = None,
    max_time_s: float = 3600.0,
    no_output_timeout_s: float | None = None,
    cancel: threading.Event | None = None,
) -> ProcessResult:
    """Hand a child from ``start_waiting`` its arguments and supervise it as ``run_supervised``
    would (the limits count from now). BrokenPipeError if it died while it waited: then
    nothing of the work happened, and the caller may start another."""
    assert process.stdin is not None
    try:
        process.stdin.write(json.dumps(list(arguments)) + "\n")
        process.stdin.close()
    except BrokenPipeError:
        process.wait()
        if process.stdout is not None:
            process.stdout.close()
        raise
    return _supervise(process, on_line, max_time_s, no_output_timeout_s, cancel)


def _start(
    argv: Sequence[str], stdin: int, env: dict[str, str] | None, cwd: str | None, niceness: int = 0
) -> subprocess.Popen[str]:
    """The child in a process group of its own (stopped as a whole), its output one text
    stream; ``niceness`` above this process's own (set at once, not with ``preexec_fn``:
    that is unsafe in a process with threads)."""
    process = subprocess.Popen(
        list(argv),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=stdin,
        env=env,
        cwd=cwd,
        start_new_session=True,
        text=True,
        errors="replace",
        bufsize=1,
    )
    if niceness:
        with contextlib.suppress(ProcessLookupError):  # it exited already
            os.setpriority(os.PRIO_PROCESS, process.pid, os.getpriority(os.PRIO_PROCESS, 0) + niceness)
    return process


def _supervise(
    process: subprocess.Popen[str],
    on_line: Callable[[str], None] | None,
    max_time_s: float,
    no_output_timeout_s: float | None,
    cancel: threading.Event | None,
) -> ProcessResult:
    started = time.monotonic()
    tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
    last_output = [started]

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            last_output[0] = time.monotonic()
            tail.append(line.rstrip("\n"))
            if on_line is not None:
                on_line(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    stopped_because: str | None = None
    while process.poll() is None:
        now = time.monotonic()
        if now - started > max_time_s:
            stopped_because = "max_time"
        elif no_output_timeout_s is not None and now - last_output[0] > no_output_timeout_s:
            stopped_because = "no_output"
        elif cancel is not None and cancel.is_set():
            stopped_because = "cancelled"
        if stopped_because:
            _stop_group(process)
            break
        time.sleep(0.05)
    process.wait()
    reader.join(timeout=2.0)
    if process.stdout is not None:
        process.stdout.close()
    return ProcessResult(
        exit_code=process.returncode,
        stopped_because=stopped_because,
        log_tail="\n".join(tail),
        wall_s=time.monotonic() - started,
    )


def _stop_group(process: subprocess.Popen[str]) -> None:
    """TERM the child's whole process group, give it a grace period, then KILL
    whatever is left of the group (grandchildren that ignored TERM included)."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=TERMINATE_GRACE_S)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
