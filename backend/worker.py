"""The RQ worker class the farm runs (``rq worker --worker-class backend.worker.WarmWorker``).

A SimpleWorker (jobs run in the worker process, no fork per job) that builds the app,
imports the task modules, if it serves the analysis queue loads the next analysis's
Blender, if it serves the verification queue loads the image decoders (a check and a
preview of a small PNG and EXR), and if it serves the escrow queue connects the escrow chain, before it takes
its first job (only escrow workers hold the operator key), then freezes what it built out
of the garbage collector's way.
Without this, the first job of each worker paid for all of that: about 1.2 s to build the
app, and a keystore decryption for the first lock, on the path of every new job's start.
"""

from __future__ import annotations

from typing import Any

from rq.worker import SimpleWorker

from backend import defaults, tasks
from backend.queues import queue_name
from backend.startup_heap import freeze_startup_heap


class WarmWorker(SimpleWorker):
    def work(self, *args: Any, **kwargs: Any) -> bool:
        tasks.warm_up(
            connect_chain=self._serves(defaults.ESCROW_QUEUE),
            analysis=self._serves(defaults.ANALYSIS_QUEUE),
            verification=self._serves(defaults.VERIFICATION_QUEUE),
        )
        freeze_startup_heap()
        return super().work(*args, **kwargs)

    def _serves(self, kind: str) -> bool:
        """Whether one of this worker's queues is of that kind (whatever its prefix)."""
        suffix = queue_name(kind, prefix="")
        return any(queue.name.endswith(suffix) for queue in self.queues)
