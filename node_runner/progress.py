"""Progress for the owner: a bar in a terminal, plain lines in a log (systemd's journal)."""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

from tqdm import tqdm

log = logging.getLogger(__name__)
LOG_STEPS = 4  # plain lines at 25 %, 50 %, 75 %, 100 %


class DownloadProgress:
    """``on_bytes(sha256, done, total)`` for the scene cache, one bar or line set per scene."""

    def __init__(self, terminal: bool | None = None) -> None:
        self.terminal = sys.stderr.isatty() if terminal is None else terminal
        self._lock = threading.Lock()
        self._bars: dict[str, Any] = {}
        self._logged: dict[str, int] = {}

    def __call__(self, sha256: str, done: int, total: int) -> None:
        with self._lock:
            if self.terminal:
                self._bar(sha256, done, total)
            elif total:
                step = int(done * LOG_STEPS / total)
                if step > self._logged.get(sha256, 0):
                    self._logged[sha256] = step
                    log.info(
                        "downloading scene %s: %d%% of %d bytes", sha256[:12], done * 100 // total, total
                    )
            if total and done >= total:
                self._done(sha256)

    def _bar(self, sha256: str, done: int, total: int) -> None:
        bar = self._bars.get(sha256)
        if bar is None:
            bar = tqdm(
                total=total or None, unit="B", unit_scale=True, desc=f"scene {sha256[:12]}", leave=False
            )
            self._bars[sha256] = bar
        bar.update(done - bar.n)

    def _done(self, sha256: str) -> None:
        bar = self._bars.pop(sha256, None)
        if bar is not None:
            bar.close()
        self._logged.pop(sha256, None)
