"""The one mechanism behind every state change that must happen exactly once:
a conditional UPDATE that moves a row only from the states it may leave."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm.util import identity_key

from backend.extensions import db


def move_state(
    model: type,
    row_id: object,
    from_states: Iterable[object],
    to_state: object,
    *,
    also_where: Iterable[Any] = (),
    **values: Any,
) -> bool:
    """Set ``state`` (and ``values``) on one row if its state is in ``from_states`` (and the
    ``also_where`` conditions hold); True if it moved.

    The check and the write are one statement, so of two racing callers exactly
    one sees True. A loaded copy of the row is expired, so it is read again only if
    used. The caller commits.
    """
    table = model.__table__  # the ORM's bulk-update bookkeeping is not needed here
    result = db.session.execute(
        update(table)
        .where(table.c.id == row_id, table.c.state.in_(list(from_states)), *also_where)
        .values(state=to_state, **values)
        # An ORM attribute in ``also_where`` makes it an ORM UPDATE: keep it from
        # fetching and syncing the rows it moved (a loaded copy is expired below).
        .execution_options(synchronize_session=False)
    )
    moved = result.rowcount == 1
    if moved:
        # Only a copy already loaded is stale; reading it here would often be a wasted read.
        row = db.session.identity_map.get(identity_key(model, row_id))
        if row is not None:
            db.session.expire(row)
    return moved
