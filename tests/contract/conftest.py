"""Fixtures for the contract tier: one anvil chain per session with the escrow deployed once,
and every test run inside an EVM snapshot that is reverted afterwards."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from local_chain import LocalChain

from tests.contract.escrow_driver import FEE_BPS, PERIOD_S, RELEASE_CAP_WEI, Actors, Escrow


@pytest.fixture(scope="session")
def actors(chain: LocalChain) -> Actors:
    return Actors.of(chain)


@pytest.fixture(scope="session")
def escrow_address(chain: LocalChain, actors: Actors) -> str:
    return chain.deploy_escrow(
        actors.operator.address,
        actors.fee_recipient.address,
        FEE_BPS,
        RELEASE_CAP_WEI,
        PERIOD_S,
        key=actors.owner.key,
    )


@pytest.fixture
def clean_chain(chain: LocalChain, escrow_address: str) -> Iterator[LocalChain]:
    """The session chain, rolled back to the freshly deployed escrow after the test."""
    snapshot = chain.snapshot()
    try:
        yield chain
    finally:
        chain.revert(snapshot)


@pytest.fixture
def escrow(clean_chain: LocalChain, escrow_address: str, actors: Actors) -> Escrow:
    return Escrow(clean_chain, escrow_address, actors)
