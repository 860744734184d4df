"""The node tier borrows the whole-system tier's farm for its tests against a live backend."""

from tests.system.conftest import start_farm  # noqa: F401
