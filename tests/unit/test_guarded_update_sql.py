"""A guarded state move's statement, built once per process, carries its fixed state list
in the SQL: no bound list to expand at each execution, and no value from outside in it."""

from __future__ import annotations

import pytest
from sqlalchemy.dialects import postgresql, sqlite

from backend.models import Frame, is_one_of
from backend.services.guarded_update import guarded_update
from shared.states import FrameState


@pytest.mark.parametrize("dialect", [postgresql.dialect(), sqlite.dialect()])
def test_the_states_a_row_may_leave_are_written_into_the_sql(dialect):
    statement = guarded_update(
        Frame.__table__, frozenset({FrameState.RENDERING, FrameState.ASSIGNED}), ("current_attempt_id",), ()
    )
    compiled = statement.compile(dialect=dialect)

    assert "frames.state IN ('ASSIGNED', 'RENDERING')" in str(compiled)
    assert set(compiled.params) == {"row_id", "to_state", "where_current_attempt_id"}
    assert not compiled.literal_execute_params and not compiled.post_compile_params


def test_only_state_names_are_written_into_the_sql():
    with pytest.raises(ValueError, match="not a state name"):
        is_one_of(Frame.__table__.c.state, ["PENDING", "x') OR ('1'='1"])
