"""Signed-in test clients: every identity is a wallet that signs the backend's challenge."""

from __future__ import annotations

import hashlib
from typing import Any

from eth_account import Account

from shared.key_wallet import KeyWallet
from shared.protocol import auth_challenge_path, auth_login_path

# Fixed keys, so a failing test names the same wallets every run (never funded; nodes only receive).
NODE_KEY = "0x" + "a1" * 32
OTHER_NODE_KEY = "0x" + "a2" * 32
OTHER_ARTIST_KEY = "0x" + "b1" * 32
ADMIN_KEY = "0x" + "c1" * 32


def key_for(label: str) -> str:
    """A distinct, repeatable wallet per label (nodes that must be paid apart)."""
    return "0x" + hashlib.sha256(label.encode()).hexdigest()


def address_of(private_key: str) -> str:
    return Account.from_key(private_key).address


def session_token(client: Any, private_key: str) -> str:
    """Sign in through the real challenge endpoints; returns the bearer token."""
    wallet = KeyWallet(private_key)
    challenge = client.post(auth_challenge_path(), json={"address": wallet.address})
    assert challenge.status_code == 200, challenge.json
    message = challenge.json["message"]
    issued = client.post(
        auth_login_path(), json={"message": message, "signature": wallet.sign_message(message)}
    )
    assert issued.status_code == 201, issued.json
    return issued.json["token"]


def client_with_token(app: Any, token: str) -> Any:
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client


def signed_in_client(app: Any, private_key: str) -> Any:
    return client_with_token(app, session_token(app.test_client(), private_key))


def wallet_client(app: Any, label: str) -> tuple[Any, str]:
    """A signed-in client of the wallet named ``label``, and its address."""
    key = key_for(label)
    return signed_in_client(app, key), address_of(key)
