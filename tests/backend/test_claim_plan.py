"""The claim path stays index-backed whatever the planner knows: a job's next pending frame
is the first entry of the partial index ix_frames_pending, not found by sorting the job's
pending frames, nor by walking its frames in number order past every frame already handed
out. Checked on SQLite and on PostgreSQL (a custom plan, and the generic plan a prepared
statement may switch to) for a job of 20,000 frames right after its split, and half handed out with
statistics taken before and after."""

from __future__ import annotations

import hashlib
import re

import pytest
from sqlalchemy import literal, text, update
from sqlalchemy.dialects import postgresql

from backend.extensions import db
from backend.models import Frame, SceneFile, utc_now
from backend.services import frame_transitions, matchmaker
from backend.services.job_split import JobRequest, create_job
from scripts.bench.seed import scene_analysis
from shared.states import FrameState, SceneState

pytestmark = pytest.mark.integration

FRAMES = 20000


def _described(rows) -> str:
    return "\n".join(" ".join(str(column) for column in row) for row in rows)


def _sqlite_plan(statement, values: dict[str, object]) -> str:
    """SQLite's plan for the statement as a claim runs it, its values bound."""
    expanded = statement.params(**values).compile(db.engine).construct_expanded_state()
    ordered = tuple(expanded.parameters[name] for name in expanded.positiontup)
    explain = f"EXPLAIN QUERY PLAN {expanded.statement}"
    return _described(db.session.connection().exec_driver_sql(explain, ordered))


def _postgres_plan(statement, values: dict[str, object], mode: str) -> str:
    """PostgreSQL's plan for the statement prepared with its values bound: a custom plan
    (for these values), or the generic plan it may switch to for a statement run often
    (psycopg prepares those; the planner then stops looking at the values)."""
    compiled = statement.params(**values).compile(dialect=postgresql.psycopg.dialect())
    expanded = compiled.construct_expanded_state()
    names = list(dict.fromkeys(re.findall(r"%\((\w+)\)s", expanded.statement)))
    numbered = re.sub(r"%\((\w+)\)s", lambda match: f"${names.index(match[1]) + 1}", expanded.statement)
    plain = [getattr(value, "value", value) for value in map(expanded.parameters.get, names)]  # enums
    inline = {"literal_binds": True}
    written = ", ".join(str(literal(value).compile(compile_kwargs=inline)) for value in plain)
    db.session.execute(text(f"SET plan_cache_mode = {mode}"))
    db.session.execute(text(f"PREPARE claim_step AS {numbered}"))
    try:
        return _described(db.session.execute(text(f"EXPLAIN EXECUTE claim_step ({written})")))
    finally:
        db.session.execute(text("DEALLOCATE claim_step"))
        db.session.execute(text("RESET plan_cache_mode"))


def _plans(statement, values: dict[str, object]) -> list[str]:
    if db.engine.dialect.name == "postgresql":
        modes = ("force_custom_plan", "force_generic_plan")
        return [_postgres_plan(statement, values, mode) for mode in modes]
    return [_sqlite_plan(statement, values)]


def _assert_claims_read_the_pending_index(job_id: str, first_pending: int) -> None:
    postgres = db.engine.dialect.name == "postgresql"
    for handed_back in (False, True):
        for plan in _plans(matchmaker._next_pending_frames(postgres, handed_back), {"of_job_id": job_id}):
            assert "ix_frames_pending" in plan, plan
            assert "Sort" not in plan and "TEMP B-TREE" not in plan, plan
    if postgres:  # where the frame found is leased in the same statement
        for handed_back in (False, True):
            candidate = matchmaker._next_pending_frames(postgres, handed_back)
            lease = frame_transitions._lease_first_locked_statement(candidate)
            lease_values = {"new_node_id": "n", "new_lease_token": "t", "to_state": "ASSIGNED"}
            now = {"new_started_at": utc_now(), "new_lease_expires_at": utc_now()}
            values = {"of_job_id": job_id, **lease_values, **now}
            for plan in _plans(lease, values):
                assert "ix_frames_pending" in plan and "Index Scan using pk_frames" in plan, plan
                assert "Sort" not in plan and "Seq Scan" not in plan, plan
    node = {"node_id": "n", "memory_bytes": 2**33, "gpu_memory_bytes": -1, "blender_version_number": 405}
    for plan in _plans(matchmaker._claimable_jobs(), node):
        assert "ix_frames_pending" in plan, plan
        assert "Seq Scan on frames" not in plan and "SCAN frames" not in plan, plan
        assert "Hash" not in plan.replace("hashed SubPlan", ""), plan
    found = db.session.execute(matchmaker._next_pending_frames(postgres, False), {"of_job_id": job_id}).all()
    assert found[0].number == first_pending
    db.session.rollback()  # the claim statement locked a frame on PostgreSQL


def test_claims_read_the_pending_index_from_the_split_on(app):
    sha256 = hashlib.sha256(b"claim plan scene").hexdigest()
    db.session.add(
        SceneFile(sha256=sha256, size_bytes=1, state=SceneState.READY, analysis=scene_analysis(FRAMES))
    )
    db.session.commit()
    job_id = create_job(JobRequest(scene_sha256=sha256)).id
    _assert_claims_read_the_pending_index(job_id, first_pending=1)

    half = FRAMES // 2
    db.session.execute(
        update(Frame).where(Frame.job_id == job_id, Frame.number <= half).values(state=FrameState.UPLOADED)
    )
    db.session.commit()
    _assert_claims_read_the_pending_index(job_id, first_pending=half + 1)  # statistics from the split

    db.session.execute(text("ANALYZE"))
    db.session.commit()
    _assert_claims_read_the_pending_index(job_id, first_pending=half + 1)  # statistics that say so
