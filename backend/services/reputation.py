"""A node's reputation: a score from its history, which decides what work it gets.

    score = (verified + PRIOR) / (verified + PRIOR + 2 x rejected + 1 x failed
                                  + 2 x timed_out + 3 x dropped)

A new node starts at 1.0 (the prior counts as PRIOR good frames); every miss
lowers the score and every verified frame raises it again. Below
REPUTATION_SUSPEND_BELOW the node is suspended: it gets no work until an admin
reinstates it (which clears its misses; the attempts keep the history). Frames
handed back after a miss go only to nodes at or above REPUTATION_FOR_RETRIES.
"""

from __future__ import annotations

from enum import StrEnum

from backend import defaults
from backend.models import Node

WEIGHTS = {
    "frames_rejected": defaults.REPUTATION_WEIGHT_REJECTED,
    "frames_failed": 1,
    "frames_timed_out": defaults.REPUTATION_WEIGHT_TIMEOUT,
    "frames_dropped": defaults.REPUTATION_WEIGHT_DROPPED,
}


class Outcome(StrEnum):
    """What a node's attempt counts as for its reputation."""

    VERIFIED = "frames_verified"
    REJECTED = "frames_rejected"
    FAILED = "frames_failed"
    TIMED_OUT = "frames_timed_out"
    DROPPED = "frames_dropped"


def score(node: Node) -> float:
    prior = defaults.REPUTATION_PRIOR_FRAMES
    good = node.frames_verified + prior
    misses = sum(getattr(node, counter) * weight for counter, weight in WEIGHTS.items())
    return good / (good + misses)


def record(node: Node, outcome: Outcome) -> None:
    """Count the outcome; suspend the node if its score falls below the threshold. The caller commits."""
    setattr(node, outcome.value, getattr(node, outcome.value) + 1)
    if node.suspended_reason is None and score(node) < defaults.REPUTATION_SUSPEND_BELOW:
        threshold = defaults.REPUTATION_SUSPEND_BELOW
        node.suspended_reason = f"reputation {score(node):.2f} fell below {threshold}; awaiting admin review"


def reinstate(node: Node) -> None:
    """An admin's review: the node works again, starting from a clean slate of misses."""
    node.suspended_reason = None
    for counter in WEIGHTS:
        setattr(node, counter, 0)
