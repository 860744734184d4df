"""The RQ queues of the backend; work is enqueued by dotted path with plain ids."""

from __future__ import annotations

from flask import current_app
from redis import Redis
from rq import Queue, Retry

from backend import defaults


def redis_connection() -> Redis:
    """The app's Redis client: one connection pool per app (and process), so a request
    reuses a connection instead of opening one per enqueue."""
    clients = current_app.extensions.setdefault("ronrender_redis", {})
    url = current_app.config["RONRENDER_REDIS_URL"]
    client = clients.get(url)
    if client is None:
        client = clients.setdefault(url, Redis.from_url(url))
    return client


def queue_name(name: str, prefix: str) -> str:
    return f"{prefix}-{name}"


def get_queue(name: str) -> Queue:
    prefix = current_app.config["RONRENDER_QUEUE_PREFIX"]
    return Queue(queue_name(name, prefix), connection=redis_connection())


def enqueue_scene_analysis(sha256: str) -> None:
    get_queue(defaults.ANALYSIS_QUEUE).enqueue(
        "backend.tasks.analyze_scene", sha256, job_timeout=defaults.ANALYSIS_TIME_LIMIT_S + 60
    )


def enqueue_verification(attempt_id: int) -> None:
    get_queue(defaults.VERIFICATION_QUEUE).enqueue("backend.tasks.verify_attempt", attempt_id)


def enqueue_spot_check_comparison(spot_check_id: int) -> None:
    get_queue(defaults.VERIFICATION_QUEUE).enqueue("backend.tasks.compare_spot_check", spot_check_id)


def _escrow_retry() -> Retry:
    """Chain calls that fail for want of an answer are tried again, with growing pauses."""
    intervals = list(defaults.ESCROW_RETRY_INTERVALS_S)
    return Retry(max=len(intervals), interval=intervals)


def enqueue_escrow_lock(job_id: str) -> None:
    get_queue(defaults.ESCROW_QUEUE).enqueue("backend.tasks.lock_job_escrow", job_id, retry=_escrow_retry())


def enqueue_releases(job_id: str) -> None:
    get_queue(defaults.ESCROW_QUEUE).enqueue("backend.tasks.send_releases", job_id, retry=_escrow_retry())


def enqueue_job_settlement(job_id: str) -> None:
    get_queue(defaults.ESCROW_QUEUE).enqueue("backend.tasks.settle_job_escrow", job_id, retry=_escrow_retry())
