"""Nodes: register, heartbeat, claim a frame."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from sqlalchemy import func, select

from backend.api.access import bearer, caller, require_owner, require_same_address
from backend.api.schemas import (
    AssignmentOut,
    ClaimIn,
    EarningsOut,
    HeartbeatIn,
    HeartbeatOut,
    NodeOut,
    NodeRegisterIn,
    NodesOut,
)
from backend.extensions import db
from backend.models import Node
from backend.services import earnings, heartbeats, held_claims, matchmaker
from shared.protocol import API_PREFIX

blueprint = APIBlueprint("nodes", __name__, url_prefix=f"{API_PREFIX}/nodes", tag="Nodes")


@blueprint.post("")
@blueprint.auth_required(bearer)
@blueprint.input(NodeRegisterIn)
@blueprint.output(NodeOut, status_code=201)
@blueprint.doc(summary="Register a node and the hardware it offers")
def register_node(json_data: dict[str, Any]) -> Any:
    me = caller()
    payout_address = json_data.pop("payout_address") or me.address
    require_same_address(payout_address, "payout_address")
    return matchmaker.register_node(**json_data, payout_address=payout_address, owner_address=me.address)


def _my_node(node_id: str) -> Node:
    """404 for a node the caller's wallet did not register (admins may read any)."""
    node = matchmaker.get_node(node_id)
    require_owner(node.owner_address, f"node {node_id}")
    return node


@blueprint.get("")
@blueprint.auth_required(bearer)
@blueprint.output(NodesOut)
@blueprint.doc(summary="My nodes: those the signed-in wallet registered")
def my_nodes() -> Any:
    owner = func.lower(Node.owner_address) == caller().address.lower()
    return {"nodes": db.session.scalars(select(Node).where(owner).order_by(Node.registered_at)).all()}


@blueprint.get("/<node_id>/earnings")
@blueprint.auth_required(bearer)
@blueprint.output(EarningsOut)
@blueprint.doc(summary="RON a node earned: released (confirmed on chain), pending, per day")
def node_earnings(node_id: str) -> Any:
    _my_node(node_id)
    return earnings.node_earnings(node_id)


@blueprint.get("/<node_id>")
@blueprint.auth_required(bearer)
@blueprint.output(NodeOut)
@blueprint.doc(summary="A node as the backend sees it")
def get_node(node_id: str) -> Any:
    return _my_node(node_id)


@blueprint.post("/<node_id>/heartbeat")
@blueprint.auth_required(bearer)
@blueprint.input(HeartbeatIn)
@blueprint.output(HeartbeatOut)
@blueprint.doc(summary="I am alive: renew leases, report progress; answers which frames to drop")
def heartbeat(node_id: str, json_data: dict[str, Any]) -> Any:
    return {"abandon_attempt_ids": heartbeats.record_heartbeat(_my_node(node_id), json_data["slots"])}


@blueprint.post("/<node_id>/claim")
@blueprint.auth_required(bearer)
@blueprint.input(ClaimIn, arg_name="json_data")
@blueprint.output(AssignmentOut)
@blueprint.doc(
    summary="Ask for work: one frame (or a spot check's crops of one) under a new lease",
    responses={200: "A frame, or crops of a frame, to render", 204: "No work that fits this node now"},
)
def claim(node_id: str, json_data: dict[str, Any]) -> Any:
    node = _my_node(node_id)

    def claim_now() -> matchmaker.Claim | None:
        return matchmaker.claim_frame(
            node,
            exclude_job_ids=json_data["exclude_job_ids"],
            exclude_artists=json_data["exclude_artists"],
            starts_at_once=json_data["starts_at_once"],
        )

    claimed = claim_now()
    if claimed is not None:
        return claimed.assignment
    retry_after_s = matchmaker.idle_retry_after_s()
    if retry_after_s:
        return "", 204, {"Retry-After": str(retry_after_s)}
    held = held_claims.hold_claim(claim_now, json_data["wait_s"])
    if held.claimed is not None:
        return held.claimed.assignment
    return "", 204, ({"Retry-After": "0"} if held.held else {})
