"""The node's payout wallet: it signs the backend's sign-in challenge, which
proves the payout address belongs to whoever runs the node."""

from __future__ import annotations

import json
import os
from pathlib import Path

from eth_account import Account

from shared.key_wallet import KeyWallet

KEY_ENV = "RONRENDER_NODE_KEY"  # a raw hex key: local farms and tests only
KEYSTORE_ENV = "RONRENDER_NODE_KEYSTORE"
PASSWORD_FILE_ENV = "RONRENDER_NODE_KEYSTORE_PASSWORD_FILE"


class WalletError(Exception):
    """No usable wallet: the message says what to pass."""


def load_node_wallet(keystore: Path | None, password_file: Path | None) -> KeyWallet:
    """The wallet from an encrypted keystore (production) or from $RONRENDER_NODE_KEY."""
    if keystore is not None:
        if password_file is None:
            raise WalletError(f"--wallet-keystore needs --wallet-password-file (or ${PASSWORD_FILE_ENV})")
        try:
            password = password_file.read_text().strip()
            return KeyWallet(Account.decrypt(json.loads(keystore.read_text()), password))
        except (OSError, ValueError) as error:
            raise WalletError(f"cannot open the wallet keystore {keystore}: {error}") from error
    raw_key = os.environ.get(KEY_ENV)
    if raw_key:
        try:
            return KeyWallet(raw_key)
        except ValueError as error:
            raise WalletError(f"${KEY_ENV} is not a private key") from error
    raise WalletError(
        f"no payout wallet: pass --wallet-keystore and --wallet-password-file (or set ${KEYSTORE_ENV})"
    )


def create_keystore(keystore: Path, password: str) -> str:
    """A new encrypted wallet for a node; returns its address."""
    account = Account.create()
    keystore.parent.mkdir(parents=True, exist_ok=True)
    keystore.write_text(json.dumps(Account.encrypt(account.key, password)))
    os.chmod(keystore, 0o600)
    return account.address
