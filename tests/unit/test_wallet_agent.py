"""The wallet agent keeps an opened wallet for a while and signs, for one farm, exactly
its sign-in challenges and job acceptances for the agent's own address; stopping it, or
its deadline, ends it."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data

from artist_cli import wallet_agent
from artist_cli.cli import open_wallet
from artist_cli.wallet import KeystoreError, OpeningWallet, Wallet
from artist_cli.wallet_agent import AgentRefused, AgentWallet, Farm, find_agent, start_agent, stop_agent
from shared.protocol import acceptance_typed_data, sign_in_message

pytestmark = pytest.mark.unit

FARM = Farm("http://127.0.0.1:8000", chain_id=31337, contract_address="0x" + "5f" * 20)
JOB_ID = "ab" * 16


@pytest.fixture
def agent_dir(monkeypatch):
    root = Path(tempfile.mkdtemp(prefix="rr-agents-"))  # short: a socket path
    monkeypatch.setenv(wallet_agent.AGENT_DIR_ENV, str(root / "agents"))
    yield root / "agents"
    wallet_agent.stop_all_agents()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def wallet() -> Wallet:
    return Wallet(bytes(Account.create().key))


def acceptance(artist: str, farm: Farm = FARM) -> dict:
    return acceptance_typed_data(
        chain_id=farm.chain_id,
        contract_address=farm.contract_address,
        job_id=JOB_ID,
        artist=artist,
        total_wei=12 * 10**18,
        frame_count=12,
    )


def sign_in_text(address: str, host: str = "127.0.0.1:8000") -> str:
    return sign_in_message(
        host=host,
        origin=f"http://{host}",
        address=address,
        nonce="0f" * 16,
        issued_at="2026-11-26T08:00:00+00:00",
        expires_at="2026-11-26T08:05:00+00:00",
    )


def gone(path: Path, within_s: float = 15.0) -> bool:
    deadline = time.monotonic() + within_s
    while path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def agent_pid(address: str) -> int:
    return int(wallet_agent.socket_path(address).with_suffix(".pid").read_text())


def test_it_signs_its_farms_sign_in_and_acceptances_for_its_own_address(agent_dir, wallet):
    start_agent(wallet, FARM, timedelta(minutes=1))
    agent = find_agent(wallet.address.lower(), FARM.url + "/")
    assert isinstance(agent, AgentWallet) and agent.address == wallet.address

    typed = acceptance(wallet.address)
    signature = agent.sign_typed_data(typed)
    assert signature == wallet.sign_typed_data(typed)  # deterministic (RFC 6979)
    assert (
        Account.recover_message(encode_typed_data(full_message=typed), signature=signature) == wallet.address
    )
    text = sign_in_text(wallet.address)
    assert (
        Account.recover_message(encode_defunct(text=text), signature=agent.sign_message(text))
        == wallet.address
    )


def test_it_refuses_anything_else(agent_dir, wallet):
    start_agent(wallet, FARM, timedelta(minutes=1))
    agent = find_agent(wallet.address, FARM.url)
    other = "0x" + "ab" * 20

    def altered(change) -> dict:
        typed = json.loads(json.dumps(acceptance(wallet.address)))
        change(typed)
        return typed

    refused_typed_data = [
        acceptance(other),
        acceptance(wallet.address, Farm(FARM.url, chain_id=2020, contract_address=FARM.contract_address)),
        acceptance(wallet.address, Farm(FARM.url, chain_id=FARM.chain_id, contract_address="0x" + "11" * 20)),
        # The artist only in the message, while the signed fields are others: the hash never sees it.
        altered(lambda t: t["types"].update(AcceptJob=[{"name": "to", "type": "address"}])),
        altered(lambda t: t["types"]["EIP712Domain"].pop()),
        altered(lambda t: t["domain"].update(version="2")),
        altered(lambda t: t["message"].update(extra=1)),
        altered(lambda t: t.update(primaryType="EIP712Domain")),
        "not typed data",
    ]
    for typed in refused_typed_data:
        with pytest.raises(AgentRefused):
            agent.sign_typed_data(typed)
    refused_texts = [
        "any text at all",
        sign_in_text(other),
        sign_in_text(wallet.address, host="evil.example"),
        "Prefix\n" + sign_in_text(wallet.address),
        sign_in_text(wallet.address) + "\nResources: https://evil.example",
    ]
    for text in refused_texts:
        with pytest.raises(AgentRefused):
            agent.sign_message(text)
    assert agent.sign_typed_data(acceptance(wallet.address)).startswith("0x")  # still serving


def test_it_serves_only_the_farm_it_was_unlocked_for(agent_dir, wallet):
    start_agent(wallet, FARM, timedelta(minutes=1))
    assert find_agent(wallet.address, "http://elsewhere:8000") is None
    assert find_agent("0x" + "cd" * 20, FARM.url) is None


def test_it_is_private_and_stopping_it_leaves_nothing(agent_dir, wallet, monkeypatch):
    monkeypatch.setenv("RONRENDER_KEYSTORE_PASSWORD", "the password")
    start_agent(wallet, FARM, timedelta(minutes=1))
    path = wallet_agent.socket_path(wallet.address)
    pid = agent_pid(wallet.address)
    assert agent_dir.stat().st_mode & 0o777 == 0o700
    assert path.stat().st_mode & 0o077 == 0
    assert b"RONRENDER_KEYSTORE_PASSWORD" not in Path(f"/proc/{pid}/environ").read_bytes()
    assert bytes(wallet.account.key).hex().encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
    agent = find_agent(wallet.address, FARM.url)

    assert stop_agent(wallet.address)
    assert gone(path) and not path.with_suffix(".pid").exists() and not Path(f"/proc/{pid}").exists()
    assert find_agent(wallet.address, FARM.url) is None
    with pytest.raises(KeystoreError, match="has stopped"):
        agent.opened()


def test_it_stops_at_its_deadline(agent_dir, wallet):
    start_agent(wallet, FARM, timedelta(seconds=3))
    assert find_agent(wallet.address, FARM.url) is not None
    assert gone(wallet_agent.socket_path(wallet.address))


def test_unlocking_again_stops_the_agent_it_replaces(agent_dir, wallet):
    start_agent(wallet, FARM, timedelta(minutes=1))
    first = agent_pid(wallet.address)
    start_agent(wallet, FARM, timedelta(minutes=1))
    assert not Path(f"/proc/{first}").exists()
    assert agent_pid(wallet.address) != first
    assert find_agent(wallet.address, FARM.url).sign_typed_data(acceptance(wallet.address)).startswith("0x")


def test_a_stalled_or_garbled_client_does_not_stop_it(agent_dir, wallet):
    start_agent(wallet, FARM, timedelta(minutes=1))
    path = str(wallet_agent.socket_path(wallet.address))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stalled:
        stalled.connect(path)
        stalled.sendall(b'{"op": ')  # and never the rest
        answer = wallet_agent._request(Path(path), {"op": "hello"}, timeout_s=10)
    assert answer is not None and answer["address"] == wallet.address
    too_deep = b"[" * (wallet_agent.MAX_MESSAGE_BYTES - 1) + b"\n"  # within the size bound
    for garbage in (b"[" * 100_000 + b"\n", too_deep, b"\xff\xfe\n", b"[]\n"):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(path)
            client.sendall(garbage)
            with contextlib.suppress(ConnectionResetError):  # it may close before reading it all
                client.recv(4096)
    assert find_agent(wallet.address, FARM.url) is not None


def test_the_cli_takes_the_agent_for_its_farm_and_the_keystore_otherwise(agent_dir, tmp_path, monkeypatch):
    keystore = tmp_path / "keystore.json"
    account = Account.create()
    keystore.write_text(json.dumps(Account.encrypt(account.key, "pw", kdf="pbkdf2", iterations=2)))
    start_agent(Wallet(bytes(account.key)), FARM, timedelta(minutes=1))
    monkeypatch.setenv("RONRENDER_KEYSTORE_PASSWORD", "not the password")

    agent = open_wallet(keystore, farm_url=FARM.url)  # no password needed
    assert isinstance(agent, AgentWallet) and agent.opened().address == account.address
    for keystore_only in (open_wallet(keystore), open_wallet(keystore, farm_url="http://elsewhere:1")):
        assert isinstance(keystore_only, OpeningWallet)
        with pytest.raises(KeystoreError, match="cannot open"):
            keystore_only.opened()


def test_a_socket_path_too_long_is_a_clear_error(monkeypatch, wallet, tmp_path):
    monkeypatch.setenv(wallet_agent.AGENT_DIR_ENV, str(tmp_path / ("d" * 120)))
    with pytest.raises(KeystoreError, match="too long for a socket"):
        start_agent(wallet, FARM, timedelta(minutes=1))
    assert not os.path.exists(tmp_path / ("d" * 120))
