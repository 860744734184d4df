"""A raw private key as a wallet that signs the backend's sign-in challenge."""

from __future__ import annotations

from eth_account import Account
from eth_account.messages import encode_defunct


class KeyWallet:
    """A raw private key as a ``SigningWallet`` (nodes; tests)."""

    def __init__(self, private_key: bytes | str) -> None:
        self._account = Account.from_key(private_key)

    @property
    def address(self) -> str:
        return self._account.address

    def sign_message(self, text: str) -> str:
        signature = self._account.sign_message(encode_defunct(text=text)).signature.hex()
        return "0x" + signature.removeprefix("0x")
