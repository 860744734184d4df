"""Admin endpoints: review nodes. Guarded by the admin token (RONRENDER_ADMIN_TOKEN);
with none configured the admin API is closed."""

from __future__ import annotations

import secrets
from typing import Any

from apiflask import APIBlueprint
from flask import current_app, request
from sqlalchemy import select

from backend.api.schemas import NodeOut, NodesOut
from backend.errors import AdminOnly
from backend.extensions import db
from backend.models import Node
from backend.services import matchmaker, reputation
from shared.protocol import API_PREFIX

blueprint = APIBlueprint("admin", __name__, url_prefix=f"{API_PREFIX}/admin", tag="Admin")


@blueprint.before_request
def _require_admin() -> None:
    token = current_app.config["RONRENDER_ADMIN_TOKEN"]
    offered = request.headers.get("Authorization", "").removeprefix("Bearer ")
    if not token or not secrets.compare_digest(offered, token):
        raise AdminOnly("admin token required (Authorization: Bearer …)")


@blueprint.get("/nodes")
@blueprint.output(NodesOut)
@blueprint.doc(summary="Every node with its state and reputation")
def list_nodes() -> Any:
    return {"nodes": db.session.scalars(select(Node).order_by(Node.registered_at)).all()}


@blueprint.post("/nodes/<node_id>/reinstate")
@blueprint.output(NodeOut)
@blueprint.doc(summary="After review, let a suspended node work again (its misses are cleared)")
def reinstate_node(node_id: str) -> Any:
    node = matchmaker.get_node(node_id)
    reputation.reinstate(node)
    db.session.commit()
    return node
