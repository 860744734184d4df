"""``ronrender-sweeper``: the periodic process that runs the sweep (silent nodes,
expired leases, hung renders) and the reconciler (queue entries lost with Redis)."""

from __future__ import annotations

import logging
import signal
import threading

from redis.exceptions import RedisError

from backend import create_app
from backend.services.reconcile import reconcile
from backend.services.sweep import sweep

log = logging.getLogger("ronrender.sweeper")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s sweeper %(levelname)s %(message)s")
    app = create_app()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    interval_s = app.config["RONRENDER_SWEEP_INTERVAL_S"]
    log.info(
        "sweeping every %.1f s; nodes silent for %.0f s go OFFLINE",
        interval_s,
        app.config["RONRENDER_OFFLINE_AFTER_S"],
    )
    while not stop.is_set():
        with app.app_context():
            try:
                report = sweep()
                if report.nodes_offline or report.frames_requeued:
                    log.info(
                        "OFFLINE %s; frames handed back %s", report.nodes_offline, report.frames_requeued
                    )
                queued = reconcile()
                if queued:
                    log.info("re-queued %d entries from the database", queued)
            except RedisError as error:
                log.warning("Redis is unavailable (%s); retrying", error)
            except Exception:
                log.exception("sweep failed; retrying")
        stop.wait(interval_s)


if __name__ == "__main__":
    main()
