"""Unit tests for shared.supervised_process.run_supervised, with real (tiny) child processes."""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest

from shared import supervised_process
from shared.supervised_process import (
    LOG_TAIL_LINES,
    ProcessResult,
    run_started,
    run_supervised,
    start_waiting,
)

pytestmark = pytest.mark.unit


def is_gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie nobody has reaped yet counts as exited)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    for line in status.splitlines():
        if line.startswith("State:"):
            return line.split()[1] in {"Z", "X"}
    return False


def wait_until_gone(pid: int, timeout_s: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if is_gone(pid):
            return True
        time.sleep(0.02)
    return is_gone(pid)


def read_pid(path: Path, timeout_s: float = 2.0) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = path.read_text().strip() if path.exists() else ""
        if text:
            return int(text)
        time.sleep(0.02)
    raise AssertionError(f"no pid was written to {path}")


def kill_quietly(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


# --- normal exits -----------------------------------------------------------------------


def test_zero_exit_succeeds():
    result = run_supervised(["sh", "-c", "echo hello"])

    assert isinstance(result, ProcessResult)
    assert result.exit_code == 0
    assert result.stopped_because is None
    assert result.succeeded is True
    assert result.log_tail == "hello"
    assert 0.0 <= result.wall_s < 5.0


@pytest.mark.parametrize("code", [1, 3, 42])
def test_nonzero_exit_code_is_captured(code):
    result = run_supervised(["sh", "-c", f"exit {code}"])

    assert result.exit_code == code
    assert result.stopped_because is None
    assert result.succeeded is False


def test_death_by_signal_is_a_negative_exit_code():
    result = run_supervised(["sh", "-c", "kill -KILL $$"])

    assert result.exit_code == -signal.SIGKILL
    assert result.succeeded is False


def test_on_line_is_called_once_per_line_in_order():
    lines: list[str] = []

    result = run_supervised(["sh", "-c", "printf 'one\\ntwo\\nthree\\n'"], on_line=lines.append)

    assert result.succeeded
    assert [line.rstrip("\n") for line in lines] == ["one", "two", "three"]


def test_last_line_without_newline_is_still_delivered():
    lines: list[str] = []

    result = run_supervised(["sh", "-c", "printf 'first\\nlast'"], on_line=lines.append)

    assert [line.rstrip("\n") for line in lines] == ["first", "last"]
    assert result.log_tail == "first\nlast"


def test_stderr_is_merged_into_the_output():
    lines: list[str] = []

    result = run_supervised(["sh", "-c", "echo out; echo err >&2; exit 2"], on_line=lines.append)

    assert result.exit_code == 2
    assert sorted(line.strip() for line in lines) == ["err", "out"]
    assert "err" in result.log_tail
    assert "out" in result.log_tail


def test_log_tail_keeps_only_the_last_lines():
    total = LOG_TAIL_LINES + 60
    seen: list[str] = []

    result = run_supervised(["seq", "1", str(total)], on_line=seen.append)

    assert len(seen) == total
    kept = result.log_tail.split("\n")
    assert len(kept) == LOG_TAIL_LINES
    assert kept == [str(number) for number in range(total - LOG_TAIL_LINES + 1, total + 1)]


def test_undecodable_output_is_replaced_not_raised():
    result = run_supervised(["sh", "-c", "printf 'caf\\351\\n'"])

    assert result.succeeded
    assert result.log_tail == "caf\ufffd"


def test_env_and_cwd_are_passed(tmp_path):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "RONRENDER_PROBE": "from-test"}

    result = run_supervised(["sh", "-c", 'echo "$RONRENDER_PROBE"; pwd'], env=env, cwd=str(tmp_path))

    assert result.succeeded
    assert result.log_tail.split("\n") == ["from-test", str(tmp_path.resolve())]


def test_child_runs_in_its_own_process_group():
    code = "import os; print(os.getpid(), os.getpgid(0), os.getsid(0))"

    result = run_supervised([sys.executable, "-c", code])

    pid, pgid, sid = (int(part) for part in result.log_tail.split())
    assert pgid == pid == sid
    assert pgid != os.getpgid(0)


def test_a_child_can_run_below_its_parents_priority():
    code = "import os, time; time.sleep(0.2); print(os.getpriority(os.PRIO_PROCESS, 0))"

    result = run_supervised([sys.executable, "-c", code], niceness=5)

    assert int(result.log_tail) == min(os.getpriority(os.PRIO_PROCESS, 0) + 5, 19)


def test_output_that_keeps_coming_is_not_a_no_output_timeout():
    script = "for i in 1 2 3 4 5 6 7 8; do echo $i; sleep 0.1; done"

    result = run_supervised(["sh", "-c", script], no_output_timeout_s=0.6)

    assert result.succeeded
    assert result.log_tail.split("\n")[-1] == "8"


# --- stopping a child -------------------------------------------------------------------


def test_max_time_stops_the_child_and_its_grandchildren(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    script = f"echo started; sleep 30 & echo $! > {pid_file}; wait"
    started = time.monotonic()

    result = run_supervised(["sh", "-c", script], max_time_s=0.5)

    elapsed = time.monotonic() - started
    grandchild = read_pid(pid_file)
    try:
        assert result.stopped_because == "max_time"
        assert result.succeeded is False
        assert result.exit_code is not None and result.exit_code < 0
        assert result.log_tail == "started"
        assert 0.5 <= elapsed < 4.0
        assert wait_until_gone(grandchild), f"grandchild sleep {grandchild} outlived the stop"
    finally:
        kill_quietly(grandchild)


def test_child_ignoring_term_is_killed_after_the_grace(monkeypatch):
    monkeypatch.setattr(supervised_process, "TERMINATE_GRACE_S", 0.3)
    started = time.monotonic()

    result = run_supervised(["sh", "-c", "trap '' TERM; echo stubborn; sleep 30"], max_time_s=0.3)

    assert result.stopped_because == "max_time"
    assert result.exit_code == -signal.SIGKILL
    assert time.monotonic() - started < 4.0


def test_grandchild_ignoring_term_is_killed(tmp_path, monkeypatch):
    monkeypatch.setattr(supervised_process, "TERMINATE_GRACE_S", 0.3)
    pid_file = tmp_path / "grandchild.pid"
    script = f"(trap '' TERM; exec sleep 30) >/dev/null 2>&1 & echo $! > {pid_file}; wait"

    result = run_supervised(["sh", "-c", script], max_time_s=0.3)

    grandchild = read_pid(pid_file)
    try:
        assert result.stopped_because == "max_time"
        assert wait_until_gone(grandchild, timeout_s=1.5), f"grandchild {grandchild} survived"
    finally:
        kill_quietly(grandchild)


def test_no_output_timeout_stops_a_silent_child():
    lines: list[str] = []
    started = time.monotonic()

    result = run_supervised(
        ["sh", "-c", "echo working; sleep 30"], on_line=lines.append, no_output_timeout_s=0.5
    )

    elapsed = time.monotonic() - started
    assert result.stopped_because == "no_output"
    assert result.succeeded is False
    assert result.log_tail == "working"
    assert [line.strip() for line in lines] == ["working"]
    assert 0.5 <= elapsed < 4.0


def test_cancel_event_stops_the_child():
    cancel = threading.Event()
    timer = threading.Timer(0.3, cancel.set)
    timer.start()
    started = time.monotonic()
    try:
        result = run_supervised(["sleep", "30"], cancel=cancel)
    finally:
        timer.cancel()

    assert result.stopped_because == "cancelled"
    assert result.exit_code == -signal.SIGTERM
    assert result.succeeded is False
    assert 0.3 <= time.monotonic() - started < 4.0


def test_cancel_already_set_stops_at_once():
    cancel = threading.Event()
    cancel.set()

    result = run_supervised(["sleep", "30"], cancel=cancel)

    assert result.stopped_because == "cancelled"
    assert result.wall_s < 3.0


def test_unset_cancel_does_not_stop_a_finishing_child():
    result = run_supervised(["sh", "-c", "sleep 0.2; echo done"], cancel=threading.Event())

    assert result.succeeded
    assert result.log_tail == "done"


def test_output_pipe_is_closed():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        run_supervised(["sh", "-c", "echo hi"])
        gc.collect()

    leaks = [str(warning.message) for warning in caught if issubclass(warning.category, ResourceWarning)]
    assert leaks == []


WAITING_CHILD = """
import json, sys, time
time.sleep(0.2)  # loading what it needs
arguments = sys.stdin.readline()
if not arguments:
    sys.exit(3)
print("got", *json.loads(arguments))
"""


def test_a_child_started_ahead_runs_with_the_arguments_handed_later():
    child = start_waiting([sys.executable, "-c", WAITING_CHILD])
    time.sleep(0.5)
    assert child.poll() is None  # loaded, waiting
    result = run_started(child, ["scene.blend", "result.json"], max_time_s=10)
    assert result.succeeded and result.log_tail == "got scene.blend result.json"


def test_a_child_started_ahead_exits_when_its_parent_never_needs_it():
    child = start_waiting([sys.executable, "-c", WAITING_CHILD])
    assert child.stdin is not None
    child.stdin.close()  # what the parent's exit does to the pipe
    assert child.wait(timeout=10) == 3
    child.stdout.close()


def test_limits_of_a_child_started_ahead_count_from_its_arguments():
    waited = start_waiting([sys.executable, "-c", WAITING_CHILD])
    time.sleep(1.5)  # waiting longer than its limit is no overrun...
    assert run_started(waited, ["a"], max_time_s=1.0).succeeded
    hung = start_waiting([sys.executable, "-c", "import sys, time; sys.stdin.readline(); time.sleep(60)"])
    result = run_started(hung, [], max_time_s=0.5)  # ...working longer is
    assert result.stopped_because == "max_time" and result.wall_s < 30
