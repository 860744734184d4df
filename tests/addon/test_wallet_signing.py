"""Signing a job's acceptance with the artist's keystore, without Blender: only
exactly the estimate shown is signed, by the keystore's address."""

from __future__ import annotations

import json
import sys

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from ronrender_addon.errors import AddonError
from ronrender_addon.wallet_signing import KeystoreSigner, check_acceptance, keystore_address, signer_from

from shared.protocol import acceptance_typed_data

pytestmark = pytest.mark.addon

JOB_ID = "0123456789abcdef0123456789abcdef"


def typed_data(job_id: str = JOB_ID, total_wei: int = 387072000000, frames: int = 4) -> dict:
    return acceptance_typed_data(
        chain_id=31337,
        contract_address="0x" + "11" * 20,
        job_id=job_id,
        artist="0x" + "22" * 20,
        total_wei=total_wei,
        frame_count=frames,
    )


@pytest.fixture
def keystore(tmp_path):
    account = Account.create()
    path = tmp_path / "keystore.json"
    path.write_text(json.dumps(Account.encrypt(account.key, "pw", iterations=2)))
    return path, account.address


def test_the_signature_is_the_keystores_over_the_shown_estimate(keystore):
    path, address = keystore
    assert keystore_address(path).lower() == address.lower()
    signer = KeystoreSigner(path, "pw")
    check_acceptance(typed_data(), JOB_ID, 387072000000, 4)
    signature = signer.sign_typed_data(typed_data())
    recovered = Account.recover_message(encode_typed_data(full_message=typed_data()), signature=signature)
    assert recovered == address


@pytest.mark.parametrize(
    "other",
    [
        typed_data(total_wei=387072000001),
        typed_data(frames=5),
        typed_data(job_id="ff" + JOB_ID),
        {"message": {}},
        # The shown fields, but signed as another struct or in another domain: not an acceptance.
        {**typed_data(), "primaryType": "Permit", "types": {**typed_data()["types"], "Permit": []}},
        {**typed_data(), "domain": {**typed_data()["domain"], "name": "SomeToken"}},
        {
            **typed_data(),
            "types": {**typed_data()["types"], "AcceptJob": typed_data()["types"]["AcceptJob"][:3]},
        },
    ],
)
def test_anything_but_the_shown_estimate_is_refused(other):
    with pytest.raises(AddonError) as raised:
        check_acceptance(other, JOB_ID, 387072000000, 4)
    assert raised.value.reason == "ACCEPTANCE_MISMATCH"


def test_a_wrong_password_or_file_is_a_clear_error(keystore, tmp_path):
    path, _address = keystore
    with pytest.raises(AddonError) as raised:
        KeystoreSigner(path, "wrong").sign_typed_data(typed_data())
    assert raised.value.reason == "BAD_KEYSTORE"
    (tmp_path / "junk.json").write_text("{}")
    with pytest.raises(AddonError) as raised:
        _ = KeystoreSigner(tmp_path / "junk.json", "pw").address
    assert raised.value.reason == "BAD_KEYSTORE"


def test_the_keystore_and_password_come_from_the_environment_when_not_set(monkeypatch, keystore):
    path, _address = keystore
    assert signer_from("", "") is None
    monkeypatch.setenv("RONRENDER_KEYSTORE", str(path))
    monkeypatch.setenv("RONRENDER_KEYSTORE_PASSWORD", "pw")
    assert signer_from("", "") == KeystoreSigner(path, "pw")
    assert signer_from("", "typed") == KeystoreSigner(path, "typed")


def test_without_eth_account_the_artist_is_told_how_to_accept(monkeypatch, keystore):
    path, _address = keystore
    monkeypatch.setitem(sys.modules, "eth_account", None)  # a Blender without it (the zip without wheels)
    with pytest.raises(AddonError) as raised:
        KeystoreSigner(path, "pw").sign_typed_data(typed_data())
    assert raised.value.reason == "SIGNING_UNAVAILABLE"
    assert "ronrender accept" in str(raised.value) and "zip for your platform" in str(raised.value)
