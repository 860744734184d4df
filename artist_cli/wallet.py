"""The artist's wallet, on the artist's machine: an encrypted keystore that signs
job acceptances and sends deposits, caps and withdrawals to the escrow contract.
The key never leaves this process.

Opening a keystore takes over a second (importing eth-account, then scrypt), so the
CLI opens it in the background (``OpeningWallet``) while it hashes, uploads and waits
for the scene's analysis; each use of the key waits for it.
"""

from __future__ import annotations

import json
import os
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

KEYSTORE_ENV = "RONRENDER_KEYSTORE"
PASSWORD_ENV = "RONRENDER_KEYSTORE_PASSWORD"
TOKEN_ENV = "RONRENDER_TOKEN"


class KeystoreError(Exception):
    """The keystore does not open (wrong password, or not a keystore)."""


class Wallet:
    def __init__(self, key: bytes) -> None:
        from eth_account import Account

        self.account = Account.from_key(key)

    @property
    def address(self) -> str:
        return self.account.address

    @classmethod
    def create(cls, keystore: Path, password: str) -> Wallet:
        from eth_account import Account

        account = Account.create()
        keystore.parent.mkdir(parents=True, exist_ok=True)
        keystore.write_text(json.dumps(Account.encrypt(account.key, password)))
        os.chmod(keystore, 0o600)
        return cls(account.key)

    @classmethod
    def import_key(cls, keystore: Path, password: str, private_key: str) -> Wallet:
        from eth_account import Account

        keystore.parent.mkdir(parents=True, exist_ok=True)
        keystore.write_text(json.dumps(Account.encrypt(private_key, password)))
        os.chmod(keystore, 0o600)
        return cls(bytes.fromhex(private_key.removeprefix("0x")))

    @classmethod
    def open(cls, keystore: Path, password: str) -> Wallet:
        from eth_account import Account

        return cls(Account.decrypt(json.loads(keystore.read_text()), password))

    def sign_message(self, text: str) -> str:
        """EIP-191 text signature: how the CLI signs in to the backend."""
        from eth_account.messages import encode_defunct

        signed = self.account.sign_message(encode_defunct(text=text))
        return "0x" + signed.signature.hex().removeprefix("0x")

    def sign_typed_data(self, typed_data: dict[str, Any]) -> str:
        from eth_account.messages import encode_typed_data

        signed = self.account.sign_message(encode_typed_data(full_message=typed_data))
        return "0x" + signed.signature.hex().removeprefix("0x")


def stated_address(keystore: Path) -> str | None:
    """The address a keystore names in the clear (lower case), read without its password."""
    try:
        stated = json.loads(keystore.read_text()).get("address")
    except (OSError, ValueError, AttributeError):
        return None  # opening it says what is wrong
    return f"0x{stated.lower().removeprefix('0x')}" if isinstance(stated, str) else None


class OpeningWallet:
    """A keystore being opened on a background thread. Its address as the keystore
    states it is known at once (to find a kept session); the key, on first use."""

    def __init__(self, keystore: Path, password: str) -> None:
        self.keystore = keystore
        self.stated_address = stated_address(keystore)
        self._opened: Future[Wallet] = Future()
        threading.Thread(target=self._open, args=(password,), name="open-keystore", daemon=True).start()

    def _open(self, password: str) -> None:
        try:
            self._opened.set_result(Wallet.open(self.keystore, password))
        except Exception as error:  # handed to whoever needs the key
            self._opened.set_exception(error)

    def opened(self) -> Wallet:
        """The wallet, once the keystore is open; KeystoreError if it does not open, or if
        its key is not the address the keystore states (which chose the kept session)."""
        try:
            wallet = self._opened.result()
        except (OSError, ValueError, KeyError) as error:
            raise KeystoreError(f"cannot open {self.keystore}: {error}") from error
        if self.stated_address is not None and wallet.address.lower() != self.stated_address:
            raise KeystoreError(
                f"cannot open {self.keystore}: its key is {wallet.address}, "
                f"not {self.stated_address} as the file states"
            )
        return wallet

    @property
    def address(self) -> str:
        return self.opened().address

    def sign_message(self, text: str) -> str:
        return self.opened().sign_message(text)

    def sign_typed_data(self, typed_data: dict[str, Any]) -> str:
        return self.opened().sign_typed_data(typed_data)


class EscrowWallet:
    """The artist's side of the escrow contract, over the chain's public RPC."""

    def __init__(self, wallet: Wallet, escrow: dict[str, Any]) -> None:
        from web3 import Web3  # imported here: submitting a job needs no chain client (0.12 s)

        self.wallet = wallet
        self.w3 = Web3(Web3.HTTPProvider(escrow["rpc_url"], request_kwargs={"timeout": 30}))
        if self.w3.eth.chain_id != escrow["chain_id"]:
            raise RuntimeError(
                f"the RPC serves chain {self.w3.eth.chain_id}, the backend says {escrow['chain_id']}"
            )
        self.contract = self.w3.eth.contract(address=escrow["contract_address"], abi=escrow["abi"])

    def chain_balance(self) -> int:
        return self.w3.eth.get_balance(self.wallet.address)

    def deposit(self, amount_wei: int) -> str:
        return self._transact(self.contract.functions.deposit(), value=amount_wei)

    def set_spending_cap(self, cap_wei: int) -> str:
        return self._transact(self.contract.functions.setSpendingCap(cap_wei))

    def withdraw(self, amount_wei: int) -> str:
        return self._transact(self.contract.functions.withdraw(amount_wei))

    def _transact(self, call: Any, value: int = 0) -> str:
        transaction = call.build_transaction(
            {
                "from": self.wallet.address,
                "value": value,
                "nonce": self.w3.eth.get_transaction_count(self.wallet.address, "pending"),
                "chainId": self.w3.eth.chain_id,
            }
        )
        signed = self.wallet.account.sign_transaction(transaction)
        tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
        if receipt["status"] != 1:
            raise RuntimeError(f"transaction {tx_hash.hex()} reverted")
        return "0x" + bytes(tx_hash).hex().removeprefix("0x")
