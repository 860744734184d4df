"""Signing a job's acceptance with the artist's wallet. No bpy module use.

The farm locks a job's estimate in the escrow contract only with the artist's
EIP-712 signature over exactly that estimate (job id, total, frame count). The
add-on signs with the same encrypted keystore the ``ronrender wallet`` command
writes; the key is decrypted in memory for one signature and never stored. The
password comes from the Submit dialog or ``RONRENDER_KEYSTORE_PASSWORD``.

Signing needs the ``eth-account`` package, which stock Blender lacks: each
platform's zip (``ronrender-<version>-<platform>.zip``) bundles it and its
dependencies as wheels, which Blender installs into its extensions'
site-packages when the add-on is enabled. The zip without wheels signs only where
Blender's Python has eth-account; elsewhere the add-on says so and the artist
accepts with ``ronrender accept JOB_ID``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import AddonError
from .vendor import protocol

KEYSTORE_ENV = "RONRENDER_KEYSTORE"
PASSWORD_ENV = "RONRENDER_KEYSTORE_PASSWORD"


def keystore_address(keystore: Path) -> str | None:
    """The address a keystore holds (stored in clear beside the encrypted key), if readable."""
    try:
        address = json.loads(keystore.read_text(encoding="utf-8")).get("address")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(address, str) or len(address.removeprefix("0x")) != 40:
        return None
    return "0x" + address.removeprefix("0x")


def check_acceptance(typed_data: dict[str, Any], job_id: str, estimate_wei: int, frames_total: int) -> None:
    """Refuse to sign anything but exactly the estimate the artist saw (the contract
    names a job by its 16-byte id, left-padded to bytes32)."""
    if not protocol.is_acceptance_of(
        typed_data, job_id=job_id, total_wei=estimate_wei, frame_count=frames_total
    ):
        raise AddonError(
            "the farm asked to sign something other than this job's estimate; nothing was signed",
            reason="ACCEPTANCE_MISMATCH",
        )


@dataclass(frozen=True)
class KeystoreSigner:
    keystore: Path
    password: str

    @property
    def address(self) -> str:
        address = keystore_address(self.keystore)
        if address is None:
            raise AddonError(f"{self.keystore} is not a readable wallet keystore", reason="BAD_KEYSTORE")
        return address

    def sign_typed_data(self, typed_data: dict[str, Any]) -> str:
        try:
            from eth_account import Account
            from eth_account.messages import encode_typed_data
        except ImportError as error:
            raise AddonError(
                "signing the acceptance needs the eth-account package, which this Blender lacks "
                "(the RonRender zip for your platform bundles it); accept with `ronrender accept JOB_ID`",
                reason="SIGNING_UNAVAILABLE",
            ) from error
        try:
            key = Account.decrypt(json.loads(self.keystore.read_text(encoding="utf-8")), self.password)
        except (OSError, ValueError) as error:
            raise AddonError(
                f"cannot open the wallet keystore {self.keystore}: {error}", reason="BAD_KEYSTORE"
            ) from error
        signed = Account.from_key(key).sign_message(encode_typed_data(full_message=typed_data))
        return "0x" + signed.signature.hex().removeprefix("0x")


def signer_from(keystore: str, password: str) -> KeystoreSigner | None:
    """The signer for the preferences' keystore (or ``RONRENDER_KEYSTORE``), or None
    when no keystore is set; the password falls back to ``RONRENDER_KEYSTORE_PASSWORD``."""
    path = keystore.strip() or os.environ.get(KEYSTORE_ENV, "")
    if not path:
        return None
    return KeystoreSigner(Path(path).expanduser(), password or os.environ.get(PASSWORD_ENV, ""))
