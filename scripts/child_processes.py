"""What the scripts that start services need: a free port on loopback, and a child
process that cannot outlive the script that started it."""

from __future__ import annotations

import ctypes
import signal
import socket
import sys
from collections.abc import Callable

PR_SET_PDEATHSIG = 1


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def die_with_parent(sig: signal.Signals) -> Callable[[], None]:
    """A ``preexec_fn``: on Linux the child gets ``sig`` when its parent dies, so a killed
    test run leaves no server behind."""

    def arrange() -> None:
        if sys.platform.startswith("linux"):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, sig)

    return arrange
