"""What an operator watches: Prometheus metrics and structured JSON logs.

Two kinds of metrics, so that any number of gunicorn workers and RQ workers agree:

- the state of the farm (frames, jobs, nodes and payments by state, queue depths, payment
  lag, escrow amounts) is read from the database, Redis and the chain at scrape time, so
  every backend process answers the same numbers;
- what happens inside a process (claim latency, verification time and verdicts) is
  counted in that process. Under gunicorn or several RQ workers on one machine, set
  ``PROMETHEUS_MULTIPROC_DIR`` to one empty directory for all of them (before they
  start) and ``/metrics`` adds up every process's files.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Flask, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import func, select

from backend import defaults
from backend.extensions import db
from backend.models import Attempt, Frame, Job, Node, Payment, SceneFile
from shared.states import AttemptOutcome, FrameState, JobState, NodeState, PaymentState, SceneState

# In-process metrics live in a registry of their own: /metrics builds the answer per scrape.
PROCESS_REGISTRY = CollectorRegistry(auto_describe=True)

CLAIM_SECONDS = Histogram(
    "ronrender_claim_seconds",
    "Time to answer a node's claim (matching, locking a frame, opening a lease)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=PROCESS_REGISTRY,
)
VERIFICATION_SECONDS = Histogram(
    "ronrender_verification_seconds",
    "Time to verify one render output (decode, checks, thumbnail, payment record)",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
    registry=PROCESS_REGISTRY,
)
VERDICTS = Counter(
    "ronrender_verdicts",
    "Verdicts on render outputs, by verdict and reason code",
    ["verdict", "reason"],
    registry=PROCESS_REGISTRY,
)


def record_verdict(accepted: bool, reason: str | None) -> None:
    VERDICTS.labels("accepted" if accepted else "rejected", str(reason) if reason else "").inc()


# ------------------------------------------------------------ scrape-time state


def _counts(column: Any, states: Iterable[str], *where: Any) -> dict[str, int]:
    """How many rows are in each state (every state present, zeros included)."""
    counts = {str(state): 0 for state in states}
    query = select(column, func.count()).group_by(column)
    if where:
        query = query.where(*where)
    for state, count in db.session.execute(query).all():
        counts[str(state)] = count
    return counts


def _gauge(name: str, documentation: str, label: str, values: dict[str, float]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=[label])
    for key, value in values.items():
        family.add_metric([key], value)
    return family


def _seconds_since(moment: datetime | None, now: datetime) -> float:
    if moment is None:
        return 0.0
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (now - moment).total_seconds())


def database_metrics() -> list[Metric]:
    """Frames, jobs, nodes, scenes, attempts and payments, as the database says now."""
    now = datetime.now(UTC)
    metrics: list[Metric] = [
        _gauge("ronrender_frames", "Frames by state", "state", _counts(Frame.state, FrameState)),
        _gauge("ronrender_jobs", "Jobs by state", "state", _counts(Job.state, JobState)),
        _gauge("ronrender_nodes", "Nodes by state", "state", _counts(Node.state, NodeState)),
        _gauge(
            "ronrender_scene_files", "Scene files by state", "state", _counts(SceneFile.state, SceneState)
        ),
        _gauge(
            "ronrender_attempts",
            "Attempts by outcome (verified and rejected are the verifier's verdicts, all processes)",
            "outcome",
            _counts(Attempt.outcome, AttemptOutcome),
        ),
    ]
    suspended = db.session.scalar(select(func.count()).where(Node.suspended_reason.is_not(None)))
    metrics.append(GaugeMetricFamily("ronrender_nodes_suspended", "Nodes suspended", value=suspended or 0))

    payments = GaugeMetricFamily("ronrender_payments", "Payments in the outbox", labels=["kind", "state"])
    amounts = GaugeMetricFamily("ronrender_payments_wei", "Wei in the outbox", labels=["kind", "state"])
    rows = db.session.execute(
        select(
            Payment.kind, Payment.state, func.count(), func.coalesce(func.sum(Payment.amount_wei), 0)
        ).group_by(Payment.kind, Payment.state)
    ).all()
    for kind, state, count, total in rows:
        payments.add_metric([str(kind), str(state)], count)
        amounts.add_metric([str(kind), str(state)], float(total))
    metrics += [payments, amounts]

    # payment lag: how long the oldest movement not yet confirmed on chain has waited
    oldest = db.session.scalar(
        select(func.min(Payment.created_at)).where(Payment.state != PaymentState.CONFIRMED)
    )
    metrics.append(
        GaugeMetricFamily(
            "ronrender_payment_lag_seconds",
            "Age of the oldest payment not yet confirmed on chain (0 when none waits)",
            value=_seconds_since(oldest, now),
        )
    )
    last = db.session.scalar(select(func.max(Payment.confirmed_at)))
    metrics.append(
        GaugeMetricFamily(
            "ronrender_last_confirmed_payment_timestamp_seconds",
            "When the latest payment was confirmed on chain (0 when never)",
            value=last.replace(tzinfo=last.tzinfo or UTC).timestamp() if last else 0.0,
        )
    )
    refused = db.session.scalar(
        select(func.count()).where(Job.state == JobState.AWAITING_PAYMENT, Job.lock_error.is_not(None))
    )
    metrics.append(
        GaugeMetricFamily(
            "ronrender_jobs_lock_refused",
            "Jobs whose escrow lock the chain refused (waiting for the artist)",
            value=refused or 0,
        )
    )
    return metrics


def queue_metrics() -> list[Metric]:
    """RQ queue depths and failed tasks per queue (payment failures are the escrow queue's)."""
    from backend.queues import get_queue

    depth = GaugeMetricFamily("ronrender_queue_depth", "Tasks waiting in an RQ queue", labels=["queue"])
    started = GaugeMetricFamily("ronrender_queue_started", "Tasks running from an RQ queue", labels=["queue"])
    failed = GaugeMetricFamily("ronrender_queue_failed", "Failed tasks kept by an RQ queue", labels=["queue"])
    scheduled = GaugeMetricFamily(
        "ronrender_queue_scheduled", "Tasks waiting for a retry or a time", labels=["queue"]
    )
    for name in defaults.ALL_QUEUES:
        queue = get_queue(name)
        depth.add_metric([name], queue.count)
        started.add_metric([name], queue.started_job_registry.count)
        failed.add_metric([name], queue.failed_job_registry.count)
        scheduled.add_metric([name], queue.scheduled_job_registry.count)
    return [depth, started, failed, scheduled]


def chain_metrics() -> list[Metric]:
    """The escrow contract's and the operator's balances (two RPC reads; none if no chain)."""
    from backend.services.chain_access import escrow_chain

    if not current_app.config.get("RONRENDER_CHAIN_RPC_URL") or not current_app.config.get(
        "RONRENDER_ESCROW_ADDRESS"
    ):
        return []
    chain = escrow_chain()
    contract = chain.balance_of(chain.contract.address)
    operator = chain.balance_of(chain.operator.address)
    return [
        GaugeMetricFamily("ronrender_escrow_contract_balance_wei", "RON held by the escrow", value=contract),
        GaugeMetricFamily("ronrender_operator_balance_wei", "RON of the operator, for gas", value=operator),
    ]


class _Snapshot:
    """A collector that answers metrics already read (one scrape's worth)."""

    def __init__(self, metrics: list[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> list[Metric]:
        return self.metrics


def scrape() -> bytes:
    """The text exposition of every metric, read now."""
    registry = CollectorRegistry(auto_describe=False)
    multiproc_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if multiproc_dir:
        MultiProcessCollector(registry, path=multiproc_dir)
    else:
        registry.register(_Snapshot(list(PROCESS_REGISTRY.collect())))
    metrics: list[Metric] = []
    errors = GaugeMetricFamily(
        "ronrender_scrape_error", "1 when a source could not be read in this scrape", labels=["source"]
    )
    started = time.perf_counter()
    for source, read in (("database", database_metrics), ("redis", queue_metrics), ("chain", chain_metrics)):
        try:
            metrics += read()
            errors.add_metric([source], 0)
        except Exception:  # one source down must not hide the others
            current_app.logger.exception("metrics from %s failed", source)
            db.session.rollback()
            errors.add_metric([source], 1)
    metrics.append(errors)
    metrics.append(
        GaugeMetricFamily(
            "ronrender_scrape_duration_seconds",
            "Time to read the farm's state",
            value=time.perf_counter() - started,
        )
    )
    registry.register(_Snapshot(metrics))
    return generate_latest(registry)


metrics_blueprint = Blueprint("metrics", __name__)


@metrics_blueprint.get("/metrics")
def metrics() -> Response:
    """Prometheus text format (kept out of the OpenAPI document: it is not JSON)."""
    return Response(scrape(), mimetype=CONTENT_TYPE_LATEST)


# --------------------------------------------------------------------- logging

# Fields a record may carry through ``extra=`` that name what it is about.
CONTEXT_FIELDS = ("job_id", "frame", "frame_id", "node_id", "attempt_id", "scene_sha256", "tx_hash")
# Attributes every LogRecord has: anything else came from ``extra=`` and is kept.
_STANDARD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the ids passed with
    ``extra=`` (job_id, frame, node_id, …), and the traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRIBUTES and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(log_format: str, level: int = logging.INFO) -> None:
    """Point the root logger at stderr, as JSON lines (``json``) or readable text (anything else).

    Idempotent: calling it again (another app in the same process) replaces our handler only.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_ronrender", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler()
    handler._ronrender = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > level:
        root.setLevel(level)


def init_app(app: Flask) -> None:
    """Serve /metrics and, when asked for JSON logs, log JSON lines (Flask's own handler
    is dropped then, so each record is written once)."""
    app.register_blueprint(metrics_blueprint)
    if app.config.get("RONRENDER_LOG_FORMAT") == "json":
        from flask.logging import default_handler

        app.logger.removeHandler(default_handler)
        configure_logging("json")
