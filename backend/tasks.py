"""RQ task entry points: plain ids in, one service call, nothing else."""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager, nullcontext

from flask import Flask, has_app_context

log = logging.getLogger(__name__)
_worker_app: Flask | None = None


def _app_context() -> AbstractContextManager[object]:
    """The caller's app context in tests, else one app built once per worker from the environment."""
    global _worker_app
    if has_app_context():
        return nullcontext()
    if _worker_app is None:
        from backend import create_app

        _worker_app = create_app()
    return _worker_app.app_context()


def warm_up(*, connect_chain: bool, analysis: bool = False, verification: bool = False) -> None:
    """Build what a worker's first job would: the app, the task modules, for an analysis
    worker the next analysis's Blender, for a verifier the image decoders and, for an
    escrow worker, the chain connection."""
    from backend.services import payments, scene_analysis, spot_checks  # noqa: F401
    from backend.services import verification as verifier
    from backend.services.chain_access import escrow_chain

    with _app_context():
        if analysis:
            scene_analysis.keep_blender_ready()
        if verification:
            verifier.warm_up()
        if not connect_chain:
            return
        try:
            escrow_chain()
        except Exception as error:  # the first escrow job connects (and retries) on its own
            log.warning("the escrow chain is not connected yet: %s", error)


def analyze_scene(sha256: str) -> None:
    from backend.services import scene_analysis

    with _app_context():
        scene_analysis.analyze_scene(sha256)


def verify_attempt(attempt_id: int) -> None:
    from backend.services import verification

    with _app_context():
        verification.verify_attempt(attempt_id)


def compare_spot_check(spot_check_id: int) -> None:
    from backend.services import spot_checks

    with _app_context():
        spot_checks.compare(spot_check_id)


def lock_job_escrow(job_id: str) -> None:
    from backend.services import payments

    with _app_context():
        payments.lock_job(job_id)


def send_releases(job_id: str) -> None:
    from backend import queues
    from backend.services import payments

    with _app_context():
        queues.releases_taken(job_id)
        payments.send_releases(job_id)


def settle_job_escrow(job_id: str) -> None:
    from backend.services import payments

    with _app_context():
        payments.settle_job(job_id)
