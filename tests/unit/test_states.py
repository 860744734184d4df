"""Unit tests for the frame lifecycle in shared.states."""

from __future__ import annotations

import pytest

from shared.states import (
    FINAL_FRAME_STATES,
    FINAL_JOB_STATES,
    FRAME_TRANSITIONS,
    FrameState,
    JobState,
    states_leading_to,
)

pytestmark = pytest.mark.unit


def test_every_frame_state_has_an_entry():
    assert set(FRAME_TRANSITIONS) == set(FrameState)


def test_transitions_only_name_frame_states():
    for state, nexts in FRAME_TRANSITIONS.items():
        assert isinstance(nexts, frozenset), state
        assert nexts <= set(FrameState), state


def test_no_state_transitions_to_itself():
    for state, nexts in FRAME_TRANSITIONS.items():
        assert state not in nexts


@pytest.mark.parametrize("state", sorted(FINAL_FRAME_STATES))
def test_final_states_have_no_exits(state):
    assert FRAME_TRANSITIONS[state] == frozenset()


def test_final_states_are_exactly_those_without_exits():
    assert {state for state, nexts in FRAME_TRANSITIONS.items() if not nexts} == FINAL_FRAME_STATES
    assert frozenset({FrameState.VERIFIED, FrameState.FAILED, FrameState.CANCELLED}) == FINAL_FRAME_STATES


@pytest.mark.parametrize("state", sorted(set(FrameState) - FINAL_FRAME_STATES))
def test_every_open_state_can_be_cancelled(state):
    assert FrameState.CANCELLED in FRAME_TRANSITIONS[state]


def test_only_pending_leads_to_assigned():
    assert states_leading_to(FrameState.ASSIGNED) == frozenset({FrameState.PENDING})


def test_pending_is_never_entered_from_a_final_state():
    assert states_leading_to(FrameState.PENDING) == frozenset(
        {FrameState.ASSIGNED, FrameState.RENDERING, FrameState.UPLOADED, FrameState.CHECKING}
    )


def test_only_an_uploaded_frame_can_be_verified():
    # CHECKING is an uploaded frame waiting for its spot check
    assert states_leading_to(FrameState.VERIFIED) == frozenset({FrameState.UPLOADED, FrameState.CHECKING})
    assert states_leading_to(FrameState.CHECKING) == frozenset({FrameState.UPLOADED})


@pytest.mark.parametrize("target", list(FrameState))
def test_states_leading_to_agrees_with_the_table(target):
    expected = {state for state in FrameState if target in FRAME_TRANSITIONS[state]}

    assert states_leading_to(target) == expected
    assert isinstance(states_leading_to(target), frozenset)


def test_every_state_is_reachable_from_pending():
    reached = {FrameState.PENDING}
    frontier = [FrameState.PENDING]
    while frontier:
        for nxt in FRAME_TRANSITIONS[frontier.pop()]:
            if nxt not in reached:
                reached.add(nxt)
                frontier.append(nxt)

    assert reached == set(FrameState)


def test_states_travel_as_plain_text():
    assert FrameState.PENDING == "PENDING"
    assert str(FrameState.VERIFIED) == "VERIFIED"
    assert FrameState("UPLOADED") is FrameState.UPLOADED


def test_final_job_states():
    assert frozenset({JobState.COMPLETED, JobState.CANCELLED}) == FINAL_JOB_STATES
    assert JobState.RENDERING not in FINAL_JOB_STATES
