"""What a wallet accepts to sign as a job's acceptance: exactly the canonical EIP-712
struct (types, primary type, domain), so that the fields it checks are the ones signed."""

from __future__ import annotations

import copy

import pytest

from shared.protocol import acceptance_fields, acceptance_typed_data

pytestmark = pytest.mark.unit

CONTRACT = "0x" + "5f" * 20


def acceptance() -> dict:
    return acceptance_typed_data(
        chain_id=2020,
        contract_address=CONTRACT,
        job_id="ab" * 16,
        artist="0x" + "22" * 20,
        total_wei=10**18,
        frame_count=12,
    )


def altered(change) -> dict:
    typed = copy.deepcopy(acceptance())
    change(typed)
    return typed


def test_an_acceptance_gives_its_fields():
    assert acceptance_fields(acceptance()) == acceptance()["message"]
    pinned = acceptance_fields(
        acceptance(), chain_id=2020, contract_address=CONTRACT.upper().replace("0X", "0x")
    )
    assert pinned is not None and pinned["frameCount"] == 12


@pytest.mark.parametrize(
    "typed",
    [
        altered(lambda t: t["types"]["AcceptJob"].pop()),
        altered(lambda t: t["types"].update(Permit=[{"name": "value", "type": "uint256"}])),
        altered(lambda t: t.update(primaryType="EIP712Domain")),
        altered(lambda t: t["domain"].update(name="SomeToken")),
        altered(lambda t: t["domain"].update(version="2")),
        altered(lambda t: t["domain"].pop("verifyingContract")),
        altered(lambda t: t["message"].update(extra=1)),
        altered(lambda t: t.update(extra=1)),
        "not typed data",
        {},
    ],
)
def test_anything_else_is_not_an_acceptance(typed):
    assert acceptance_fields(typed) is None


def test_another_chain_or_contract_is_refused_when_pinned():
    assert acceptance_fields(acceptance(), chain_id=31337) is None
    assert acceptance_fields(acceptance(), contract_address="0x" + "11" * 20) is None
