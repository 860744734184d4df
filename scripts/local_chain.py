"""A throwaway local EVM chain (anvil) with the RonRender escrow deployed on it.

Ronin is an EVM chain whose native coin, RON, behaves like ether, so anvil from the pinned
`@foundry-rs/anvil` npm package stands in for it in tests and in `make up`. No bpy and no
backend import: the contract tests, the web3 gateway's tests and the local farm all use this.

    with LocalChain() as chain:
        escrow = chain.deploy_escrow(operator=chain.addresses[1], fee_recipient=chain.addresses[2])

Run as a script (`python scripts/local_chain.py --port 8545`) it keeps a chain with the escrow
deployed in the foreground and prints the address, RPC URL and dev keys as one JSON line.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import requests
from child_processes import die_with_parent, free_port
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.types import TxReceipt

ROOT = Path(__file__).resolve().parent.parent
BUILD_DIR = ROOT / "contracts" / "build"
NODE_MODULES = ROOT / "node_modules"
ESCROW_ARTIFACT = "RonRenderEscrow"

ANVIL_MNEMONIC = "test test test test test test test test test test test junk"
ANVIL_HARDFORK = "cancun"
DEFAULT_ACCOUNT_COUNT = 10
DEFAULT_ACCOUNT_BALANCE_ETH = 10_000
STARTUP_TIMEOUT_S = 20.0
START_ATTEMPTS = 3
STOP_TIMEOUT_S = 5.0
RPC_TIMEOUT_S = 10.0

DEFAULT_FEE_BPS = 500
DEFAULT_RELEASE_CAP_WEI = 1_000 * 10**18
DEFAULT_RELEASE_PERIOD_S = 86_400
# Anvil's base fee only falls while blocks are nearly empty, so a fixed ceiling always clears.
MAX_FEE_PER_GAS_WEI = 50 * 10**9
MAX_PRIORITY_FEE_PER_GAS_WEI = 10**9


class ChainError(RuntimeError):
    """Anvil could not be found, started or reached."""


def find_anvil() -> Path:
    """The anvil binary from node_modules (the platform package first: it skips node's wrapper)."""
    machine = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower(), platform.machine().lower()
    )
    system = {"linux": "linux", "darwin": "darwin", "windows": "win32"}[platform.system().lower()]
    binary = "anvil.exe" if system == "win32" else "anvil"
    candidates = [
        NODE_MODULES / "@foundry-rs" / f"anvil-{system}-{machine}" / "bin" / binary,
        NODE_MODULES / ".bin" / "anvil",
    ]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    on_path = shutil.which("anvil")
    if on_path:
        return Path(on_path)
    raise ChainError(f"anvil not found under {NODE_MODULES}: run `npm ci` in {ROOT}")


def load_artifact(name: str = ESCROW_ARTIFACT) -> dict[str, Any]:
    """A compiled contract from contracts/build/ (written by scripts/compile_contract.mjs)."""
    path = BUILD_DIR / f"{name}.json"
    if not path.is_file():
        raise ChainError(f"{path} is missing: run `node scripts/compile_contract.mjs`")
    return json.loads(path.read_text())


@functools.lru_cache(maxsize=256)
def account_for(key: str) -> LocalAccount:
    """The account of a private key (cached: deriving the address is slow in pure Python)."""
    return Account.from_key(key)


class LocalChain:
    """An anvil process on loopback with instant mining and deterministic dev accounts."""

    def __init__(
        self,
        port: int | None = None,
        *,
        host: str = "127.0.0.1",
        accounts: int = DEFAULT_ACCOUNT_COUNT,
        balance_eth: int = DEFAULT_ACCOUNT_BALANCE_ETH,
        hardfork: str = ANVIL_HARDFORK,
        startup_timeout_s: float = STARTUP_TIMEOUT_S,
    ) -> None:
        self.host = host
        self.port = port
        self.account_count = accounts
        self.balance_eth = balance_eth
        self.hardfork = hardfork
        self.startup_timeout_s = startup_timeout_s
        self.chain_id = 0
        self.private_keys: list[str] = []
        self.accounts: list[LocalAccount] = []
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self._w3: Web3 | None = None
        self._session: requests.Session | None = None

    # -------------------------------------------------------------- lifecycle

    @property
    def rpc_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def w3(self) -> Web3:
        if self._w3 is None:
            raise ChainError("the chain is not running: call start()")
        return self._w3

    @property
    def running(self) -> bool:
        """True while the anvil process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def addresses(self) -> list[str]:
        """Checksummed addresses of the dev accounts, in anvil's order."""
        return [account.address for account in self.accounts]

    def start(self) -> LocalChain:
        """Start anvil and wait until its RPC answers (on a free port unless one was given)."""
        if self._process is not None:
            return self
        pick_port = self.port is None
        for attempt in range(1, START_ATTEMPTS + 1):
            if pick_port:
                self.port = free_port(self.host)
            try:
                self._launch()
                return self
            except ChainError:
                self.stop()
                # Another process may have taken the free port first: try another one.
                if not pick_port or attempt == START_ATTEMPTS:
                    raise
            except BaseException:
                self.stop()
                raise
        raise AssertionError("unreachable")

    def _launch(self) -> None:
        self._workdir = tempfile.TemporaryDirectory(prefix="ronrender-anvil-")
        config_out = Path(self._workdir.name) / "anvil.json"
        command = [
            str(find_anvil()),
            "--host", self.host,
            "--port", str(self.port),
            "--accounts", str(self.account_count),
            "--balance", str(self.balance_eth),
            "--mnemonic", ANVIL_MNEMONIC,
            "--hardfork", self.hardfork,
            "--config-out", str(config_out),
            "--silent",
        ]  # fmt: skip
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGTERM),
        )
        self._wait_until_ready(config_out)

    def _wait_until_ready(self, config_out: Path) -> None:
        session = self._session = requests.Session()
        session.trust_env = False  # loopback: never a proxy (and no proxy lookup per request)
        w3 = Web3(Web3.HTTPProvider(self.rpc_url, request_kwargs={"timeout": RPC_TIMEOUT_S}, session=session))
        deadline = time.monotonic() + self.startup_timeout_s
        assert self._process is not None
        while True:
            if self._process.poll() is not None:
                stderr = self._process.stderr.read().decode(errors="replace") if self._process.stderr else ""
                raise ChainError(f"anvil exited with {self._process.returncode}: {stderr.strip()}")
            try:
                if config_out.is_file():
                    config = json.loads(config_out.read_text())
                    genesis = w3.eth.get_block(0)["timestamp"]
                    break
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise ChainError(f"anvil did not answer on {self.rpc_url} within {self.startup_timeout_s} s")
            time.sleep(0.05)
        # Make sure the chain that answers is ours, not another process on the same port.
        if self._process.poll() is not None or genesis != int(config["genesis_timestamp"]):
            raise ChainError(f"another chain answers on {self.rpc_url}")
        self.chain_id = w3.eth.chain_id
        self.private_keys = list(config["private_keys"])
        self.accounts = [account_for(key) for key in self.private_keys]
        self._w3 = w3

    def stop(self) -> None:
        """Stop anvil (TERM, then KILL) and forget the chain."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process is not None and process.stderr is not None:
            process.stderr.close()
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None
        if self._session is not None:
            self._session.close()
            self._session = None
        self._w3 = None

    def __enter__(self) -> LocalChain:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -------------------------------------------------------------- chain control

    def rpc(self, method: str, *params: Any) -> Any:
        """Call a raw JSON-RPC method (anvil_*, evm_*) and return its result."""
        return self.w3.manager.request_blocking(method, list(params))

    def snapshot(self) -> str:
        return self.rpc("evm_snapshot")

    def revert(self, snapshot_id: str) -> None:
        """Roll back to a snapshot (which anvil then forgets)."""
        if not self.rpc("evm_revert", snapshot_id):
            raise ChainError(f"unknown snapshot {snapshot_id}")

    def mine(self) -> None:
        self.rpc("evm_mine")

    def latest_timestamp(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def increase_time(self, seconds: int) -> None:
        """Move the clock forward and mine a block, so `latest` shows the new time."""
        self.rpc("evm_increaseTime", seconds)
        self.mine()

    def set_next_block_timestamp(self, timestamp: int) -> None:
        self.rpc("evm_setNextBlockTimestamp", timestamp)

    def fund(self, address: str, wei: int) -> None:
        """Add `wei` to an account's balance (no transaction, no gas)."""
        address = Web3.to_checksum_address(address)
        self.rpc("anvil_setBalance", address, hex(self.w3.eth.get_balance(address) + wei))

    # -------------------------------------------------------------- transactions

    def key_of(self, address: str) -> str:
        """The private key of a dev account."""
        return self.private_keys[self.addresses.index(Web3.to_checksum_address(address))]

    def transact(
        self, function: ContractFunction, key: str, *, value: int = 0, gas: int | None = None
    ) -> TxReceipt:
        """Sign a contract call locally (EIP-1559), send it and return its receipt.

        A call that would revert raises web3's ContractLogicError (ContractCustomError for a
        custom error) from gas estimation, before anything is sent.
        """
        sender = account_for(key).address
        fields: dict[str, Any] = {
            "from": sender,
            "value": value,
            "chainId": self.chain_id,
            "nonce": self.w3.eth.get_transaction_count(sender, "pending"),
            "maxFeePerGas": MAX_FEE_PER_GAS_WEI,
            "maxPriorityFeePerGas": MAX_PRIORITY_FEE_PER_GAS_WEI,
        }
        if gas is not None:
            fields["gas"] = gas
        return self._send(function.build_transaction(fields), key)

    def send_value(self, key: str, to: str, wei: int) -> TxReceipt:
        """A plain transfer of native coin, signed locally."""
        sender = account_for(key).address
        tx = {
            "from": sender,
            "to": Web3.to_checksum_address(to),
            "value": wei,
            "chainId": self.chain_id,
            "nonce": self.w3.eth.get_transaction_count(sender, "pending"),
            "maxFeePerGas": MAX_FEE_PER_GAS_WEI,
            "maxPriorityFeePerGas": MAX_PRIORITY_FEE_PER_GAS_WEI,
        }
        tx["gas"] = self.w3.eth.estimate_gas(tx)
        return self._send(tx, key)

    def _send(self, tx: dict[str, Any], key: str) -> TxReceipt:
        signed = Account.sign_transaction(tx, key)
        tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=RPC_TIMEOUT_S, poll_latency=0.01)
        if receipt["status"] != 1:
            # Replay it on the state and clock of its block so web3 raises the real revert error.
            call = {k: tx[k] for k in ("from", "to", "value", "data") if k in tx}
            self.w3.eth.call(call, receipt["blockNumber"])
            raise ChainError(f"transaction {tx_hash.to_0x_hex()} reverted")
        return receipt

    def deploy(self, artifact: str, *args: Any, key: str | None = None) -> str:
        """Deploy a compiled contract from contracts/build/; returns its checksummed address."""
        built = load_artifact(artifact)
        factory = self.w3.eth.contract(abi=built["abi"], bytecode=built["bytecode"])
        receipt = self.transact(factory.constructor(*args), key or self.private_keys[0])
        return Web3.to_checksum_address(receipt["contractAddress"])

    def deploy_escrow(
        self,
        operator: str,
        fee_recipient: str,
        fee_bps: int = DEFAULT_FEE_BPS,
        release_cap_per_period: int = DEFAULT_RELEASE_CAP_WEI,
        period_seconds: int = DEFAULT_RELEASE_PERIOD_S,
        *,
        key: str | None = None,
    ) -> str:
        """Deploy RonRenderEscrow; the deployer (dev account 0 unless `key`) becomes its owner."""
        return self.deploy(
            ESCROW_ARTIFACT,
            Web3.to_checksum_address(operator),
            Web3.to_checksum_address(fee_recipient),
            fee_bps,
            release_cap_per_period,
            period_seconds,
            key=key,
        )

    def contract(self, address: str, artifact: str = ESCROW_ARTIFACT) -> Contract:
        """A web3 contract object for a deployed contract."""
        return self.w3.eth.contract(
            address=Web3.to_checksum_address(address), abi=load_artifact(artifact)["abi"]
        )


def main(argv: list[str] | None = None) -> int:
    """Run a chain with the escrow deployed until interrupted; print its details as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8545)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--fee-bps", type=int, default=DEFAULT_FEE_BPS)
    parser.add_argument("--release-cap-wei", type=int, default=DEFAULT_RELEASE_CAP_WEI)
    parser.add_argument("--period-seconds", type=int, default=DEFAULT_RELEASE_PERIOD_S)
    args = parser.parse_args(argv)

    chain = LocalChain(args.port, host=args.host)
    stop_requested = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    with chain:
        owner, operator, fee_recipient = chain.accounts[:3]
        escrow = chain.deploy_escrow(
            operator.address,
            fee_recipient.address,
            args.fee_bps,
            args.release_cap_wei,
            args.period_seconds,
            key=owner.key.to_0x_hex(),
        )
        details = {
            "rpc_url": chain.rpc_url,
            "chain_id": chain.chain_id,
            "escrow_address": escrow,
            "owner": {"address": owner.address, "private_key": owner.key.to_0x_hex()},
            "operator": {"address": operator.address, "private_key": operator.key.to_0x_hex()},
            "fee_recipient": {"address": fee_recipient.address, "private_key": fee_recipient.key.to_0x_hex()},
            "accounts": [
                {"address": account.address, "private_key": account.key.to_0x_hex()}
                for account in chain.accounts
            ],
        }
        print(json.dumps(details), flush=True)
        while not stop_requested:
            if not chain.running:
                print("anvil exited unexpectedly", file=sys.stderr)
                return 1
            time.sleep(0.2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
