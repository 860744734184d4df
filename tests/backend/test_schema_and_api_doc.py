"""The database schema comes from Alembic migrations, and the API is described by a
generated OpenAPI document."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from backend.extensions import db
from backend.models import Job, Payment, SceneFile
from shared.states import JobState, PaymentKind

pytestmark = pytest.mark.integration


def test_migrations_match_the_models(app):
    with db.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), db.metadata)
    assert differences == []


def test_migrations_go_down_to_empty_and_up_again(app):
    """Every migration has a working downgrade: head -> base leaves no table, base -> head again."""
    from flask_migrate import downgrade, upgrade
    from sqlalchemy import inspect

    def tables() -> set[str]:
        with db.engine.connect() as connection:
            return set(inspect(connection).get_table_names()) - {"alembic_version"}

    assert {"jobs", "frames", "nodes", "api_tokens"} <= tables()
    downgrade(revision="base")
    assert tables() == set()
    upgrade()
    with db.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), db.metadata) == []


def test_wei_amounts_beyond_64_bits_survive_the_database(app):
    huge = 123_456_789 * 10**18 + 1  # 123 million RON and one wei: far past 2**63
    db.session.add(SceneFile(sha256="0" * 64, size_bytes=1))
    db.session.add(
        Job(
            id="j" * 32,
            scene_sha256="0" * 64,
            state=JobState.AWAITING_ACCEPTANCE,
            frame_start=1,
            frame_end=1,
            frame_step=1,
            output_format="PNG",
            engine="CYCLES",
            resolution_x=1,
            resolution_y=1,
            resolution_percentage=100,
            required_device="ANY",
            min_blender_version=405,
            frames_total=1,
            price_per_frame_wei=huge,
            fee_bps=0,
            estimate_wei=huge,
        )
    )
    db.session.flush()
    db.session.add(Payment(job_id="j" * 32, kind=PaymentKind.LOCK, amount_wei=huge))
    db.session.flush()
    db.session.expire_all()
    assert db.session.get(Job, "j" * 32).estimate_wei == huge
    assert db.session.query(Payment).one().amount_wei == huge
    db.session.rollback()


def test_wei_refuses_floats(app):
    payment = Payment(job_id="x", kind=PaymentKind.LOCK, amount_wei=1.5)
    db.session.add(payment)
    with pytest.raises(Exception, match="wei must be an int"):
        db.session.flush()
    db.session.rollback()


def test_openapi_document_describes_the_lifecycle(client):
    spec = client.get("/openapi.json").json
    assert spec["info"]["title"] == "RonRender API"
    for path in (
        "/api/v1/scenes",
        "/api/v1/jobs",
        "/api/v1/jobs/{job_id}/accept",
        "/api/v1/nodes/{node_id}/claim",
        "/api/v1/nodes/{node_id}/heartbeat",
        "/api/v1/attempts/{attempt_id}/output",
        "/api/v1/jobs/{job_id}/output.zip",
    ):
        assert path in spec["paths"], path
    job_create = spec["components"]["schemas"]["JobCreateIn"]
    assert "scene_sha256" in job_create["required"]
    assert {"PNG", "OPEN_EXR"} <= set(job_create["properties"]["output_format"]["enum"])
