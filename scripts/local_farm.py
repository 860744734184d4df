"""A local farm on this machine: a local EVM dev chain with the escrow contract
deployed, database migrations, the backend (gunicorn), RQ workers, the sweeper
and render nodes, each a child process, all stopped together. The artist's wallet (an
encrypted keystore) is created and funded through the `ronrender wallet` CLI,
and each node gets its own payout address.

``python scripts/local_farm.py`` (what ``make up`` runs) keeps one running in the
foreground until Ctrl-C; ``scripts/demo.py`` uses the same ``LocalFarm``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import requests
from eth_account import Account
from local_chain import LocalChain

VENV_BIN = Path(sys.executable).parent
STARTUP_TIMEOUT_S = 60.0
STOP_GRACE_S = 20.0
# Dev-chain only: the artist's keystore password and the RON each artist deposits.
LOCAL_KEYSTORE_PASSWORD = "local-farm"
ARTIST_DEPOSIT_RON = "100"
# Dev accounts: 0 owns the contract, 1 operates it, 2 takes the fee, 3 is the artist, 4+ are nodes.
OWNER, OPERATOR, FEE_RECIPIENT, ARTIST, FIRST_NODE = range(5)
# The nodes render on this same machine: the farm's background work (verification,
# payments, analysis, sweeps) yields the CPU to Blender, and fills the moments it leaves
# idle. The web tier stays at 0: a node's upload and claim wait on it between frames.
BACKGROUND_NICENESS = int(os.environ.get("RONRENDER_LOCAL_BACKGROUND_NICENESS", "5"))


class LocalFarm:
    """Start with ``with LocalFarm(...) as farm:``; everything stops on exit."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int = 8000,
        nodes: int = 2,
        workers: int = 2,
        node_threads: int = 0,
        redis_url: str = "redis://127.0.0.1:6379/0",
        queue_prefix: str = "ronrender",
        database_url: str | None = None,
        heartbeat_interval_s: float = 15.0,
        offline_after_s: float = 180.0,
        sweep_interval_s: float = 10.0,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self.nodes = nodes
        self.workers = workers
        self.node_threads = node_threads
        self.url = f"http://127.0.0.1:{port}"
        self.heartbeat_interval_s = heartbeat_interval_s
        self.env = dict(os.environ)
        self.env.update(
            {
                "RONRENDER_DATA_DIR": str(self.data_dir),
                "RONRENDER_REDIS_URL": redis_url,
                "RONRENDER_QUEUE_PREFIX": queue_prefix,
                "RONRENDER_URL": self.url,
                "RONRENDER_OFFLINE_AFTER_S": str(offline_after_s),
                "RONRENDER_SWEEP_INTERVAL_S": str(sweep_interval_s),
                "PYTHONUNBUFFERED": "1",
            }
        )
        self.env.update(extra_env or {})  # e.g. RONRENDER_SPOT_CHECK_RATE for a test
        if database_url:
            self.env["RONRENDER_DATABASE_URL"] = database_url
        self.queue_prefix = queue_prefix
        self.redis_url = redis_url
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.commands: dict[str, list[str]] = {}
        self.log_dir = self.data_dir / "logs"
        self.chain: LocalChain | None = None
        self.escrow_address = ""
        self.artist_keystore = self.data_dir / "artist-keystore.json"
        self.payout_addresses: list[str] = []
        self.password_file = self.data_dir / "keystore-password"
        # Scripts and tests read every job and node through the admin role.
        self.admin_token = secrets.token_urlsafe(32)
        self.env["RONRENDER_ADMIN_TOKEN"] = self.admin_token
        # The artist CLI keeps its sessions with this farm, not in the user's own file.
        self.env["RONRENDER_SESSIONS_FILE"] = str(self.data_dir / "artist-sessions.json")

    def __enter__(self) -> LocalFarm:
        try:
            self.start()
        except BaseException:
            self.stop()  # __exit__ will not run: stop what did start
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _spawn(self, name: str, argv: list[str], *, niceness: int = 0) -> None:
        if niceness:
            argv = ["nice", "-n", str(niceness), *argv]
        self.commands[name] = argv
        with open(self.log_dir / f"{name}.log", "ab") as log:
            self.processes[name] = subprocess.Popen(
                argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def restart(self, name: str, sig: signal.Signals = signal.SIGKILL) -> None:
        """Stop one process of the farm (KILL by default) and start it again."""
        process = self.processes[name]
        if process.poll() is None:
            os.killpg(process.pid, sig)
            process.wait()
        self._spawn(name, self.commands[name])
        if name == "backend":
            self._wait_for_backend()

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.password_file.write_text(LOCAL_KEYSTORE_PASSWORD)
        self.password_file.chmod(0o600)
        self._start_chain()
        subprocess.run(
            [str(VENV_BIN / "flask"), "--app", "backend", "db", "upgrade"],
            env=self.env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._spawn(
            "backend",
            [
                str(VENV_BIN / "gunicorn"),
                "--bind", f"127.0.0.1:{self.port}",
                "--workers", "2",
                "--threads", "4",
                "--timeout", "600",
                "backend.wsgi:app",
            ],
        )  # fmt: skip
        queues = [f"{self.queue_prefix}-{name}" for name in ("escrow", "verification", "analysis")]
        for index in range(self.workers):
            self._spawn(
                f"worker-{index + 1}",
                [
                    str(VENV_BIN / "rq"), "worker",
                    "--url", self.redis_url,
                    "--worker-class", "backend.worker.WarmWorker",
                    "--with-scheduler",
                    *queues,
                ],
                niceness=BACKGROUND_NICENESS,
            )  # fmt: skip
        self._spawn("sweeper", [str(VENV_BIN / "ronrender-sweeper")], niceness=BACKGROUND_NICENESS)
        self._wait_for_backend()
        self._fund_artist()
        for index in range(self.nodes):
            name = f"local-node-{index + 1}"
            self._spawn(
                name,
                [
                    str(VENV_BIN / "ronrender-node"), "run",
                    "--backend", self.url,
                    "--name", name,
                    "--wallet-keystore", str(self._node_keystore(index)),
                    "--wallet-password-file", str(self.password_file),
                    "--work-dir", str(self.data_dir / "nodes" / name),
                    "--threads", str(self.node_threads),
                    "--heartbeat-interval", str(self.heartbeat_interval_s),
                ],
            )  # fmt: skip

    def _start_chain(self) -> None:
        """Anvil with the escrow deployed; the backend gets the operator's dev key."""
        self.chain = LocalChain(accounts=FIRST_NODE + max(self.nodes, 1)).start()
        accounts = self.chain.accounts
        self.escrow_address = self.chain.deploy_escrow(
            accounts[OPERATOR].address, accounts[FEE_RECIPIENT].address, key=accounts[OWNER].key.to_0x_hex()
        )
        self.payout_addresses = [account.address for account in accounts[FIRST_NODE:]]
        self.env.update(
            {
                "RONRENDER_CHAIN_RPC_URL": self.chain.rpc_url,
                "RONRENDER_CHAIN_ID": str(self.chain.chain_id),
                "RONRENDER_ESCROW_ADDRESS": self.escrow_address,
                "RONRENDER_OPERATOR_KEY": accounts[OPERATOR].key.to_0x_hex(),
                "RONRENDER_KEYSTORE": str(self.artist_keystore),
                "RONRENDER_KEYSTORE_PASSWORD": LOCAL_KEYSTORE_PASSWORD,
            }
        )

    def _node_keystore(self, index: int) -> Path:
        """Each node's payout wallet as an encrypted keystore, as a provider would keep it."""
        assert self.chain is not None
        keystore = self.data_dir / "nodes" / f"wallet-{index + 1}.json"
        if not keystore.exists():
            keystore.parent.mkdir(parents=True, exist_ok=True)
            account = self.chain.accounts[FIRST_NODE + index]
            keystore.write_text(json.dumps(Account.encrypt(account.key, LOCAL_KEYSTORE_PASSWORD)))
            keystore.chmod(0o600)
        return keystore

    def _fund_artist(self) -> None:
        """The artist's wallet, made and funded the way an artist would: with the CLI."""
        assert self.chain is not None
        artist = self.chain.accounts[ARTIST]
        self.artist_keystore.write_text(json.dumps(Account.encrypt(artist.key, LOCAL_KEYSTORE_PASSWORD)))
        subprocess.run(
            [
                str(VENV_BIN / "ronrender"),
                "wallet",
                "deposit",
                ARTIST_DEPOSIT_RON,
                "--cap",
                ARTIST_DEPOSIT_RON,
            ],
            env=self.env,
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def admin_get(self, path: str, timeout_s: float = 30) -> Any:
        """GET an API path as the farm's admin (scripts and tests read everything)."""
        headers = {"Authorization": f"Bearer {self.admin_token}"}
        response = requests.get(self.url + path, headers=headers, timeout=timeout_s)
        response.raise_for_status()
        return response.json()

    def wait_for_nodes(self, timeout_s: float = STARTUP_TIMEOUT_S) -> None:
        """Until every node of the farm has registered and is ONLINE."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            dead = [name for name, process in self.processes.items() if process.poll() is not None]
            if dead:
                raise RuntimeError(f"{', '.join(dead)} exited; see {self.log_dir}")
            nodes = self.admin_get("/api/v1/admin/nodes")["nodes"]
            if sum(node["state"] == "ONLINE" for node in nodes) >= self.nodes:
                return
            time.sleep(0.2)
        raise RuntimeError(f"the farm's {self.nodes} nodes did not come online")

    def _wait_for_backend(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.processes["backend"].poll() is not None:
                raise RuntimeError(f"the backend exited; see {self.log_dir / 'backend.log'}")
            try:
                if requests.get(self.url + "/openapi.json", timeout=5).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the backend did not answer on {self.url}")

    def stop(self) -> None:
        """TERM nodes first (they hand their frames back), then workers and the backend."""
        for process in reversed(list(self.processes.values())):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                os.killpg(process.pid, signal.SIGCONT)  # a stopped (hung) process must wake to exit
        deadline = time.monotonic() + STOP_GRACE_S
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.processes.clear()
        if self.chain is not None:
            self.chain.stop()
            self.chain = None


def main() -> int:
    parser = argparse.ArgumentParser(description="Run a local RonRender farm until Ctrl-C.")
    parser.add_argument("--data-dir", type=Path, default=Path(".ronrender/farm"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("RONRENDER_PORT", 8000)))
    parser.add_argument("--nodes", type=int, default=2)
    args = parser.parse_args()
    stop = False

    def on_signal(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with LocalFarm(args.data_dir, port=args.port, nodes=args.nodes) as farm:
        print(f"RonRender farm at {farm.url} with {args.nodes} nodes; logs in {farm.log_dir}")
        print(
            f"Submit from another terminal: RONRENDER_URL={farm.url} .venv/bin/ronrender submit SCENE.blend"
        )
        print("Ctrl-C stops everything.")
        while not stop:
            for name, process in farm.processes.items():
                if process.poll() is not None:
                    print(f"{name} exited with code {process.returncode}; stopping the farm")
                    stop = True
            time.sleep(0.5)
    print("farm stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
