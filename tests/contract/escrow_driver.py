"""Helpers the contract tests share: named actors, an escrow driver and custom-error matching."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from eth_utils import keccak
from local_chain import LocalChain, load_artifact
from web3.contract import Contract
from web3.exceptions import ContractCustomError, ContractLogicError
from web3.logs import DISCARD
from web3.types import TxReceipt

ETHER = 10**18
FEE_BPS = 500
RELEASE_CAP_WEI = 1_000 * ETHER
PERIOD_S = 86_400
DAY_S = 86_400


@dataclass(frozen=True)
class Actor:
    address: str
    key: str


@dataclass(frozen=True)
class Actors:
    """Dev accounts by role: anvil's accounts 0-2 run the escrow, 3-4 are artists, 5-8 payees."""

    owner: Actor
    operator: Actor
    fee_recipient: Actor
    artist: Actor
    other_artist: Actor
    payees: tuple[Actor, ...]
    stranger: Actor

    @classmethod
    def of(cls, chain: LocalChain) -> Actors:
        actors = [Actor(a.address, a.key.to_0x_hex()) for a in chain.accounts]
        return cls(
            owner=actors[0],
            operator=actors[1],
            fee_recipient=actors[2],
            artist=actors[3],
            other_artist=actors[4],
            payees=tuple(actors[5:9]),
            stranger=actors[9],
        )


def _error_selectors(abi: list[dict[str, Any]]) -> dict[str, str]:
    selectors = {}
    for entry in abi:
        if entry["type"] == "error":
            signature = f"{entry['name']}({','.join(i['type'] for i in entry['inputs'])})"
            selectors["0x" + keccak(text=signature)[:4].hex()] = entry["name"]
    return selectors


ERROR_SELECTORS = _error_selectors(load_artifact("RonRenderEscrow")["abi"])


def error_name(error: ContractLogicError) -> str:
    """The custom error's name from a revert (or the raw message when it has none)."""
    data = error.data if isinstance(error.data, str) else ""
    return ERROR_SELECTORS.get(data[:10], str(error))


@contextlib.contextmanager
def reverts_with(name: str) -> Iterator[None]:
    """Expect a call or transaction to revert with the escrow's custom error `name`."""
    with pytest.raises(ContractLogicError) as caught:
        yield
    assert isinstance(caught.value, ContractCustomError), caught.value
    assert error_name(caught.value) == name


def job_id(n: int) -> bytes:
    return n.to_bytes(32, "big")


class Escrow:
    """Drives the deployed escrow as its roles would: one method per contract call."""

    def __init__(self, chain: LocalChain, address: str, actors: Actors) -> None:
        self.chain = chain
        self.address = address
        self.actors = actors
        self.contract: Contract = chain.contract(address)
        self.fn = self.contract.functions

    # views
    def view(self, name: str, *args: Any) -> Any:
        return getattr(self.fn, name)(*args).call()

    def balance_of(self, address: str) -> int:
        return self.view("balanceOf", address)

    def job(self, job: bytes) -> dict[str, Any]:
        names = (
            "artist",
            "pricePerFrame",
            "frameCount",
            "framesPaid",
            "deadline",
            "locked",
            "paid",
            "fee",
            "closed",
        )
        return dict(zip(names, self.view("getJob", job), strict=True))

    def eth_balance(self, address: str | None = None) -> int:
        return self.chain.w3.eth.get_balance(address or self.address)

    def raw_batch(self, requests: list[tuple[str, list[Any]]]) -> list[str]:
        """Send JSON-RPC requests as one batch, bypassing web3's per-call formatting (fast)."""
        responses = self.chain.w3.provider.make_batch_request(requests)
        assert isinstance(responses, list), responses
        errors = [r["error"] for r in responses if "error" in r]
        assert not errors, errors
        return [r["result"] for r in sorted(responses, key=lambda r: r["id"])]

    def call_data(self, name: str, *args: Any) -> str:
        return self.contract.encode_abi(name, list(args))

    # transactions
    def send(self, name: str, *args: Any, by: Actor, value: int = 0, gas: int | None = None) -> TxReceipt:
        return self.chain.transact(getattr(self.fn, name)(*args), by.key, value=value, gas=gas)

    def deposit(self, artist: Actor, wei: int, cap: int | None = None) -> TxReceipt:
        receipt = self.send("deposit", by=artist, value=wei)
        if cap is not None:
            self.send("setSpendingCap", cap, by=artist)
        return receipt

    def lock(
        self,
        job: bytes,
        artist: Actor,
        price: int,
        frames: int,
        deadline: int | None = None,
        by: Actor | None = None,
    ) -> TxReceipt:
        if deadline is None:
            deadline = self.chain.latest_timestamp() + DAY_S
        return self.send("lock", job, artist.address, price, frames, deadline, by=by or self.actors.operator)

    def release(self, job: bytes, frames: list[int], payees: list[str], by: Actor | None = None) -> TxReceipt:
        return self.send("releaseFrames", job, frames, payees, by=by or self.actors.operator)

    def events(self, receipt: TxReceipt, name: str) -> list[dict[str, Any]]:
        """The decoded arguments of every `name` event in the receipt (other events skipped)."""
        event = getattr(self.contract.events, name)()
        return [dict(e["args"]) for e in event.process_receipt(receipt, errors=DISCARD)]


def gas_cost(receipt: TxReceipt) -> int:
    return receipt["gasUsed"] * receipt["effectiveGasPrice"]
