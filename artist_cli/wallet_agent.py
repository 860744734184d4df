"""The wallet agent: an opened wallet kept in a background process for a while, the way
ssh-agent keeps keys, so commands sign without the keystore's password and without its
second-long opening (eth-account's import, then scrypt).

``ronrender wallet unlock`` starts one per address; ``ronrender wallet lock`` or its
deadline ends it. It signs two things only: the backend's sign-in challenge for its own
address, and job acceptances (EIP-712 ``AcceptJob``) naming its own address. It never
signs a transaction: whatever reaches it cannot move RON out of the wallet or the escrow
balance, only let the farm lock what the artist's spending cap allows.

Its socket lives in a directory only the user can enter, and it answers only processes
of the same user (SO_PEERCRED).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from artist_cli.wallet import KeystoreError, Wallet
from shared.protocol import ACCEPTANCE_DOMAIN_NAME, ACCEPTANCE_PRIMARY_TYPE, SIGN_IN_HEADLINE_END

AGENT_DIR_ENV = "RONRENDER_AGENT_DIR"
MAX_REQUEST_BYTES = 1024 * 1024
REQUEST_TIMEOUT_S = 10.0
MAX_SOCKET_PATH_BYTES = 107  # sun_path on Linux, less its terminating NUL
START_TIMEOUT_S = 30.0  # the agent imports eth-account before it answers


class AgentRefused(KeystoreError):
    """The agent would not sign this (not a sign-in or an acceptance for its address)."""


def agent_dir() -> Path:
    configured = os.environ.get(AGENT_DIR_ENV)
    return Path(configured) if configured else Path(click.get_app_dir("ronrender")) / "agents"


def socket_path(address: str) -> Path:
    return agent_dir() / f"{address.lower()}.sock"


class AgentWallet:
    """A wallet whose key an agent holds: the same signing calls as ``OpeningWallet``."""

    def __init__(self, path: Path, address: str) -> None:
        self.path = path
        self.stated_address = address.lower()
        self._address = address

    @property
    def address(self) -> str:
        return self._address

    def opened(self) -> AgentWallet:
        return self

    def sign_message(self, text: str) -> str:
        return self._ask({"op": "sign_message", "text": text})["signature"]

    def sign_typed_data(self, typed_data: dict[str, Any]) -> str:
        return self._ask({"op": "sign_typed_data", "typed_data": typed_data})["signature"]

    def lock(self) -> None:
        self._ask({"op": "lock"})

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        answer = _request(self.path, request)
        if answer is None:
            raise KeystoreError(f"the wallet agent for {self.address} has stopped (ronrender wallet unlock)")
        if "error" in answer:
            raise AgentRefused(f"the wallet agent refused: {answer['error']}")
        return answer


def find_agent(address: str | None) -> AgentWallet | None:
    """The running agent for ``address``, if there is one."""
    if not address:
        return None
    path = socket_path(address)
    answer = _request(path, {"op": "address"})
    if answer is None or str(answer.get("address", "")).lower() != address.lower():
        return None
    return AgentWallet(path, answer["address"])


def running_agents() -> list[AgentWallet]:
    agents = (find_agent(path.stem) for path in sorted(agent_dir().glob("*.sock")))
    return [agent for agent in agents if agent is not None]


def start_agent(wallet: Wallet, lifetime: timedelta) -> datetime:
    """Hand the opened wallet to a new agent (replacing one for the same address);
    returns when the agent will stop."""
    running = find_agent(wallet.address)
    if running is not None:
        running.lock()
    directory = agent_dir()
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    until = datetime.now(UTC) + lifetime
    path = socket_path(wallet.address)
    if len(os.fsencode(path)) > MAX_SOCKET_PATH_BYTES:
        raise KeystoreError(f"{path} is too long for a socket: set ${AGENT_DIR_ENV} to a shorter directory")
    process = subprocess.Popen(
        [sys.executable, "-m", "artist_cli.wallet_agent", str(path), str(until.timestamp())],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # a Ctrl-C in the terminal does not end it
        text=True,
    )
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(bytes(wallet.account.key).hex() + "\n")  # never in argv or the environment
    process.stdin.close()
    ready = _read_line_within(process, START_TIMEOUT_S)
    process.stdout.close()
    if ready != "ready":
        process.kill()
        raise KeystoreError("the wallet agent did not start")
    process.returncode = 0  # it outlives this command on purpose: nothing to reap here
    return until


def _read_line_within(process: subprocess.Popen[str], timeout_s: float) -> str:
    import selectors

    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)  # type: ignore[arg-type]
        if not selector.select(timeout_s):
            return ""
    return process.stdout.readline().strip() if process.stdout else ""


def _request(path: Path, request: dict[str, Any]) -> dict[str, Any] | None:
    """One request to the agent at ``path``; None when no agent answers there."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.settimeout(REQUEST_TIMEOUT_S)
            connection.connect(str(path))
            connection.sendall(json.dumps(request).encode() + b"\n")
            with connection.makefile("rb") as answer:
                line = answer.readline(MAX_REQUEST_BYTES)
    except OSError:  # no socket, nobody listening, or it stopped mid-answer
        return None
    try:
        parsed = json.loads(line)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


# The agent's side, in its own process.


def serve(wallet: Wallet, path: Path, deadline: float) -> None:
    """Answer requests on ``path`` until ``deadline`` (a Unix time) or a lock request."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    previous_umask = os.umask(0o177)
    try:
        listener.bind(str(path))
    finally:
        os.umask(previous_umask)
    ours = path.stat().st_ino
    listener.listen()
    print("ready", flush=True)
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    try:
        while (left := deadline - time.time()) > 0:
            listener.settimeout(min(left, 60.0))
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            with connection:
                if _peer_uid(connection) != os.getuid():
                    continue
                if _answer(connection, wallet) == "lock":
                    break
    finally:
        listener.close()
        with contextlib.suppress(OSError):
            if path.stat().st_ino == ours:  # not a newer agent's socket
                path.unlink()


def _peer_uid(connection: socket.socket) -> int:
    credentials = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", credentials)
    return uid


def _answer(connection: socket.socket, wallet: Wallet) -> str | None:
    connection.settimeout(REQUEST_TIMEOUT_S)
    try:
        with connection.makefile("rb") as incoming:
            request = json.loads(incoming.readline(MAX_REQUEST_BYTES))
        op = request.get("op") if isinstance(request, dict) else None
        answer = _reply(op, request, wallet)
        connection.sendall(json.dumps(answer).encode() + b"\n")
    except (OSError, ValueError):  # a client that went away or sent garbage
        return None
    return op if isinstance(op, str) else None


def _reply(op: object, request: dict[str, Any], wallet: Wallet) -> dict[str, Any]:
    if op == "address":
        return {"address": wallet.address}
    if op == "lock":
        return {"locked": True}
    if op == "sign_message":
        text = request.get("text")
        if not isinstance(text, str) or not _is_sign_in_for(text, wallet.address):
            return {"error": "it signs only the farm's sign-in challenge for its own address"}
        return {"signature": wallet.sign_message(text)}
    if op == "sign_typed_data":
        typed_data = request.get("typed_data")
        if not _is_acceptance_for(typed_data, wallet.address):
            return {"error": "it signs only job acceptances for its own address"}
        try:
            return {"signature": wallet.sign_typed_data(typed_data)}
        except Exception as error:  # malformed typed data: say so, keep serving
            return {"error": f"cannot sign this acceptance: {error}"}
    return {"error": f"unknown request {op!r}"}


def _is_sign_in_for(text: str, address: str) -> bool:
    lines = text.splitlines()
    return len(lines) > 1 and lines[0].endswith(SIGN_IN_HEADLINE_END) and lines[1].lower() == address.lower()


def _is_acceptance_for(typed_data: object, address: str) -> bool:
    if not isinstance(typed_data, dict):
        return False
    domain, message = typed_data.get("domain"), typed_data.get("message")
    return (
        typed_data.get("primaryType") == ACCEPTANCE_PRIMARY_TYPE
        and isinstance(domain, dict)
        and domain.get("name") == ACCEPTANCE_DOMAIN_NAME
        and isinstance(message, dict)
        and str(message.get("artist", "")).lower() == address.lower()
    )


def main(argv: list[str]) -> int:
    path, deadline = Path(argv[0]), float(argv[1])
    key = sys.stdin.readline().strip()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # leave no socket behind
    serve(Wallet(bytes.fromhex(key)), path, deadline)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
