"""/metrics: the farm's state read at scrape time, in-process histograms (also added up
across processes in multiprocess mode), and structured JSON logs."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from backend import create_app, observability
from backend.extensions import db
from backend.models import Attempt, Frame, Node, Payment, utc_now
from backend.queues import get_queue
from backend.services import matchmaker, verification
from backend.storage import app_storage
from shared.states import AttemptOutcome, FrameState, PaymentKind
from tests.backend.helpers import make_job

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def client(app):
    """Anonymous, as a load balancer or Prometheus asks: no sign-in needed."""
    return app.test_client()


def scrape(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, keyed by name and sorted labels."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def make_node() -> Node:
    node = Node(
        name="metrics-node",
        cpu_cores=2,
        memory_bytes=8 * 1024**3,
        blender_version="4.5.15 LTS",
        blender_version_number=405,
    )
    db.session.add(node)
    db.session.flush()
    return node


def test_farm_state_is_read_at_scrape_time(app, client):
    before = scrape(client)
    assert before[("ronrender_frames", (("state", "PENDING"),))] == 0
    assert before[("ronrender_scrape_error", (("source", "database"),))] == 0

    job = make_job(frames=3)
    make_node()
    frames = db.session.query(Frame).filter_by(job_id=job.id).order_by(Frame.number).all()
    frames[0].state = FrameState.VERIFIED
    an_hour_ago = utc_now() - timedelta(hours=1)
    db.session.add(
        Payment(job_id=job.id, kind=PaymentKind.LOCK, amount_wei=3 * 10**15, created_at=an_hour_ago)
    )
    db.session.commit()
    get_queue("analysis").enqueue("backend.tasks.analyze_scene", "0" * 64)

    after = scrape(client)
    assert after[("ronrender_frames", (("state", "PENDING"),))] == 2
    assert after[("ronrender_frames", (("state", "VERIFIED"),))] == 1
    assert after[("ronrender_jobs", (("state", "RENDERING"),))] == 1
    assert after[("ronrender_nodes", (("state", "ONLINE"),))] == 1
    assert after[("ronrender_payments", (("kind", "LOCK"), ("state", "RECORDED")))] == 1
    assert after[("ronrender_payments_wei", (("kind", "LOCK"), ("state", "RECORDED")))] == 3 * 10**15
    assert 3500 < after[("ronrender_payment_lag_seconds", ())] < 7200
    assert after[("ronrender_queue_depth", (("queue", "analysis"),))] == 1
    assert after[("ronrender_queue_failed", (("queue", "escrow"),))] == 0
    # the escrow contract holds the artist's deposit; the operator has gas money
    assert after[("ronrender_escrow_contract_balance_wei", ())] > 0
    assert after[("ronrender_operator_balance_wei", ())] > 0
    assert all(value == 0 for (name, _), value in after.items() if name == "ronrender_scrape_error")


def test_a_source_that_is_down_is_reported_not_fatal(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "RONRENDER_REDIS_URL", "redis://127.0.0.1:1/0")
    samples = scrape(client)
    assert samples[("ronrender_scrape_error", (("source", "redis"),))] == 1
    assert samples[("ronrender_scrape_error", (("source", "database"),))] == 0
    assert ("ronrender_frames", (("state", "PENDING"),)) in samples


def test_claims_are_timed(app, client):
    node = make_node()
    db.session.commit()
    before = scrape(client).get(("ronrender_claim_seconds_count", ()), 0)
    assert matchmaker.claim_frame(node) is None  # nothing to render: still a timed claim
    assert scrape(client)[("ronrender_claim_seconds_count", ())] == before + 1


def test_verification_is_timed_and_its_verdict_counted(app, client):
    job = make_job(frames=1)
    node = make_node()
    frame = db.session.query(Frame).filter_by(job_id=job.id).one()
    frame.state = FrameState.UPLOADED
    # bytes that are no image at all: rejected as WRONG_FORMAT
    stored = app_storage().save_stream(io.BytesIO(b"not an image at all"), max_bytes=100)
    attempt = Attempt(
        frame_id=frame.id,
        node_id=node.id,
        lease_token=uuid.uuid4().hex,
        lease_expires_at=utc_now() + timedelta(minutes=5),
        outcome=AttemptOutcome.UPLOADED,
        output_sha256=stored.sha256,
    )
    db.session.add(attempt)
    db.session.commit()
    key = ("ronrender_verdicts_total", (("reason", "WRONG_FORMAT"), ("verdict", "rejected")))
    before = scrape(client)
    verification.verify_attempt(attempt.id)
    after = scrape(client)
    assert after[key] == before.get(key, 0) + 1
    assert (
        after[("ronrender_verification_seconds_count", ())]
        == before[("ronrender_verification_seconds_count", ())] + 1
    )
    assert after[("ronrender_attempts", (("outcome", "REJECTED"),))] == 1


MULTIPROCESS_CHILD = """
from backend import observability
observability.CLAIM_SECONDS.observe(0.02)
observability.record_verdict(True, None)
"""


def test_multiprocess_mode_adds_up_every_process(app, client, tmp_path, monkeypatch):
    """As under gunicorn and several RQ workers: each process writes its own files."""
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "PYTHONPATH": str(ROOT)}
    for _ in range(2):
        subprocess.run([sys.executable, "-c", MULTIPROCESS_CHILD], env=env, check=True, cwd=ROOT)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))
    samples = scrape(client)
    assert samples[("ronrender_claim_seconds_count", ())] == 2
    assert samples[("ronrender_verdicts_total", (("reason", ""), ("verdict", "accepted")))] == 2
    # the state of the farm is read from the database all the same
    assert ("ronrender_frames", (("state", "PENDING"),)) in samples


def test_metrics_stay_out_of_the_api_document(app, client):
    assert "/metrics" not in client.get("/openapi.json").json["paths"]


# ------------------------------------------------------------------ JSON logs


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    level = root.level
    # an in-process migration (the app fixture) runs alembic's fileConfig, which disables
    # loggers that already exist, Flask's "backend" among them
    logging.getLogger("backend").disabled = False
    yield
    for handler in list(root.handlers):
        if getattr(handler, "_ronrender", False):
            root.removeHandler(handler)
    root.setLevel(level)


def test_json_formatter_writes_one_object_per_line_with_ids():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(observability.JsonFormatter())
    logger = logging.getLogger("ronrender.test.json")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("frame %d rejected", 7, extra={"job_id": "j1", "frame": 7, "node_id": "n1"})
        try:
            raise ValueError("bad\npixels")
        except ValueError:
            logger.exception("verification failed", extra={"attempt_id": 3})
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["message"] == "frame 7 rejected"
    assert (first["level"], first["logger"]) == ("WARNING", "ronrender.test.json")
    assert (first["job_id"], first["frame"], first["node_id"]) == ("j1", 7, "n1")
    assert first["time"].endswith("+00:00")
    assert second["attempt_id"] == 3 and "ValueError: bad" in second["exception"]
    assert "job_id" not in second


def test_the_app_logs_json_when_configured(tmp_path, capsys, restore_logging):
    app = create_app(
        {
            "TESTING": True,
            "RONRENDER_LOG_FORMAT": "json",
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'db.sqlite'}",
            "RONRENDER_DATA_DIR": str(tmp_path),
            "RONRENDER_STORAGE_DIR": str(tmp_path / "storage"),
        }
    )
    app.logger.error("lease expired", extra={"job_id": "abc", "frame": 3, "node_id": "n9"})
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines  # once, not also through Flask's own handler
    entry = json.loads(lines[0])
    assert entry["message"] == "lease expired"
    assert (entry["job_id"], entry["frame"], entry["node_id"]) == ("abc", 3, "n9")


def test_the_default_log_format_stays_readable(tmp_path, caplog, restore_logging):
    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'db.sqlite'}",
            "RONRENDER_DATA_DIR": str(tmp_path),
            "RONRENDER_STORAGE_DIR": str(tmp_path / "storage"),
        }
    )
    app.logger.error("lease expired", extra={"job_id": "abc"})
    assert "lease expired" in caplog.text
    # no JSON handler of ours: Flask's and the server's logging stay as they were
    assert not any(getattr(handler, "_ronrender", False) for handler in logging.getLogger().handlers)
