"""Admin endpoints: every node, ban and reinstate nodes, requeue a failed frame.

Admins are the wallets in RONRENDER_ADMIN_ADDRESSES (signed in like anyone
else) and the bootstrap RONRENDER_ADMIN_TOKEN; everyone else gets 403. Admins
also see every job through /jobs and may cancel any of them.
"""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from rq import Worker
from sqlalchemy import select

from backend import defaults
from backend.api.access import ADMIN, bearer
from backend.api.schemas import NodeOut, NodesOut, QueuesOut, RequeuedFrameOut, SuspendIn
from backend.extensions import db
from backend.models import Node
from backend.queues import get_queue
from backend.services import frame_transitions, matchmaker, reputation
from shared.protocol import API_PREFIX

blueprint = APIBlueprint("admin", __name__, url_prefix=f"{API_PREFIX}/admin", tag="Admin")


@blueprint.get("/nodes")
@blueprint.auth_required(bearer, roles=[ADMIN])
@blueprint.output(NodesOut)
@blueprint.doc(summary="Every node with its state and reputation")
def list_nodes() -> Any:
    return {"nodes": db.session.scalars(select(Node).order_by(Node.registered_at)).all()}


@blueprint.get("/queues")
@blueprint.auth_required(bearer, roles=[ADMIN])
@blueprint.output(QueuesOut)
@blueprint.doc(summary="Each RQ queue's depth (queued, running, scheduled retries, failed) and live workers")
def list_queues() -> Any:
    queues = [get_queue(name) for name in defaults.ALL_QUEUES]
    workers = {worker.name for queue in queues for worker in Worker.all(queue=queue)}
    return {
        "queues": [
            {
                "name": queue.name,
                "queued": queue.count,
                "started": queue.started_job_registry.count,
                "scheduled": queue.scheduled_job_registry.count,
                "failed": queue.failed_job_registry.count,
            }
            for queue in queues
        ],
        "workers": len(workers),
    }


@blueprint.post("/nodes/<node_id>/suspend")
@blueprint.auth_required(bearer, roles=[ADMIN])
@blueprint.input(SuspendIn)
@blueprint.output(NodeOut)
@blueprint.doc(summary="Ban a node: it gets no more work until reinstated")
def suspend_node(node_id: str, json_data: dict[str, Any]) -> Any:
    node = matchmaker.get_node(node_id)
    node.suspended_reason = f"suspended by an admin: {json_data['reason']}"
    db.session.commit()
    return node


@blueprint.post("/nodes/<node_id>/reinstate")
@blueprint.auth_required(bearer, roles=[ADMIN])
@blueprint.output(NodeOut)
@blueprint.doc(summary="After review, let a suspended node work again (its misses are cleared)")
def reinstate_node(node_id: str) -> Any:
    node = matchmaker.get_node(node_id)
    reputation.reinstate(node)
    db.session.commit()
    return node


@blueprint.post("/jobs/<job_id>/frames/<int:number>/requeue")
@blueprint.auth_required(bearer, roles=[ADMIN])
@blueprint.output(RequeuedFrameOut)
@blueprint.doc(
    summary="Give a FAILED frame of a rendering job a fresh start",
    responses={409: "The job is not rendering or the frame is not FAILED"},
)
def requeue_frame(job_id: str, number: int) -> Any:
    frame = frame_transitions.requeue_failed_frame(job_id, number)
    return {"number": frame.number, "state": frame.state, "failures": frame.failures, "progress": 0.0}
