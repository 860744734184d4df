"""An upload may claim the node's next frame in the same request: one request per frame
instead of three (upload, claim, the beat that says the frame started). A node that starts
what it is handed at once says so, and needs no beat for any frame to show RENDERING."""

from __future__ import annotations

import pytest
from sqlalchemy import event, func, select

from backend.extensions import db
from backend.models import Attempt
from tests.backend.helpers import (
    JOBS,
    NODES,
    claim,
    noise_png,
    put_output,
    register,
    rendering_job,
    storage_then,
)

pytestmark = pytest.mark.integration


def frame_states(client, job_id: str) -> dict[int, str]:
    return {f["number"]: f["state"] for f in client.get(f"{JOBS}/{job_id}/frames").json["frames"]}


def test_uploads_hand_out_the_jobs_next_frames_already_rendering(
    client, run_workers, scene_files, tmp_path, escrow
):
    job = rendering_job(client, run_workers, scene_files["tiny"], escrow, frame_start=1, frame_end=3)
    node = register(client)
    assignment = claim(client, node)
    assert frame_states(client, job["id"])[assignment["frame_number"]] == "ASSIGNED"

    uploaded = []
    for index in range(3):
        answer = put_output(
            client, assignment, noise_png(tmp_path / f"{index}.png", 64, 36, seed=index), claim_next=True
        )
        assert answer.status_code == 202, answer.json
        assert answer.json.get("outcome") == "UPLOADED", answer.json
        uploaded.append(assignment["frame_number"])
        following = answer.json["next"]
        if index == 2:
            assert following is None  # the job has no frame left
            break
        assert following["job_id"] == job["id"] and following["lease_token"]
        # The node holds the scene and starts at once: no beat needed to say so.
        assert frame_states(client, job["id"])[following["frame_number"]] == "RENDERING"
        assignment = following
    assert sorted(uploaded) == [1, 2, 3]
    run_workers()
    assert set(frame_states(client, job["id"]).values()) == {"VERIFIED"}


@pytest.mark.parametrize(("starts_at_once", "state"), [(False, "ASSIGNED"), (True, "RENDERING")])
def test_a_next_frame_of_another_job_waits_for_the_nodes_beat_unless_it_starts_at_once(
    client, run_workers, scene_files, tmp_path, escrow, starts_at_once, state
):
    first = rendering_job(client, run_workers, scene_files["tiny"], escrow, frame_start=1, frame_end=1)
    second = rendering_job(client, run_workers, scene_files["tiny"], escrow, frame_start=3, frame_end=3)
    node = register(client)
    assignment = claim(client, node)
    assert assignment["job_id"] == first["id"]
    answer = put_output(
        client,
        assignment,
        noise_png(tmp_path / "a.png", 64, 36),
        claim_next=True,
        starts_at_once=starts_at_once,
    )
    following = answer.json["next"]
    assert following["job_id"] == second["id"]
    # Without starts_at_once it may need the scene first; with it, the node has said it starts.
    assert frame_states(client, second["id"]) == {3: state}


def test_a_claim_that_starts_at_once_hands_its_frame_rendering(client, run_workers, scene_files, escrow):
    job = rendering_job(client, run_workers, scene_files["tiny"], escrow, frame_start=1, frame_end=2)
    node = register(client)
    waiting = claim(client, node)
    started = claim(client, node, starts_at_once=True)
    assert frame_states(client, job["id"]) == {
        waiting["frame_number"]: "ASSIGNED",
        started["frame_number"]: "RENDERING",
    }
    beat = client.post(
        f"{NODES}/{node}/heartbeat",
        json={"slots": [{"attempt_id": started["attempt_id"], "lease_token": started["lease_token"],
                         "progress": 0.5, "detail": "Sample 8/16"}]},
    )  # fmt: skip
    assert beat.status_code == 200 and beat.json["abandon_attempt_ids"] == []
    assert frame_states(client, job["id"])[started["frame_number"]] == "RENDERING"


def test_without_claim_next_an_upload_claims_nothing(client, run_workers, scene_files, tmp_path, escrow):
    job = rendering_job(client, run_workers, scene_files["tiny"], escrow, frame_start=1, frame_end=2)
    node = register(client)
    assignment = claim(client, node)
    answer = put_output(client, assignment, noise_png(tmp_path / "a.png", 64, 36))
    assert answer.status_code == 202 and "next" not in answer.json
    assert sorted(frame_states(client, job["id"]).values()) == ["PENDING", "UPLOADED"]


def test_a_suspended_node_uploads_but_is_handed_nothing(
    client, admin_client, run_workers, scene_files, tmp_path, escrow
):
    job = rendering_job(client, run_workers, scene_files["tiny"], escrow, frame_start=1, frame_end=2)
    node = register(client)
    assignment = claim(client, node)
    assert admin_client.post(f"/api/v1/admin/nodes/{node}/suspend", json={"reason": "x"}).status_code == 200
    answer = put_output(client, assignment, noise_png(tmp_path / "a.png", 64, 36), claim_next=True)
    assert answer.status_code == 202 and answer.json["next"] is None
    assert sorted(frame_states(client, job["id"]).values()) == ["PENDING", "UPLOADED"]
    refused = client.post(f"/api/v1/nodes/{node}/claim", json={})
    assert refused.status_code >= 400 and "suspended" in refused.json["message"]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_an_upload_is_refused_when_its_lease_is_retaken_during_it(
    app, client, run_workers, scene_files, tmp_path, escrow, monkeypatch
):
    """The sweep and another node's claim land while the upload's bytes arrive, between its
    read of the lease and its writes: the guarded writes see it, so the frame is not marked
    uploaded for the wrong lease."""
    from sqlalchemy import text

    from backend.extensions import db
    from backend.services import render_outputs

    job = rendering_job(client, run_workers, scene_files["tiny"], escrow, frame_start=1, frame_end=1)
    node = register(client)
    assignment = claim(client, node)
    attempt_id = assignment["attempt_id"]

    def lose_the_lease() -> None:
        with db.engine.begin() as other:  # what the sweeper and a second claim commit meanwhile
            other.execute(text("UPDATE attempts SET outcome = 'EXPIRED' WHERE id = :id"), {"id": attempt_id})
            retaken = other.execute(
                text(
                    "INSERT INTO attempts (frame_id, node_id, lease_token, outcome, progress,"
                    " progress_detail, started_at, lease_expires_at)"
                    " SELECT frame_id, node_id, 'other', 'OPEN', 0, '', now(), now() + interval '1 hour'"
                    " FROM attempts WHERE id = :id RETURNING id"
                ),
                {"id": attempt_id},
            ).scalar_one()
            other.execute(
                text(
                    "UPDATE frames SET current_attempt_id = :retaken, state = 'ASSIGNED'"
                    " WHERE id = (SELECT frame_id FROM attempts WHERE id = :id)"
                ),
                {"retaken": retaken, "id": attempt_id},
            )

    monkeypatch.setattr(render_outputs, "storage", storage_then(render_outputs.storage(), lose_the_lease))
    answer = put_output(client, assignment, noise_png(tmp_path / "late.png", 64, 36), claim_next=True)
    assert answer.status_code == 409, answer.json
    assert frame_states(client, job["id"]) == {1: "ASSIGNED"}


def test_an_upload_repeated_after_a_lost_answer_gets_the_same_answer(
    client, run_workers, scene_files, tmp_path, escrow
):
    job = rendering_job(client, run_workers, scene_files["tiny"], escrow, frame_start=1, frame_end=3)
    node = register(client)
    first = claim(client, node)
    image = noise_png(tmp_path / "first.png", 64, 36, seed=1)
    answer = put_output(client, first, image, claim_next=True)
    assert answer.status_code == 202
    handed = answer.json["next"]

    again = put_output(client, first, image, claim_next=True)  # the node never saw the answer
    assert again.status_code == 202, again.json
    assert again.json["next"] == handed  # the same lease, not a second frame
    assert sorted(frame_states(client, job["id"]).values()) == ["PENDING", "RENDERING", "UPLOADED"]

    other_bytes = put_output(
        client, first, noise_png(tmp_path / "other.png", 64, 36, seed=2), claim_next=True
    )
    assert other_bytes.status_code == 409  # not the same upload: the lease is gone

    assert put_output(client, handed, noise_png(tmp_path / "second.png", 64, 36, seed=3)).status_code == 202
    late = put_output(client, first, image, claim_next=True)
    assert late.status_code == 202 and late.json["next"] is None  # that lease is no longer held
    run_workers()
    assert sorted(frame_states(client, job["id"]).values()) == ["PENDING", "VERIFIED", "VERIFIED"]


def test_an_upload_is_refused_when_its_lease_expires_during_it(
    app, client, run_workers, scene_files, tmp_path, escrow, monkeypatch
):
    """The lease runs out while the bytes arrive (no sweep has seen it yet): the upload's
    guarded write checks the expiry, so a late upload is not accepted."""
    from datetime import timedelta

    from sqlalchemy import text

    from backend.extensions import db
    from backend.models import utc_now
    from backend.services import render_outputs

    job = rendering_job(client, run_workers, scene_files["tiny"], escrow, frame_start=1, frame_end=2)
    assignment = claim(client, register(client))

    def run_the_lease_out() -> None:
        with db.engine.begin() as other:
            other.execute(
                text("UPDATE attempts SET lease_expires_at = :past WHERE id = :id"),
                {"past": utc_now() - timedelta(seconds=1), "id": assignment["attempt_id"]},
            )

    monkeypatch.setattr(render_outputs, "storage", storage_then(render_outputs.storage(), run_the_lease_out))
    answer = put_output(client, assignment, noise_png(tmp_path / "late.png", 64, 36), claim_next=True)
    assert answer.status_code == 409, answer.json
    # The next frame was leased in the refused upload's transaction: undone with it.
    assert frame_states(client, job["id"]) == {1: "ASSIGNED", 2: "PENDING"}
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(Attempt)) == 1


def test_an_upload_stands_when_its_next_frame_cannot_be_leased(
    app, client, run_workers, scene_files, tmp_path, escrow, monkeypatch
):
    """Leasing the next frame fails in the database after writing part of the lease: the
    upload's transaction is rolled back and the upload alone recorded again."""
    from sqlalchemy.exc import OperationalError

    from backend.services import matchmaker

    job = rendering_job(client, run_workers, scene_files["tiny"], escrow, frame_start=1, frame_end=2)
    node = register(client)
    assignment = claim(client, node)
    real_claim = matchmaker.claim_with_upload

    def lease_then_fail(uploader, job_id, **options):
        assert real_claim(uploader, job_id, **options) is not None  # a frame leased, uncommitted
        raise OperationalError("UPDATE frames ...", {}, Exception("the server closed the connection"))

    monkeypatch.setattr(matchmaker, "claim_with_upload", lease_then_fail)
    answer = put_output(client, assignment, noise_png(tmp_path / "a.png", 64, 36), claim_next=True)
    assert answer.status_code == 202, answer.json
    assert answer.json["outcome"] == "UPLOADED" and answer.json["next"] is None
    assert frame_states(client, job["id"]) == {1: "UPLOADED", 2: "PENDING"}
    db.session.expire_all()
    uploaded = db.session.get(Attempt, assignment["attempt_id"])
    assert uploaded.next_attempt_id is None
    assert db.session.scalar(select(func.count()).select_from(Attempt)) == 1
    monkeypatch.undo()
    run_workers()
    assert frame_states(client, job["id"]) == {1: "VERIFIED", 2: "PENDING"}
    assert claim(client, node)["frame_number"] == 2


def test_a_claim_reads_its_node_once(client, run_workers, scene_files, escrow):
    rendering_job(client, run_workers, scene_files["tiny"], escrow, frame_start=1, frame_end=1)
    node = register(client)
    statements: list[str] = []

    def record(_connection, _cursor, statement, *_args) -> None:
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        assert claim(client, node, starts_at_once=True) is not None
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    node_reads = [s for s in statements if s.lstrip().startswith("SELECT") and "FROM nodes" in s]
    assert len(node_reads) == 1, node_reads  # not again after the commit, to log the lease


def test_on_postgresql_a_claim_leases_its_frame_in_one_statement(client, run_workers, scene_files, escrow):
    rendering_job(client, run_workers, scene_files["tiny"], escrow, frame_start=1, frame_end=2)
    node = register(client)
    statements: list[str] = []

    def record(_connection, _cursor, statement, *_args) -> None:
        statements.append(" ".join(statement.split()))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        leased = claim(client, node)
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    writes = [s for s in statements if "INSERT INTO attempts" in s or "UPDATE frames" in s]
    if db.engine.dialect.name == "postgresql":  # lock, insert and move: one round trip
        assert len(writes) == 1 and "FOR UPDATE SKIP LOCKED" in writes[0], writes
    else:  # SQLite serialises writers: the attempt, then the guarded move
        assert len(writes) == 2, writes
    assert frame_states(client, leased["job_id"]) == {
        leased["frame_number"]: "ASSIGNED",
        3 - leased["frame_number"]: "PENDING",
    }
    attempt = db.session.get(Attempt, leased["attempt_id"])
    assert attempt.node_id == node and attempt.lease_token == leased["lease_token"]


def test_on_postgresql_an_upload_and_its_next_lease_write_in_one_statement_each(
    client, run_workers, scene_files, tmp_path, escrow
):
    job = rendering_job(client, run_workers, scene_files["tiny"], escrow, frame_start=1, frame_end=2)
    node = register(client)
    first = claim(client, node)
    statements: list[str] = []

    def record(_connection, _cursor, statement, *_args) -> None:
        statements.append(" ".join(statement.split()))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        answer = put_output(client, first, noise_png(tmp_path / "a.png", 64, 36), claim_next=True)
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert answer.status_code == 202, answer.json
    writes = [
        s
        for s in statements
        if any(
            f"{verb} {table}" in s for verb in ("INSERT INTO", "UPDATE") for table in ("attempts", "frames")
        )
    ]
    if db.engine.dialect.name == "postgresql":  # the next lease, then the upload's two guarded moves
        assert len(writes) == 2, writes
        assert "INSERT INTO attempts" in writes[0] and "UPDATE frames" in writes[0], writes
        assert "UPDATE frames" in writes[1] and "UPDATE attempts" in writes[1], writes
    else:
        assert len(writes) == 4, writes
    handed = answer.json["next"]
    assert frame_states(client, job["id"]) == {
        first["frame_number"]: "UPLOADED",
        handed["frame_number"]: "RENDERING",
    }
    db.session.expire_all()
    uploaded = db.session.get(Attempt, first["attempt_id"])
    assert uploaded.outcome == "UPLOADED" and uploaded.next_attempt_id == handed["attempt_id"]
