"""When the node beats: only when the backend has not heard from it for an interval, or a
frame's lease has gone an interval without renewal (claims count as being heard)."""

from __future__ import annotations

import threading

import pytest

from node_runner import heartbeat as heartbeat_module
from node_runner.heartbeat import ActiveFrame, Heartbeat
from shared.protocol import FrameAssignment, RenderSettings

INTERVAL_S = 10.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class RecordingClient:
    def __init__(self) -> None:
        self.claimed_at = 0.0
        self.beats: list[list[int]] = []

    def heartbeat(self, node_id, slots):
        self.beats.append([slot.attempt_id for slot in slots])
        return []


def a_frame(attempt_id: int) -> ActiveFrame:
    settings = RenderSettings(output_format="PNG", engine="CYCLES", samples=16, resolution_percentage=100,
                              width=64, height=36)  # fmt: skip
    return ActiveFrame(FrameAssignment(attempt_id, "token", "job", 1, "0" * 64, 1, settings, 60))


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(heartbeat_module.time, "monotonic", clock)
    return clock


def test_claims_stand_in_for_beats_until_a_frame_outlives_the_interval(clock):
    client = RecordingClient()
    active: list[ActiveFrame] = []
    beat = Heartbeat(client, "node", INTERVAL_S, threading.Event(), lambda: active)  # type: ignore[arg-type]
    assert not beat.due()  # just registered

    clock.now += 8
    client.claimed_at = clock.now  # a claim (with its upload): heard, and a fresh lease
    active.append(a_frame(1))
    clock.now += 6  # 14 s since registering, 6 s since the claim
    assert not beat.due()

    clock.now += 4
    client.claimed_at = clock.now - 2  # another slot just claimed: the node was heard,
    assert beat.due()  # but this frame has rendered for 10 s and its lease wants renewing
    beat.beat()
    assert client.beats == [[1]]
    assert not beat.due()

    active.clear()  # the frame was uploaded (and nothing new claimed)
    clock.now += INTERVAL_S - 0.5
    assert not beat.due()
    clock.now += 0.5  # silent for an interval: the backend must hear from the node
    assert beat.due()


def test_a_failed_beat_is_retried_an_interval_later(clock):
    class Unreachable(RecordingClient):
        def heartbeat(self, node_id, slots):
            raise ConnectionError("backend down")

    active = [a_frame(7)]
    beat = Heartbeat(Unreachable(), "node", INTERVAL_S, threading.Event(), lambda: active)  # type: ignore[arg-type]
    clock.now += INTERVAL_S
    assert beat.due()
    beat.beat()
    assert not beat.due()  # not every tick while the backend is down:
    clock.now += INTERVAL_S - 0.5
    assert not beat.due()
    clock.now += 0.5
    assert beat.due()  # an interval later
