"""The wallet agent: an opened wallet kept in a background process for a while, the way
ssh-agent keeps keys, so commands sign without the keystore's password and without its
second-long opening (eth-account's import, then scrypt).

``ronrender wallet unlock`` starts one per address, for one farm; ``ronrender wallet
lock`` or its deadline ends it. It signs two things only, and checks them whole: that
farm's sign-in challenge for its own address, and job acceptances (EIP-712 ``AcceptJob``
in the farm's chain and escrow contract) naming its own address. It never signs a
transaction: whatever reaches it cannot move RON out of the wallet or the escrow
balance, only let the farm lock what the artist's spending cap allows.

Linux only: its socket lives in a directory only the user can enter, both ends check
the other is the same user (SO_PEERCRED), and the process cannot be traced or dumped.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import selectors
import signal
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from artist_cli.wallet import PASSWORD_ENV, TOKEN_ENV, KeystoreError, Wallet
from shared.protocol import acceptance_fields, is_sign_in_message

AGENT_DIR_ENV = "RONRENDER_AGENT_DIR"
SUPPORTED = hasattr(socket, "AF_UNIX") and hasattr(socket, "SO_PEERCRED")
MAX_SOCKET_PATH_BYTES = 107  # sun_path on Linux, less its terminating NUL
# Requests and answers are a few hundred bytes. Bounding them bounds JSON nesting too:
# eth-account raises Python's recursion limit so far that deep JSON would overflow the C stack.
MAX_MESSAGE_BYTES = 4096
PROBE_TIMEOUT_S = 1.0  # a busy or stuck agent must not hold up every command
REQUEST_TIMEOUT_S = 10.0
ANSWER_WITHIN_S = 2.0  # a client gets this long, in all, to send its request
START_TIMEOUT_S = 30.0  # the agent imports eth-account before it answers
STOP_TIMEOUT_S = 5.0
PR_SET_DUMPABLE = 4


class AgentRefused(KeystoreError):
    """The agent would not sign this (not a sign-in or an acceptance for its farm and address)."""


@dataclass(frozen=True)
class Farm:
    """What an agent signs for: one backend, its chain and its escrow contract."""

    url: str
    chain_id: int
    contract_address: str

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc


def agent_dir() -> Path:
    """Where the agents' sockets live (``$RONRENDER_AGENT_DIR``, else the CLI's config dir)."""
    configured = os.environ.get(AGENT_DIR_ENV)
    return Path(configured) if configured else Path(click.get_app_dir("ronrender")) / "agents"


def socket_path(address: str) -> Path:
    return agent_dir() / f"{address.lower()}.sock"


def _pid_path(address: str) -> Path:
    return socket_path(address).with_suffix(".pid")


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
        """Itself, once the agent answers (no job is made for an agent that has stopped)."""
        self._ask({"op": "hello"})
        return self

    def sign_message(self, text: str) -> str:
        return self._ask({"op": "sign_message", "text": text})["signature"]

    def sign_typed_data(self, typed_data: dict[str, Any]) -> str:
        return self._ask({"op": "sign_typed_data", "typed_data": typed_data})["signature"]

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        answer = _request(self.path, request, REQUEST_TIMEOUT_S)
        if answer is None:
            raise KeystoreError(f"the wallet agent for {self.address} has stopped (ronrender wallet unlock)")
        if "error" in answer:
            raise AgentRefused(f"the wallet agent refused: {answer['error']}")
        return answer


def find_agent(address: str | None, farm_url: str) -> AgentWallet | None:
    """The running agent for ``address`` that signs for the farm at ``farm_url``, if any."""
    if not address or not SUPPORTED:
        return None
    path = socket_path(address)
    answer = _request(path, {"op": "hello"}, PROBE_TIMEOUT_S)
    if answer is None or str(answer.get("address", "")).lower() != address.lower():
        return None
    if str(answer.get("farm_url")).rstrip("/") != farm_url.rstrip("/"):
        return None  # unlocked for another farm: this one asks for the password
    return AgentWallet(path, answer["address"])


def start_agent(wallet: Wallet, farm: Farm, lifetime: timedelta) -> datetime:
    """Hand the opened wallet to a new agent for ``farm`` (stopping one the address had);
    returns when the agent will stop."""
    if not SUPPORTED:
        raise KeystoreError("the wallet agent needs Linux (Unix sockets with SO_PEERCRED)")
    path = socket_path(wallet.address)
    if len(os.fsencode(path)) > MAX_SOCKET_PATH_BYTES:
        raise KeystoreError(f"{path} is too long for a socket: set ${AGENT_DIR_ENV} to a shorter directory")
    directory = agent_dir()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if directory.is_symlink() or directory.lstat().st_uid != os.getuid():
        raise KeystoreError(f"{directory} is not a directory of your own")
    directory.chmod(0o700)
    stop_agent(wallet.address)
    until = datetime.now(UTC) + lifetime
    environment = {key: value for key, value in os.environ.items() if key not in (PASSWORD_ENV, TOKEN_ENV)}
    arguments = [
        str(path),
        str(until.timestamp()),
        farm.url.rstrip("/"),
        str(farm.chain_id),
        farm.contract_address,
    ]
    process = subprocess.Popen(
        # -P and cwd "/": no module of the current directory shadows one the agent imports.
        [sys.executable, "-P", "-m", "artist_cli.wallet_agent", *arguments],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd="/",
        env=environment,
        start_new_session=True,  # a Ctrl-C in the terminal does not end it
        text=True,
    )
    assert process.stdin is not None and process.stdout is not None
    with process.stdin:
        process.stdin.write(bytes(wallet.account.key).hex() + "\n")  # never in argv or the environment
    ready = _read_line_within(process, START_TIMEOUT_S)
    process.stdout.close()
    if ready != "ready":
        process.kill()
    process.wait()  # it forked the agent and exited: the agent is nobody's child to reap
    if ready != "ready":
        raise KeystoreError("the wallet agent did not start")
    return until


def stop_agent(address: str) -> bool:
    """Stop the agent of ``address``, answering or not; whether one ran."""
    pid_path = _pid_path(address)
    try:
        pid = int(pid_path.read_text())
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return False
    if b"artist_cli.wallet_agent" not in command:  # a stale file naming a reused pid
        pid_path.unlink(missing_ok=True)
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return True


def stop_all_agents() -> int:
    """Stop every agent of this user; how many ran."""
    return sum(stop_agent(path.stem) for path in sorted(agent_dir().glob("*.pid")))


def _read_line_within(process: subprocess.Popen[str], timeout_s: float) -> str:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout_s):
            return ""
    return process.stdout.readline().strip()


def _request(path: Path, request: dict[str, Any], timeout_s: float) -> dict[str, Any] | None:
    """One request to the agent at ``path``; None when no agent of this user answers there."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.settimeout(timeout_s)
            connection.connect(str(path))
            if _peer_uid(connection) != os.getuid():
                return None  # someone else's socket: tell it nothing
            connection.sendall(json.dumps(request).encode() + b"\n")
            with connection.makefile("rb") as answer:
                line = answer.readline(MAX_MESSAGE_BYTES)
    except OSError:  # no socket, nobody listening, too slow, or it stopped mid-answer
        return None
    try:
        parsed = json.loads(line)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _peer_uid(connection: socket.socket) -> int:
    credentials = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", credentials)
    return uid


# The agent's side, in its own process.


def serve(listener: socket.socket, wallet: Wallet, farm: Farm, deadline: float) -> None:
    """Answer one request per connection until ``deadline`` (a Unix time)."""
    while (left := deadline - time.time()) > 0:
        listener.settimeout(left)
        try:
            connection, _ = listener.accept()
        except TimeoutError:
            continue
        with connection:
            if _peer_uid(connection) == os.getuid():
                _answer(connection, wallet, farm)


def _answer(connection: socket.socket, wallet: Wallet, farm: Farm) -> None:
    try:
        request = json.loads(_read_request(connection, time.monotonic() + ANSWER_WITHIN_S))
        answer = _reply(request, wallet, farm) if isinstance(request, dict) else {"error": "not a request"}
        connection.settimeout(ANSWER_WITHIN_S)
        connection.sendall(json.dumps(answer).encode() + b"\n")
    except Exception:  # a client that went away, stalled or sent garbage: serve the next
        return


def _read_request(connection: socket.socket, deadline: float) -> bytes:
    """One line, all of it within ``deadline`` (a client dripping bytes cannot hold the agent)."""
    received = b""
    while b"\n" not in received:
        if len(received) >= MAX_MESSAGE_BYTES:
            raise ValueError("the request is too long")
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request came too slowly")
        connection.settimeout(left)
        chunk = connection.recv(MAX_MESSAGE_BYTES - len(received))
        if not chunk:
            break
        received += chunk
    return received.split(b"\n", 1)[0]


def _reply(request: dict[str, Any], wallet: Wallet, farm: Farm) -> dict[str, Any]:
    op = request.get("op")
    if op == "hello":
        return {"address": wallet.address, "farm_url": farm.url}
    if op == "sign_message":
        text = request.get("text")
        if not isinstance(text, str) or not is_sign_in_message(text, host=farm.host, address=wallet.address):
            return {"error": f"it signs only {farm.host}'s sign-in challenge for its own address"}
        return {"signature": wallet.sign_message(text)}
    if op == "sign_typed_data":
        typed_data = request.get("typed_data")
        if not _is_acceptance(typed_data, wallet.address, farm):
            return {"error": f"it signs only job acceptances for its own address on {farm.host}'s escrow"}
        return {"signature": wallet.sign_typed_data(typed_data)}
    return {"error": f"unknown request {op!r}"}


def _is_acceptance(typed_data: object, address: str, farm: Farm) -> bool:
    """Exactly an ``AcceptJob`` on this farm's chain and contract, for ``address``."""
    fields = acceptance_fields(typed_data, chain_id=farm.chain_id, contract_address=farm.contract_address)
    return fields is not None and str(fields["artist"]).lower() == address.lower()


def _harden() -> None:
    """No core dumps, and no ptrace or /proc/<pid>/mem reads by other processes of the user."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE) failed")


def main(argv: list[str]) -> int:
    path, deadline, farm_url, chain_id, contract = argv
    _harden()  # before the key arrives
    key = sys.stdin.readline().strip()
    farm = Farm(url=farm_url, chain_id=int(chain_id), contract_address=contract)
    wallet = Wallet(bytes.fromhex(key))
    socket_file = Path(path)
    pid_file = socket_file.with_suffix(".pid")
    with contextlib.suppress(FileNotFoundError):
        socket_file.unlink()  # a socket its stopped agent left
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    previous_umask = os.umask(0o177)
    try:
        listener.bind(path)
    finally:
        os.umask(previous_umask)
    listener.listen()
    if os.fork():  # the agent is the child: the command that started it reaps this parent
        os._exit(0)
    pid_file.write_text(str(os.getpid()))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # leaves no socket or pid file behind
    print("ready", flush=True)
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    try:
        serve(listener, wallet, farm, float(deadline))
    finally:
        listener.close()
        socket_file.unlink(missing_ok=True)
        pid_file.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
