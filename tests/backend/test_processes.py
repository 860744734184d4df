"""Several backend processes at once on PostgreSQL: claims, sweeps and the payment
outbox stay correct when separate processes (as gunicorn and RQ workers are) race
on the same rows. Each child builds its own app, engine and connections."""

from __future__ import annotations

import multiprocessing
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from backend.extensions import db
from backend.models import Attempt, Frame, Payment, utc_now
from backend.services import verification
from backend.services.chain_access import escrow_chain
from tests.backend.helpers import claim, noise_png, put_output, register, rendering_job

pytestmark = [pytest.mark.integration, pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)]

PROCESSES = 4
SHARED_KEYS = (
    "SQLALCHEMY_DATABASE_URI",
    "RONRENDER_DATA_DIR",
    "RONRENDER_STORAGE_DIR",
    "RONRENDER_REDIS_URL",
    "RONRENDER_QUEUE_PREFIX",
    "RONRENDER_CHAIN_RPC_URL",
    "RONRENDER_PUBLIC_RPC_URL",
    "RONRENDER_CHAIN_ID",
    "RONRENDER_ESCROW_ADDRESS",
    "RONRENDER_OPERATOR_KEY",
    "RONRENDER_RATE_LIMIT",
)


def _in_child(config: dict[str, Any], action: str, argument: Any, start: Any) -> Any:
    """Run one action in a fresh process with its own app, after every child is ready."""
    from backend import create_app
    from backend.services import matchmaker, payments, sweep

    app = create_app(config)
    with app.app_context():
        start.wait()
        if action == "claim":
            won = []
            while (claimed := matchmaker.claim_frame(matchmaker.get_node(argument))) is not None:
                won.append(claimed.frame_number)
            return won
        if action == "sweep":
            report = sweep.sweep(now=argument)
            return {"offline": report.nodes_offline}
        if action == "release":
            payments.send_releases(argument)
            return None
    raise ValueError(action)


def _race(app: Any, action: str, arguments: list[Any]) -> list[Any]:
    config = {key: app.config[key] for key in SHARED_KEYS}
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        start = manager.Barrier(len(arguments))
        with context.Pool(len(arguments)) as pool:
            pending = [pool.apply_async(_in_child, (config, action, a, start)) for a in arguments]
            return [result.get(timeout=300) for result in pending]


def test_claims_from_several_processes_never_share_a_frame(app, client, run_workers, scene_files, escrow):
    job = rendering_job(client, run_workers, scene_files["tiny"], escrow)
    nodes = [register(client, name=f"process-{i}") for i in range(PROCESSES)]
    won = _race(app, "claim", nodes)
    every_claim = [number for numbers in won for number in numbers]
    assert sorted(every_claim) == list(range(1, job["frames_total"] + 1))  # each frame exactly once
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(Attempt)) == job["frames_total"]


def test_concurrent_sweeps_end_each_lease_once(app, client, run_workers, scene_files, escrow):
    job = rendering_job(client, run_workers, scene_files["tiny"], escrow)
    nodes = [register(client, name=f"silent-{i}") for i in range(2)]
    for node in nodes:
        assert claim(client, node) is not None
    future = utc_now() + timedelta(seconds=app.config["RONRENDER_OFFLINE_AFTER_S"] + 1)
    reports = _race(app, "sweep", [future] * PROCESSES)
    went_offline = [node for report in reports for node in report["offline"]]
    assert sorted(went_offline) == sorted(nodes)  # each node marked OFFLINE by exactly one sweeper
    db.session.expire_all()
    outcomes = db.session.scalars(select(Attempt.outcome)).all()
    assert outcomes == ["EXPIRED", "EXPIRED"]  # ended once each, never reopened or double-counted
    frames = db.session.scalars(select(Frame).where(Frame.job_id == job["id"])).all()
    assert all(frame.state == "PENDING" and frame.failures == 0 for frame in frames)


def test_concurrent_release_senders_pay_each_frame_once(
    app, client, run_workers, scene_files, tmp_path, escrow
):
    job = rendering_job(client, run_workers, scene_files["tiny"], escrow)
    node = register(client)
    for number in range(1, job["frames_total"] + 1):
        assignment = claim(client, node)
        put_output(client, assignment, noise_png(tmp_path / f"{number}.png", 64, 36, seed=number))
        verification.verify_attempt(assignment["attempt_id"])  # records the release in the outbox
    _race(app, "release", [job["id"]] * PROCESSES)
    db.session.expire_all()
    releases = db.session.scalars(select(Payment).where(Payment.kind == "RELEASE")).all()
    assert {p.state for p in releases} == {"CONFIRMED"}
    assert sorted(p.frame_number for p in releases) == list(range(1, job["frames_total"] + 1))
    history = escrow_chain().job_history(job["id"])
    paid = sum(history["paid_wei_by_node"].values())
    assert paid == int(job["price_per_frame_wei"]) * job["frames_total"]  # no frame paid twice on chain
