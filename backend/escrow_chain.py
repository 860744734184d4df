"""The one module of the backend that talks to the chain: the RonRenderEscrow
contract, through web3, signed locally with the operator key.

Transactions are prepared (signed, hash known) before they are sent, so the
payments outbox can record the hash first and a crash never sends blindly twice.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from eth_abi import decode as abi_decode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak
from web3 import Web3
from web3.exceptions import ContractCustomError, ContractLogicError, TransactionNotFound, Web3RPCError
from web3.logs import DISCARD

from backend.errors import ChainRejected, ChainUnavailable

ARTIFACT_PATH = Path(__file__).resolve().parent.parent / "contracts" / "build" / "RonRenderEscrow.json"
RONIN_MAINNET_CHAIN_ID = 2020
GAS_MARGIN_PERCENT = 25
RECEIPT_POLL_S = 0.2


@dataclass(frozen=True)
class ChainConfig:
    """Where the escrow lives and who operates it."""

    rpc_url: str
    contract_address: str
    operator_key: str = field(repr=False)
    expected_chain_id: int | None = None
    confirmations: int = 0
    receipt_timeout_s: float = 120.0
    request_timeout_s: float = 10.0


@dataclass(frozen=True)
class PreparedTransaction:
    """A signed transaction: its hash is known before anything is sent."""

    tx_hash: str
    raw: str
    nonce: int


def job_key(job_id: str) -> bytes:
    """The contract's bytes32 id of a job: its 16-byte id, left-padded."""
    return bytes.fromhex(job_id).rjust(32, b"\0")


def load_artifact() -> dict[str, Any]:
    return json.loads(ARTIFACT_PATH.read_text())


def recover_signer(typed_data: dict[str, Any], signature: str) -> str:
    """The address that signed ``typed_data``; raises ValueError on a malformed signature."""
    return Account.recover_message(encode_typed_data(full_message=typed_data), signature=signature)


class EscrowChain:
    """The escrow contract as the operator sees it."""

    def __init__(self, config: ChainConfig) -> None:
        self.config = config
        self.w3 = Web3(
            Web3.HTTPProvider(config.rpc_url, request_kwargs={"timeout": config.request_timeout_s})
        )
        self.operator = Account.from_key(config.operator_key)
        artifact = load_artifact()
        self.contract = self.w3.eth.contract(
            address=Web3.to_checksum_address(config.contract_address), abi=artifact["abi"]
        )
        self._errors = {
            "0x" + keccak(text=_signature(entry)).hex()[:8]: entry
            for entry in artifact["abi"]
            if entry["type"] == "error"
        }

    @cached_property
    def chain_id(self) -> int:
        """The chain id the RPC reports; refuses to go on if it is not the configured one."""
        actual = self._rpc(lambda: self.w3.eth.chain_id)
        expected = self.config.expected_chain_id
        if expected is not None and actual != expected:
            raise ChainRejected(
                f"the RPC at {self.config.rpc_url} serves chain {actual}, not the configured {expected}"
            )
        return actual

    # Reads

    def live_chain_id(self) -> int:
        """The chain id the RPC reports now (``chain_id`` is read once and cached)."""
        return self._rpc(lambda: self.w3.eth.chain_id)

    def latest_block(self) -> dict[str, int]:
        block = self._rpc(lambda: self.w3.eth.get_block("latest"))
        return {"number": block["number"], "timestamp": block["timestamp"]}

    def balance_of(self, address: str) -> int:
        """Native RON of any address, in wei."""
        return self._rpc(lambda: self.w3.eth.get_balance(Web3.to_checksum_address(address)))

    def fee_bps(self) -> int:
        return self._rpc(lambda: self.contract.functions.feeBps().call())

    def free_balance(self, artist: str) -> int:
        return self._rpc(lambda: self.contract.functions.balanceOf(Web3.to_checksum_address(artist)).call())

    def spending_cap(self, artist: str) -> int:
        return self._rpc(lambda: self.contract.functions.spendingCap(Web3.to_checksum_address(artist)).call())

    def read_job(self, job_id: str) -> dict[str, Any]:
        values = self._rpc(lambda: self.contract.functions.getJob(job_key(job_id)).call())
        names = (
            "artist",
            "price_per_frame",
            "frame_count",
            "frames_paid",
            "deadline",
            "locked",
            "paid",
            "fee",
        )
        return {**dict(zip(names, values[:8], strict=True)), "closed": values[8]}

    def job_history(self, job_id: str) -> dict[str, Any]:
        """What the chain's events say about a job: locked, paid by payee, fee, refunded, tx hashes."""
        key = job_key(job_id)
        events = self.contract.events
        locked = self._rpc(lambda: events.Locked().get_logs(argument_filters={"jobId": key}, from_block=0))
        released = self._rpc(
            lambda: events.FrameReleased().get_logs(argument_filters={"jobId": key}, from_block=0)
        )
        closed = self._rpc(lambda: events.JobClosed().get_logs(argument_filters={"jobId": key}, from_block=0))
        paid_by_payee: dict[str, int] = {}
        for event in released:
            payee = event["args"]["payee"]
            paid_by_payee[payee] = paid_by_payee.get(payee, 0) + int(event["args"]["amount"])
        tx_hashes = [
            "0x" + e["transactionHash"].hex().removeprefix("0x") for e in [*locked, *released, *closed]
        ]
        return {
            "locked_wei": sum(int(e["args"]["amount"]) for e in locked),
            "paid_wei_by_node": paid_by_payee,
            "fee_wei": sum(int(e["args"]["fee"]) for e in closed),
            "refunded_wei": sum(int(e["args"]["refunded"]) for e in closed),
            "tx_hashes": list(dict.fromkeys(tx_hashes)),
        }

    # Writes: check with a call first (a revert becomes a clear error), then sign.

    def prepare_lock(
        self, job_id: str, artist: str, price_per_frame: int, frame_count: int, deadline: int, nonce: int
    ) -> PreparedTransaction:
        call = self.contract.functions.lock(
            job_key(job_id), Web3.to_checksum_address(artist), price_per_frame, frame_count, deadline
        )
        return self._prepare(call, nonce)

    def prepare_release(
        self, job_id: str, frame_indices: list[int], payees: list[str], nonce: int
    ) -> PreparedTransaction:
        call = self.contract.functions.releaseFrames(
            job_key(job_id), frame_indices, [Web3.to_checksum_address(p) for p in payees]
        )
        return self._prepare(call, nonce)

    def prepare_close(self, job_id: str, nonce: int) -> PreparedTransaction:
        return self._prepare(self.contract.functions.closeJob(job_key(job_id)), nonce)

    def next_nonce(self) -> int:
        return self._rpc(lambda: self.w3.eth.get_transaction_count(self.operator.address, "pending"))

    def send(self, prepared: PreparedTransaction) -> None:
        """Broadcast a prepared transaction; sending one the node already has is harmless."""
        try:
            self.w3.eth.send_raw_transaction(prepared.raw)
        except Web3RPCError as error:
            if "already known" in str(error) or "already imported" in str(error):
                return
            if "insufficient funds" in str(error).lower():
                # The platform's problem, not the artist's: wait and retry once the operator is funded.
                raise ChainUnavailable(
                    f"the operator account {self.operator.address} has too little RON for gas; "
                    "the transaction is retried once it is funded"
                ) from error
            raise ChainRejected(f"the chain refused the transaction: {error}") from error
        except (OSError, ConnectionError) as error:
            raise ChainUnavailable(f"the chain at {self.config.rpc_url} is unreachable: {error}") from error

    def receipt(self, tx_hash: str) -> dict[str, Any] | None:
        """The receipt once the transaction has its confirmations, else None."""
        try:
            receipt = self._rpc(lambda: self.w3.eth.get_transaction_receipt(tx_hash))
        except TransactionNotFound:
            return None
        if self.config.confirmations:
            head = self._rpc(lambda: self.w3.eth.block_number)
            if head - receipt["blockNumber"] + 1 < self.config.confirmations:
                return None
        return dict(receipt)

    def is_pending_or_mined(self, tx_hash: str) -> bool:
        try:
            self._rpc(lambda: self.w3.eth.get_transaction(tx_hash))
            return True
        except TransactionNotFound:
            return False

    def wait_for_receipt(self, tx_hash: str) -> dict[str, Any]:
        """Block until the transaction is mined and has its confirmations."""
        deadline = time.monotonic() + self.config.receipt_timeout_s
        while True:
            receipt = self.receipt(tx_hash)
            if receipt is not None:
                return receipt
            if time.monotonic() > deadline:
                raise ChainUnavailable(f"transaction {tx_hash} is not confirmed yet")
            time.sleep(RECEIPT_POLL_S)

    def closed_amounts(self, receipt: dict[str, Any]) -> dict[str, int]:
        for event in self.contract.events.JobClosed().process_receipt(receipt, errors=DISCARD):
            return {k: int(event["args"][k]) for k in ("paid", "fee", "refunded")}
        raise ChainRejected("the close transaction emitted no JobClosed event")

    def settled_frames(self, receipt: dict[str, Any]) -> set[int]:
        """Frame indices the receipt shows paid now or already settled before."""
        settled = set()
        for name in ("FrameReleased", "FrameAlreadySettled"):
            for event in getattr(self.contract.events, name)().process_receipt(receipt, errors=DISCARD):
                settled.add(int(event["args"]["frame"]))
        return settled

    # Internals

    def _prepare(self, call: Any, nonce: int) -> PreparedTransaction:
        sender = {"from": self.operator.address}
        try:
            gas = self._rpc(lambda: call.estimate_gas(sender))
        except (ContractCustomError, ContractLogicError) as error:
            raise ChainRejected(self.describe_revert(error)) from error
        fees = self._rpc(lambda: self.w3.eth.fee_history(1, "latest"))
        base_fee = int(fees["baseFeePerGas"][-1])
        priority = self._rpc(lambda: self.w3.eth.max_priority_fee)
        transaction = call.build_transaction(
            {
                **sender,
                "nonce": nonce,
                "chainId": self.chain_id,
                "gas": gas * (100 + GAS_MARGIN_PERCENT) // 100,
                "maxPriorityFeePerGas": priority,
                "maxFeePerGas": base_fee * 2 + priority,
            }
        )
        signed = self.operator.sign_transaction(transaction)
        return PreparedTransaction(
            tx_hash="0x" + signed.hash.hex().removeprefix("0x"),
            raw="0x" + signed.raw_transaction.hex().removeprefix("0x"),
            nonce=nonce,
        )

    def describe_revert(self, error: Exception) -> str:
        """A contract revert as a sentence, with the custom error's arguments decoded."""
        data = getattr(error, "data", None)
        entry = self._errors.get(data[:10]) if isinstance(data, str) else None
        if entry is None:
            return f"the escrow contract refused: {error}"
        types = [_type(i) for i in entry["inputs"]]
        values = abi_decode(types, bytes.fromhex(data[10:])) if types else ()
        args = dict(zip((i["name"] for i in entry["inputs"]), values, strict=True))
        if entry["name"] in {"InsufficientBalance", "SpendingCapExceeded"}:
            what = "escrow balance" if entry["name"] == "InsufficientBalance" else "spending cap"
            return (
                f"the artist's {what} is {args['available']} wei but the lock needs {args['required']} wei; "
                "deposit or raise the cap (ronrender wallet deposit), then accept again"
            )
        return f"the escrow contract refused: {entry['name']}{args or ''}"

    def _rpc(self, call: Any) -> Any:
        try:
            return call()
        except (ContractCustomError, ContractLogicError, TransactionNotFound):
            raise
        except (OSError, ConnectionError) as error:
            raise ChainUnavailable(f"the chain at {self.config.rpc_url} is unreachable: {error}") from error
        except Exception as error:
            if "Connection" in type(error).__name__ or "Timeout" in type(error).__name__:
                raise ChainUnavailable(
                    f"the chain at {self.config.rpc_url} is unreachable: {error}"
                ) from error
            raise


def _signature(entry: dict[str, Any]) -> str:
    return f"{entry['name']}({','.join(_type(i) for i in entry['inputs'])})"


def _type(item: dict[str, Any]) -> str:
    if item["type"].startswith("tuple"):
        return "(" + ",".join(_type(c) for c in item["components"]) + ")" + item["type"][5:]
    return item["type"]
