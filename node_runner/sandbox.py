"""The render child's sandbox and resource limits.

A .blend is a stranger's file, and Blender can run code from it (Freestyle, bugs),
so the child runs under bubblewrap where the machine allows it: no network (all
namespaces unshared), the whole filesystem read-only, the node's work directory,
keys and config hidden behind empty mounts, and only its own job directory
writable. Limits on memory and file size are set with ``prlimit`` around it,
since ``preexec_fn`` is unsafe in a process with several slot threads.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

BWRAP_PACKAGE = "bubblewrap"  # the Debian package that provides bwrap
PROBE_TIME_LIMIT_S = 20.0
# Environment the child keeps; everything else (passwords in RONRENDER_* variables) stays out.
KEPT_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "CUDA_VISIBLE_DEVICES")
# Device nodes a GPU slot's child needs inside the sandbox's minimal /dev: NVIDIA (CUDA,
# OptiX), AMD (HIP: kfd and dri) and Intel (oneAPI: dri).
GPU_DEVICE_GLOBS = ("nvidia*", "nvidia-caps", "dri", "kfd")


class SandboxUnavailable(RuntimeError):
    """No sandbox here and the owner did not allow running without one."""


@dataclass(frozen=True)
class ResourceLimits:
    """Per render child: address space and largest file written; 0 means no limit."""

    memory_bytes: int = 0
    output_bytes: int = 0

    def wrap(self, argv: Sequence[str]) -> list[str]:
        options = []
        if self.memory_bytes:
            options.append(f"--as={self.memory_bytes}")
        if self.output_bytes:
            options.append(f"--fsize={self.output_bytes}")
        prlimit = shutil.which("prlimit")
        if not options:
            return list(argv)
        if prlimit is None:
            log.warning("prlimit (util-linux) is missing: render children run without memory/file limits")
            return list(argv)
        return [prlimit, *options, "--", *argv]


def child_env(home: Path) -> dict[str, str]:
    env = {key: os.environ[key] for key in KEPT_ENV if key in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env["HOME"] = str(home)
    env["TMPDIR"] = "/tmp"
    return env


@dataclass(frozen=True)
class Sandbox:
    """bubblewrap with a list of paths the child must not see."""

    bwrap: str
    hidden: tuple[Path, ...] = ()

    @classmethod
    def detect(cls, hidden: Iterable[Path] = ()) -> Sandbox | None:
        """A working bubblewrap, or None (missing, or user namespaces refused here)."""
        bwrap = shutil.which("bwrap")
        if bwrap is None:
            return None
        sandbox = cls(bwrap, tuple(Path(p).resolve() for p in hidden))
        try:
            trial = subprocess.run(
                sandbox.wrap(["true"], writable=Path("/tmp"), needed=()),
                capture_output=True,
                text=True,
                timeout=PROBE_TIME_LIMIT_S,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            log.warning("bubblewrap does not work here: %s", error)
            return None
        if trial.returncode != 0:
            log.warning("bubblewrap does not work here: %s", trial.stderr.strip())
            return None
        return sandbox

    def wrap(
        self,
        argv: Sequence[str],
        *,
        writable: Path,
        needed: Iterable[Path] = (),
        python: str | None = None,
        gpu: bool = False,
    ) -> list[str]:
        """``argv`` run in the sandbox, with ``writable`` its only writable directory and
        ``needed`` (the scene, say) visible read-only even where a hidden path covers it."""
        writable = writable.resolve()
        keep = {Path(p).resolve() for p in needed}
        # The child's Python and our child scripts must stay visible under any hidden path.
        keep |= {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), Path(__file__).resolve().parent}
        if python:
            keep.add(Path(shutil.which(python) or python).resolve().parent.parent)
        args = [self.bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
        if gpu:
            for pattern in GPU_DEVICE_GLOBS:
                for device in sorted(Path("/dev").glob(pattern)):
                    args += ["--dev-bind", str(device), str(device)]
        for path in self.hidden:
            if path.is_dir():
                args += ["--tmpfs", str(path)]
            elif path.exists():
                args += ["--ro-bind", "/dev/null", str(path)]
        for path in sorted(keep):
            if path.exists() and (
                path.is_relative_to("/tmp") or any(path.is_relative_to(h) for h in self.hidden)
            ):
                args += ["--ro-bind", str(path), str(path)]
        args += ["--bind", str(writable), str(writable), "--chdir", str(writable)]
        args += ["--unshare-all", "--die-with-parent", "--new-session"]
        return [*args, "--", *argv]


def refuse_or_warn(sandbox: Sandbox | None, allow_unsandboxed: bool) -> None:
    """A node without a sandbox starts only when its owner said so, and says it in the log."""
    if sandbox is not None:
        log.info("render children run in a bubblewrap sandbox (no network, read-only filesystem)")
        return
    if not allow_unsandboxed:
        raise SandboxUnavailable(
            "no sandbox for the render child: install bubblewrap (Debian: apt-get install "
            f"{BWRAP_PACKAGE}) or, accepting the risk of running strangers' scenes unconfined, "
            "pass --allow-unsandboxed (config: allow_unsandboxed = true)"
        )
    log.warning(
        "RUNNING UNSANDBOXED (allowed by the owner): a scene's code could reach the network and "
        "this machine's files; the backend is told this node is not sandboxed"
    )
