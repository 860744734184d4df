"""The artist CLI's kept sessions and its keystore opened in the background."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
from eth_account import Account

from artist_cli.sessions import SessionStore
from artist_cli.wallet import KeystoreError, OpeningWallet

pytestmark = pytest.mark.unit

FARM = "http://127.0.0.1:8000"
ADDRESS = "0x" + "ab" * 20


def in_an_hour() -> datetime:
    return datetime.now(UTC) + timedelta(hours=1)


def test_a_kept_session_is_found_for_its_backend_and_address_only(tmp_path):
    store = SessionStore(tmp_path / "config" / "sessions.json")
    ends = in_an_hour()
    store.put(FARM + "/", ADDRESS.upper().replace("0X", "0x"), "secret", ends)
    assert store.get(FARM, ADDRESS) == ("secret", ends)
    assert store.get("http://elsewhere:8000", ADDRESS) is None
    assert store.get(FARM, "0x" + "cd" * 20) is None
    assert store.path.stat().st_mode & 0o777 == 0o600


def test_a_session_about_to_end_or_not_written_by_the_cli_is_not_used(tmp_path):
    store = SessionStore(tmp_path / "sessions.json")
    store.put(FARM, ADDRESS, "ending", datetime.now(UTC) + timedelta(minutes=1))
    assert store.get(FARM, ADDRESS) is None
    store.path.write_text(json.dumps({f"{FARM} {ADDRESS}": {"token": 7}, "junk": "x"}))
    assert store.get(FARM, ADDRESS) is None
    store.put(FARM, ADDRESS, "fresh", in_an_hour())  # the junk is dropped, not fatal
    assert store.get(FARM, ADDRESS)[0] == "fresh" and list(json.loads(store.path.read_text())) == [
        f"{FARM} {ADDRESS}"
    ]


def test_sign_out_forgets_one_backend(tmp_path):
    store = SessionStore(tmp_path / "sessions.json")
    store.put(FARM, ADDRESS, "a", in_an_hour())
    store.put("http://other:1", ADDRESS, "b", in_an_hour())
    assert store.forget(FARM) == 1
    assert store.get(FARM, ADDRESS) is None and store.get("http://other:1", ADDRESS) is not None


def test_a_session_that_cannot_be_kept_only_warns(tmp_path, caplog):
    blocked = tmp_path / "file"
    blocked.write_text("")
    store = SessionStore(blocked / "sessions.json")  # its directory is a file
    with caplog.at_level(logging.WARNING):
        store.put(FARM, ADDRESS, "secret", in_an_hour())
    assert "could not keep the session" in caplog.text
    assert store.get(FARM, ADDRESS) is None


@pytest.fixture
def keystore(tmp_path):
    account = Account.create()
    path = tmp_path / "keystore.json"
    path.write_text(json.dumps(Account.encrypt(account.key, "pw", kdf="pbkdf2", iterations=2)))
    return path, account.address


def test_the_keystore_opens_in_the_background_and_states_its_address_at_once(keystore):
    path, address = keystore
    wallet = OpeningWallet(path, "pw")
    assert wallet.stated_address == address.lower()
    assert wallet.address == address and wallet.sign_message("hello").startswith("0x")


def test_a_wrong_password_or_a_misstated_address_is_a_keystore_error(keystore):
    path, _ = keystore
    with pytest.raises(KeystoreError, match="cannot open"):
        OpeningWallet(path, "not the password").opened()
    data = json.loads(path.read_text())
    data["address"] = "cd" * 20  # would pick another account's kept session
    path.write_text(json.dumps(data))
    with pytest.raises(KeystoreError, match="as the file states"):
        OpeningWallet(path, "pw").opened()
