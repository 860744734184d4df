"""Idle nodes of a large farm are asked to come back later, so their empty claims
stay near a fixed total rate instead of growing with the farm."""

from __future__ import annotations

import pytest

from tests.backend.helpers import NODES, register

pytestmark = pytest.mark.integration


def empty_claim(client, node_id):
    response = client.post(f"{NODES}/{node_id}/claim", json={})
    assert response.status_code == 204, response.json
    return response.headers.get("Retry-After")


def test_a_small_farm_polls_at_the_nodes_own_pace(node_client):
    node_id = register(node_client)
    assert empty_claim(node_client, node_id) is None


def test_a_farm_whose_nodes_would_poll_past_the_budget_is_told_to_wait_a_second(app, node_client):
    app.config["RONRENDER_IDLE_CLAIMS_PER_S"] = 10  # 3 nodes at their own 4 per s would make 12
    node_ids = [register(node_client, name=f"node-{i}") for i in range(3)]
    assert empty_claim(node_client, node_ids[0]) == "1"  # Retry-After counts whole seconds


def test_each_slot_of_a_node_counts_against_the_budget(app, node_client):
    app.config["RONRENDER_IDLE_CLAIMS_PER_S"] = 2  # 3 slots would claim 12 times a second
    slots = [{"name": f"cpu{i}", "device_type": "CPU"} for i in range(3)]
    node_id = register(node_client, slots=slots)
    assert empty_claim(node_client, node_id) == "2"  # 3 slots / 2 per s, rounded up


def test_a_large_idle_farm_is_told_to_wait_in_proportion(app, node_client):
    app.config["RONRENDER_IDLE_CLAIMS_PER_S"] = 2  # so 7 nodes are a "large" farm here
    node_ids = [register(node_client, name=f"node-{i}") for i in range(7)]
    assert empty_claim(node_client, node_ids[0]) == "4"  # 7 online / 2 per s, rounded up

    app.config["RONRENDER_IDLE_CLAIMS_PER_S"] = 1
    app.extensions.pop("ronrender_online_slots")  # the per-process count is kept a few seconds
    node_ids += [register(node_client, name=f"node-{i}") for i in range(7, 40)]
    assert empty_claim(node_client, node_ids[-1]) == "30"  # capped
