"""Idle claims held until work appears.

An idle node may ask the backend to hold its empty claim for a few seconds
(``wait_s``) instead of answering 204 at once. The held claim asks again each time
work appears: a commit that starts a job rendering or hands a frame back publishes
on a Redis channel (after the commit, so the work is claimable when the claim
wakes). A new job's first frame then starts the moment its lock is confirmed, not
at the idle node's next poll. Each held claim keeps a web thread, so a process holds
only a few (``RONRENDER_CLAIM_HOLD_SEATS``), and none on a farm large enough to be
told Retry-After.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from flask import current_app
from redis.client import PubSub
from redis.exceptions import RedisError
from sqlalchemy import event
from sqlalchemy.orm import Session

from backend.extensions import app_scoped, db
from backend.queues import redis_connection

T = TypeVar("T")
log = logging.getLogger(__name__)
_ANNOUNCE = "ronrender_work_appeared"  # session.info key: publish after this commit


@dataclass(frozen=True)
class HeldClaim(Generic[T]):
    """A held claim's outcome: what it got, and whether it was held (a claim that was
    held for its whole wait is asked again at once; one that was not waits its interval)."""

    claimed: T | None
    held: bool


def work_appeared() -> None:
    """Wake the held claims once the session's transaction commits."""
    db.session.info[_ANNOUNCE] = (redis_connection(), _channel())


@event.listens_for(Session, "after_commit")
def _announce_after_commit(session: Session) -> None:
    announce = session.info.pop(_ANNOUNCE, None)
    if announce is None:
        return
    redis, channel = announce
    try:
        redis.publish(channel, b"1")
    except RedisError as error:  # held claims still end at their deadline and ask again
        log.warning("could not wake held claims: %s", error)


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop(_ANNOUNCE, None)


def hold_claim(try_claim: Callable[[], T | None], wait_s: float) -> HeldClaim[T]:
    """Ask again whenever work appears, until a claim succeeds or ``wait_s`` passes. Not
    held (at once) when this process already holds all the claims it may, or Redis fails."""
    seats = _seats()
    if wait_s <= 0 or not seats.acquire(blocking=False):
        return HeldClaim(None, held=False)
    try:
        pubsub = redis_connection().pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(_channel())  # before asking again: no wake-up is missed
            deadline = time.monotonic() + wait_s
            while True:
                claimed = try_claim()
                if claimed is not None or not _woken(pubsub, deadline):
                    return HeldClaim(claimed, held=True)
        finally:
            pubsub.close()
    except RedisError as error:
        log.warning("could not hold a claim: %s", error)
        return HeldClaim(None, held=False)
    finally:
        seats.release()


def _woken(pubsub: PubSub, deadline: float) -> bool:
    """Whether work appeared before the deadline."""
    while (remaining := deadline - time.monotonic()) > 0:
        message = pubsub.get_message(timeout=remaining)
        if message is not None and message["type"] == "message":
            return True
    return False


def _channel() -> str:
    return f"{current_app.config['RONRENDER_QUEUE_PREFIX']}:work-appeared"


def _seats() -> threading.BoundedSemaphore:
    return app_scoped(
        "ronrender_claim_hold_seats",
        lambda: threading.BoundedSemaphore(current_app.config["RONRENDER_CLAIM_HOLD_SEATS"]),
    )
