"""Why a render failed, read from how Blender ended and what it printed: a reason
code for the backend and one line an owner can act on. Pure functions, tested on
real Blender output."""

from __future__ import annotations

import re
import signal
from dataclasses import dataclass
from pathlib import Path

from node_runner import defaults
from shared.states import RenderFailureKind

SCRIPTS_REFUSED_LINE = "RonRender: the scene carries scripts; they were not run"

_OUT_OF_MEMORY = re.compile(
    r"Malloc returns null|std::bad_alloc|MemoryError|out of memory|System is out of GPU"
    r"|CUDA_ERROR_OUT_OF_MEMORY|hipErrorOutOfMemory|Cannot allocate memory",
    re.IGNORECASE,
)
_GPU_KERNEL = re.compile(
    r"binary kernel for this graphics card|kernel .*not found|Failed loading render kernel"
    r"|Failed to load (CUDA|HIP|OptiX|oneAPI)?\s*kernel|No compatible GPUs? found"
    r"|CUDA_ERROR_NO_BINARY_FOR_GPU|Invalid kernel image|OptiX initialization failed"
    r"|Cycles does not see device",
    re.IGNORECASE,
)
_FILE_TOO_LARGE = re.compile(r"File too large|File size limit exceeded", re.IGNORECASE)
_CRASH = re.compile(r"Segmentation fault|Aborted|Writing: .*\.crash\.txt|SIGSEGV|core dumped")
_ERROR_LINE = re.compile(r"error|exception|failed|cannot|not found", re.IGNORECASE)


@dataclass(frozen=True)
class Diagnosis:
    kind: RenderFailureKind
    explanation: str

    @property
    def reason(self) -> str:
        """What the backend's failure endpoint takes: "<CODE>: one line"."""
        return f"{self.kind.value}: {self.explanation}"[: defaults.FAILURE_REASON_MAX_CHARS]


def classify_failure(
    exit_code: int | None, stopped_because: str | None, log: str, time_limit_s: float | None = None
) -> Diagnosis:
    """Classify a render that produced no output."""
    kind = RenderFailureKind
    if stopped_because == "max_time":
        limit = f" of {time_limit_s:.0f} s" if time_limit_s else ""
        return Diagnosis(kind.TIMEOUT, f"the frame did not finish within its time limit{limit}")
    if stopped_because == "no_output":
        return Diagnosis(kind.TIMEOUT, "Blender printed nothing for too long and was stopped (hung)")
    lines = log.splitlines()
    bwrap = _first(lines, re.compile(r"^bwrap: "))
    if bwrap:
        return Diagnosis(kind.SANDBOX, f"the sandbox could not start Blender ({bwrap})")
    oom = _first(lines, _OUT_OF_MEMORY)
    if oom:
        return Diagnosis(kind.OUT_OF_MEMORY, f"Blender ran out of memory ({_short(oom)})")
    if exit_code in (-signal.SIGKILL, 128 + signal.SIGKILL) and stopped_because is None:
        return Diagnosis(
            kind.OUT_OF_MEMORY,
            "Blender was killed (SIGKILL), most likely by the kernel's out-of-memory killer",
        )
    kernel = _first(lines, _GPU_KERNEL)
    if kernel:
        return Diagnosis(
            kind.MISSING_GPU_KERNEL,
            f"this Blender has no render kernel for the GPU ({_short(kernel)}); "
            "update the GPU driver or Blender",
        )
    too_large = _first(lines, _FILE_TOO_LARGE)
    if too_large or exit_code in (-signal.SIGXFSZ, 128 + signal.SIGXFSZ):
        return Diagnosis(kind.SANDBOX, "the render output went over the node's output size limit")
    crash = _first(lines, _CRASH)
    if crash or (exit_code is not None and (exit_code < 0 or exit_code > 128)):
        return Diagnosis(kind.CRASH, f"Blender crashed ({_signal_name(exit_code) or _short(crash or '')})")
    if SCRIPTS_REFUSED_LINE in log:
        return Diagnosis(
            kind.SCRIPTS_REFUSED,
            "the scene relies on Python scripts (drivers or text blocks), which nodes never run",
        )
    error = _last(lines, _ERROR_LINE)
    if exit_code not in (None, 0):
        return Diagnosis(kind.OTHER, f"Blender exited with code {exit_code}: {_short(error or 'no message')}")
    return Diagnosis(kind.OTHER, f"Blender wrote no output file: {_short(error or 'no message')}")


def log_tail(log: str) -> str:
    """The end of the log, as much as the backend takes."""
    return log[-defaults.FAILURE_LOG_TAIL_MAX_CHARS :]


def keep_log(logs_dir: Path, job_id: str, frame_number: int, attempt_id: int, log: str) -> Path:
    """Keep a failed frame's whole log for the owner, named so it can be found."""
    logs_dir.mkdir(parents=True, exist_ok=True)
    path = logs_dir / f"job-{job_id}_frame-{frame_number:05d}_attempt-{attempt_id}.log"
    path.write_text(log, encoding="utf-8", errors="replace")
    return path


def _first(lines: list[str], pattern: re.Pattern[str]) -> str | None:
    return next((line.strip() for line in lines if pattern.search(line)), None)


def _last(lines: list[str], pattern: re.Pattern[str]) -> str | None:
    return next((line.strip() for line in reversed(lines) if pattern.search(line)), None)


def _short(line: str, limit: int = 200) -> str:
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _signal_name(exit_code: int | None) -> str | None:
    if exit_code is None:
        return None
    number = -exit_code if exit_code < 0 else exit_code - 128 if exit_code > 128 else 0
    try:
        return signal.Signals(number).name if number else None
    except ValueError:
        return None
