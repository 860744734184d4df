"""What a node sends under its lease: the render output, a failure, or the frame handed back.

Every call carries the lease token in the ``X-Lease-Token`` header.
"""

from __future__ import annotations

import functools
from typing import Any, cast

from apiflask import APIBlueprint
from flask import current_app, request
from sqlalchemy import Select, bindparam, select
from sqlalchemy.orm import contains_eager

from backend.api.access import bearer, caller
from backend.api.schemas import AttemptOut, FailureIn, OutputUploadOut, OutputUploadQuery
from backend.errors import NotFound, UploadTooLarge
from backend.extensions import db
from backend.models import Attempt, Node, utc_now
from backend.services import heartbeats, matchmaker, render_outputs, spot_checks
from shared.protocol import API_PREFIX, LEASE_TOKEN_HEADER

blueprint = APIBlueprint("attempts", __name__, url_prefix=f"{API_PREFIX}/attempts", tag="Attempts")


@functools.cache
def _attempt_frame_and_node() -> Select[Any]:
    """Built once per process: every upload and every lease call reads it."""
    return (
        select(Attempt, Node)
        .join(Node, Node.id == Attempt.node_id)
        .join(Attempt.frame)
        .options(contains_eager(Attempt.frame), contains_eager(Attempt.node))
        .where(Attempt.id == bindparam("attempt_id"))
    )


def _callers_attempt(attempt_id: int) -> tuple[Attempt, Node]:
    """The attempt and its node, if the node is one of the caller's: attempt, frame and
    node in one read. A view keeps them referenced, so the session's identity map holds
    them and the lease checks read nothing again."""
    row = db.session.execute(_attempt_frame_and_node(), {"attempt_id": attempt_id}).one_or_none()
    if row is None or not caller().owns(row.Node.owner_address):
        raise NotFound(f"no attempt {attempt_id}")
    return row.Attempt, row.Node


def _lease_token(attempt_id: int) -> str:
    """The lease token, after checking the attempt belongs to one of the caller's nodes."""
    _callers_attempt(attempt_id)
    return request.headers.get(LEASE_TOKEN_HEADER, "")


@blueprint.put("/<int:attempt_id>/output")
@blueprint.auth_required(bearer)
@blueprint.input(OutputUploadQuery, location="query", arg_name="query")
@blueprint.output(OutputUploadOut, status_code=202)
@blueprint.doc(
    summary="Upload the render output (raw PNG or EXR bytes); verification is queued."
    " With claim_next, the answer also holds the node's next frame",
    responses={409: "The lease is no longer held", 413: "Too large"},
)
def upload_output(attempt_id: int, query: dict[str, Any]) -> Any:
    limit = current_app.config["RONRENDER_MAX_RENDER_OUTPUT_BYTES"]
    if request.content_length is not None and request.content_length > limit:
        raise UploadTooLarge(limit)
    attempt, node = _callers_attempt(attempt_id)
    lease_token = request.headers.get(LEASE_TOKEN_HEADER, "")
    node_id = node.id  # read before the commit expires the rows
    heartbeats.note_heard(node, utc_now())
    claim_next = query["claim_next"]
    lease_next = functools.partial(matchmaker.claim_with_upload, node, starts_at_once=query["starts_at_once"])
    received = render_outputs.receive_output(
        attempt.id, lease_token, request.stream, lease_next=lease_next if claim_next else None
    )
    answer: dict[str, Any] = {
        "id": received.id,
        "outcome": received.outcome,
        "output_sha256": received.output_sha256,
    }
    if claim_next and received.repeated:  # the first answer was lost: the same again
        handed = received.next_attempt_id
        answer["next"] = matchmaker.handed_assignment(handed) if handed is not None else None
    elif claim_next:
        claim = cast(matchmaker.Claim | None, received.next_lease)
        answer["next"] = claim.assignment if claim is not None else None
        if claim is not None:
            matchmaker.log_assigned(node_id, claim)
    return answer


@blueprint.put("/<int:attempt_id>/crops/<int:index>")
@blueprint.auth_required(bearer)
@blueprint.output(AttemptOut, status_code=202)
@blueprint.doc(
    summary="Upload one crop of a spot check (raw PNG or EXR bytes); compared once all arrived",
    responses={409: "The lease is no longer held", 413: "Too large"},
)
def upload_crop(attempt_id: int, index: int) -> Any:
    limit = current_app.config["RONRENDER_MAX_RENDER_OUTPUT_BYTES"]
    if request.content_length is not None and request.content_length > limit:
        raise UploadTooLarge(limit)
    return spot_checks.receive_crop(attempt_id, _lease_token(attempt_id), index, request.stream)


@blueprint.post("/<int:attempt_id>/failure")
@blueprint.auth_required(bearer)
@blueprint.input(FailureIn)
@blueprint.output(AttemptOut)
@blueprint.doc(summary="The render failed: record why; another node will try")
def report_failure(attempt_id: int, json_data: dict[str, Any]) -> Any:
    return render_outputs.report_failure(
        attempt_id, _lease_token(attempt_id), json_data["reason"], json_data["log_tail"]
    )


@blueprint.post("/<int:attempt_id>/release")
@blueprint.auth_required(bearer)
@blueprint.output(AttemptOut)
@blueprint.doc(summary="Hand the frame back (the node is stopping); not counted as a failure")
def release(attempt_id: int) -> Any:
    return render_outputs.release_attempt(attempt_id, _lease_token(attempt_id))
