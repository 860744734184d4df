"""What a node has earned: its verified frames' releases, confirmed on chain or pending."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import and_, select

from backend.extensions import db
from backend.models import Attempt, Frame, Payment
from shared.states import PaymentKind, PaymentState


def node_earnings(node_id: str) -> dict[str, Any]:
    """Released (confirmed) and pending wei of the node's verified frames, and released wei per day."""
    rows = db.session.execute(
        select(Payment.amount_wei, Payment.state, Payment.confirmed_at)
        .join(Frame, and_(Frame.job_id == Payment.job_id, Frame.number == Payment.frame_number))
        .join(Attempt, Attempt.id == Frame.current_attempt_id)
        .where(Payment.kind == PaymentKind.RELEASE, Attempt.node_id == node_id)
    ).all()
    released = pending = 0
    by_day: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for amount, state, confirmed_at in rows:
        if state == PaymentState.CONFIRMED and confirmed_at is not None:
            released += amount
            day = by_day[confirmed_at.date().isoformat()]
            day[0] += amount
            day[1] += 1
        else:
            pending += amount
    return {
        "released_wei": str(released),
        "pending_wei": str(pending),
        "frames_paid": sum(day[1] for day in by_day.values()),
        "frames_pending": len(rows) - sum(day[1] for day in by_day.values()),
        "by_day": [{"date": d, "wei": str(v[0]), "frames": v[1]} for d, v in sorted(by_day.items())],
    }
