"""The chaos suite, small: four real nodes render with Blender while one is
SIGKILLed, one SIGSTOPped, the backend restarted and Redis restarted empty.
Nothing is lost, nothing is paid twice or to a node that dropped its frame."""

from __future__ import annotations

import json

import pytest
from chaos import run_chaos

pytestmark = pytest.mark.system


def test_nothing_is_lost_or_paid_twice_through_kills_hangs_and_restarts(tmp_path):
    report = run_chaos(frames=8, nodes=4, output_dir=tmp_path / "chaos", samples=48)
    assert report["job_state"] == "COMPLETED"
    assert report["frames_verified"] == report["frames_total"] == 8
    assert report["frames_lost"] == 0
    assert report["frames_paid"] == 8
    assert report["double_payments"] == 0
    assert report["paid_for_dropped_frames"] == 0
    assert report["paid_to_wrong_node"] == 0
    assert report["books_balance"] is True
    assert report["reassign_s"] > 0 and report["slowdown_ratio"] > 0
    assert json.loads((tmp_path / "chaos" / "report.json").read_text()) == report
