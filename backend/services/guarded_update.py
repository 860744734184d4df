"""The one mechanism behind every state change that must happen exactly once:
a conditional UPDATE that moves a row only from the states it may leave."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Table, Update, bindparam, update
from sqlalchemy.orm.util import identity_key

from backend.extensions import db
from backend.models import is_one_of


def move_state(
    model: type,
    row_id: object,
    from_states: Iterable[object],
    to_state: object,
    *,
    also_equal: Mapping[str, object] | None = None,
    **values: Any,
) -> bool:
    """Set ``state`` (and ``values``) on one row if its state is in ``from_states`` (and
    each column named in ``also_equal`` holds the given value, never None); True if it moved.

    The check and the write are one statement, so of two racing callers exactly
    one sees True. A loaded copy of the row is expired, so it is read again only if
    used. The caller commits.
    """
    also_equal = also_equal or {}
    statement = guarded_update(model.__table__, frozenset(from_states), tuple(also_equal), tuple(values))
    moved = db.session.execute(statement, move_parameters(row_id, to_state, also_equal, values)).rowcount == 1
    if moved:
        expire_loaded(model, row_id)
    return moved


def expire_loaded(model: type, row_id: object) -> None:
    """Expire the session's copy of a row a statement just moved, if one is loaded: only
    a loaded copy is stale, and reading the row here would often be a wasted read."""
    row = db.session.identity_map.get(identity_key(model, row_id))
    if row is not None:
        db.session.expire(row)


def move_parameters(
    row_id: object, to_state: object, also_equal: Mapping[str, object], values: Mapping[str, Any]
) -> dict[str, Any]:
    """The bound values of ``guarded_update``'s statement for one move."""
    assert None not in also_equal.values(), "= NULL matches no row: leave the column out instead"
    return {
        "row_id": row_id,
        "to_state": to_state,
        **{f"where_{column}": value for column, value in also_equal.items()},
        **{f"set_{column}": value for column, value in values.items()},
    }


@functools.cache
def guarded_update(
    table: Table, from_states: frozenset[object], where_columns: tuple[str, ...], set_columns: tuple[str, ...]
) -> Update:
    """The statement for one shape of move (its values from ``move_parameters``), built
    once per process: building and keying a statement on every call cost about 0.15 ms,
    on every claim, upload and verdict."""
    columns = table.c
    return (
        update(table)
        .where(
            columns.id == bindparam("row_id"),
            is_one_of(columns.state, from_states),
            *(columns[name] == bindparam(f"where_{name}") for name in where_columns),
        )
        .values(
            {
                columns.state: bindparam("to_state", type_=columns.state.type),
                **{columns[name]: bindparam(f"set_{name}", type_=columns[name].type) for name in set_columns},
            }
        )
    )
