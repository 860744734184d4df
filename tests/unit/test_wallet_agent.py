"""The wallet agent keeps an opened wallet for a while and signs sign-ins and job
acceptances for its own address only; locking it, or its deadline, ends it."""

from __future__ import annotations

import json
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data

from artist_cli import wallet_agent
from artist_cli.cli import main, open_wallet
from artist_cli.wallet import KeystoreError, Wallet
from artist_cli.wallet_agent import AgentRefused, AgentWallet, find_agent, start_agent

pytestmark = pytest.mark.unit


@pytest.fixture
def agent_dir(monkeypatch):
    directory = Path(tempfile.mkdtemp(prefix="rr-agents-")) / "agents"  # short: a socket path
    monkeypatch.setenv(wallet_agent.AGENT_DIR_ENV, str(directory))
    yield directory
    for agent in wallet_agent.running_agents():
        agent.lock()


@pytest.fixture
def wallet() -> Wallet:
    return Wallet(bytes(Account.create().key))


def acceptance(artist: str, primary_type: str = "AcceptJob", domain: str = "RonRender") -> dict:
    return {
        "types": {
            "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"}],
            primary_type: [{"name": "artist", "type": "address"}, {"name": "totalWei", "type": "uint256"}],
        },
        "primaryType": primary_type,
        "domain": {"name": domain, "version": "1"},
        "message": {"artist": artist, "totalWei": 12 * 10**18},
    }


def sign_in_text(address: str) -> str:
    return f"farm.example wants you to sign in with your Ethereum account:\n{address}\n\nNonce: 1"


def stopped(path: Path, within_s: float = 15.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if not path.exists():
            return True
        time.sleep(0.1)
    return False


def test_an_unlocked_wallet_signs_sign_ins_and_acceptances_for_its_own_address(agent_dir, wallet):
    start_agent(wallet, timedelta(minutes=1))
    agent = find_agent(wallet.address.lower())
    assert isinstance(agent, AgentWallet) and agent.address == wallet.address

    typed = acceptance(wallet.address)
    signature = agent.sign_typed_data(typed)
    assert signature == wallet.sign_typed_data(typed)  # deterministic (RFC 6979)
    signed = Account.recover_message(encode_typed_data(full_message=typed), signature=signature)
    assert signed == wallet.address
    text = sign_in_text(wallet.address)
    assert (
        Account.recover_message(encode_defunct(text=text), signature=agent.sign_message(text))
        == wallet.address
    )

    other = "0x" + "ab" * 20
    refused = [
        lambda: agent.sign_typed_data(acceptance(other)),
        lambda: agent.sign_typed_data(acceptance(wallet.address, primary_type="Transfer")),
        lambda: agent.sign_typed_data(acceptance(wallet.address, domain="Other")),
        lambda: agent.sign_message("any text at all"),
        lambda: agent.sign_message(sign_in_text(other)),
    ]
    for attempt in refused:
        with pytest.raises(AgentRefused):
            attempt()
    assert agent.sign_typed_data(typed) == signature  # a refusal does not stop it


def test_its_socket_is_private_and_locking_stops_it(agent_dir, wallet):
    start_agent(wallet, timedelta(minutes=1))
    path = wallet_agent.socket_path(wallet.address)
    assert agent_dir.stat().st_mode & 0o777 == 0o700
    assert path.stat().st_mode & 0o077 == 0
    agent = find_agent(wallet.address)
    agent.lock()
    assert stopped(path)
    assert find_agent(wallet.address) is None
    with pytest.raises(KeystoreError, match="has stopped"):
        agent.sign_typed_data(acceptance(wallet.address))


def test_it_stops_at_its_deadline(agent_dir, wallet):
    start_agent(wallet, timedelta(seconds=2))
    assert find_agent(wallet.address) is not None
    assert stopped(wallet_agent.socket_path(wallet.address))


def test_unlocking_again_replaces_the_running_agent(agent_dir, wallet):
    start_agent(wallet, timedelta(minutes=1))
    start_agent(wallet, timedelta(minutes=1))
    agents = wallet_agent.running_agents()
    assert [agent.address for agent in agents] == [wallet.address]
    assert agents[0].sign_typed_data(acceptance(wallet.address)).startswith("0x")


def test_the_cli_unlocks_the_keystore_and_then_needs_no_password(agent_dir, tmp_path, monkeypatch):
    keystore = tmp_path / "keystore.json"
    account = Account.create()
    keystore.write_text(json.dumps(Account.encrypt(account.key, "pw", kdf="pbkdf2", iterations=2)))
    runner = CliRunner()

    wrong = runner.invoke(
        main, ["wallet", "unlock", "--keystore", str(keystore)], env={"RONRENDER_KEYSTORE_PASSWORD": "no"}
    )
    assert wrong.exit_code != 0 and "cannot open" in wrong.output
    assert wallet_agent.running_agents() == []

    unlocked = runner.invoke(
        main,
        ["wallet", "unlock", "--keystore", str(keystore), "--for", "5"],
        env={"RONRENDER_KEYSTORE_PASSWORD": "pw"},
    )
    assert unlocked.exit_code == 0 and f"wallet {account.address} unlocked" in unlocked.output
    monkeypatch.delenv("RONRENDER_KEYSTORE_PASSWORD", raising=False)
    opened = open_wallet(keystore)  # no password asked: the agent holds the key
    assert isinstance(opened, AgentWallet) and opened.address == account.address

    locked = runner.invoke(main, ["wallet", "lock"])
    assert locked.exit_code == 0 and "locked 1 wallet(s)" in locked.output
    assert stopped(wallet_agent.socket_path(account.address))


def test_a_socket_path_too_long_is_a_clear_error(monkeypatch, wallet, tmp_path):
    monkeypatch.setenv(wallet_agent.AGENT_DIR_ENV, str(tmp_path / ("d" * 120)))
    with pytest.raises(KeystoreError, match="too long for a socket"):
        start_agent(wallet, timedelta(minutes=1))
