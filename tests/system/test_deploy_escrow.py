"""Deploying the escrow to a chain by configuration, refusing a chain id mismatch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from eth_account import Account

from tests.conftest import ROOT

pytestmark = pytest.mark.system


def deploy(chain, keystore, expected_chain_id: int) -> subprocess.CompletedProcess[str]:
    operator, treasury = chain.accounts[1].address, chain.accounts[2].address
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "deploy_escrow.py"), "--rpc-url", chain.rpc_url,
         "--keystore", str(keystore), "--operator", operator, "--fee-recipient", treasury,
         "--expected-chain-id", str(expected_chain_id)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "RONRENDER_KEYSTORE_PASSWORD": "pw"},
    )  # fmt: skip


def test_deploys_with_an_encrypted_owner_key_and_checks_the_chain_id(chain, tmp_path):
    keystore = tmp_path / "owner.json"
    keystore.write_text(json.dumps(Account.encrypt(chain.accounts[5].key, "pw")))

    refused = deploy(chain, keystore, expected_chain_id=2020)
    assert refused.returncode == 2
    assert f"serves chain {chain.chain_id}, not 2020" in refused.stderr

    deployed = deploy(chain, keystore, expected_chain_id=chain.chain_id)
    assert deployed.returncode == 0, deployed.stderr
    address = json.loads(deployed.stdout)["escrow_address"]
    contract = chain.contract(address)
    assert contract.functions.owner().call() == chain.accounts[5].address
    assert contract.functions.operator().call() == chain.accounts[1].address
    assert contract.functions.feeBps().call() == 500
