"""The RQ queues of the backend; work is enqueued by dotted path with plain ids."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from flask import current_app
from redis import Redis
from rq import Queue, Retry

from backend import defaults

RELEASES_DUE_GRACE_S = 30  # how long past its window a waiting send is trusted to come


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


def _enqueue(name: str, task: str, *args: Any, **options: Any) -> None:
    """Queue a task in one round trip to Redis: RQ writes the queue's registration and the
    job into our transaction, where on its own it sends two (every upload queues one)."""
    queue = get_queue(name)
    with queue.connection.pipeline() as transaction:
        queue.enqueue_call(task, args=args, pipeline=transaction, **options)
        transaction.execute()


def enqueue_scene_analysis(sha256: str) -> None:
    _enqueue(
        defaults.ANALYSIS_QUEUE,
        "backend.tasks.analyze_scene",
        sha256,
        timeout=defaults.ANALYSIS_TIME_LIMIT_S + 60,
    )


def enqueue_verification(attempt_id: int) -> None:
    _enqueue(defaults.VERIFICATION_QUEUE, "backend.tasks.verify_attempt", attempt_id)


def enqueue_spot_check_comparison(spot_check_id: int) -> None:
    _enqueue(defaults.VERIFICATION_QUEUE, "backend.tasks.compare_spot_check", spot_check_id)


def _escrow_retry() -> Retry:
    """Chain calls that fail for want of an answer are tried again, with growing pauses."""
    intervals = list(defaults.ESCROW_RETRY_INTERVALS_S)
    return Retry(max=len(intervals), interval=intervals)


def enqueue_escrow_lock(job_id: str) -> None:
    get_queue(defaults.ESCROW_QUEUE).enqueue("backend.tasks.lock_job_escrow", job_id, retry=_escrow_retry())


def enqueue_releases(job_id: str) -> None:
    """Queue the send of the job's recorded releases. With a release window, the send waits
    that long and one waits per job, so the frames verified meanwhile share a transaction."""
    window_s = current_app.config["RONRENDER_RELEASE_WINDOW_S"]
    queue = get_queue(defaults.ESCROW_QUEUE)
    if window_s <= 0:
        queue.enqueue("backend.tasks.send_releases", job_id, retry=_escrow_retry())
        return
    # Expires on its own: a send lost with Redis does not hold back the next one for long.
    waiting_s = math.ceil(window_s) + RELEASES_DUE_GRACE_S
    if redis_connection().set(_releases_due_key(job_id), 1, nx=True, ex=waiting_s):
        queue.enqueue_in(
            timedelta(seconds=window_s), "backend.tasks.send_releases", job_id, retry=_escrow_retry()
        )


def releases_taken(job_id: str) -> None:
    """A send of the job's releases starts: releases recorded from now on queue another."""
    redis_connection().delete(_releases_due_key(job_id))


def _releases_due_key(job_id: str) -> str:
    return f"{current_app.config['RONRENDER_QUEUE_PREFIX']}:releases-due:{job_id}"


def enqueue_job_settlement(job_id: str) -> None:
    get_queue(defaults.ESCROW_QUEUE).enqueue("backend.tasks.settle_job_escrow", job_id, retry=_escrow_retry())
