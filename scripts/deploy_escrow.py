"""Deploy the RonRenderEscrow contract to a real chain (Ronin mainnet, Saigon).

The owner's key comes from an encrypted keystore and never leaves this process.
The chain id is read from the RPC and must equal --expected-chain-id (2020 for
Ronin mainnet; Saigon moved from 2021 to 202601 in February 2026).

Usage:
  python scripts/deploy_escrow.py --rpc-url URL --keystore owner.json \\
      --operator 0xOPERATOR --fee-recipient 0xTREASURY --expected-chain-id 202601 \\
      [--fee-bps 500] [--release-cap-ron 1000] [--period-seconds 86400]
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from decimal import Decimal
from pathlib import Path

from eth_account import Account
from web3 import Web3

ARTIFACT = Path(__file__).resolve().parent.parent / "contracts" / "build" / "RonRenderEscrow.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Deploy the RonRender escrow contract.")
    parser.add_argument("--rpc-url", required=True)
    parser.add_argument("--keystore", type=Path, required=True, help="The owner's encrypted keystore.")
    parser.add_argument("--operator", required=True)
    parser.add_argument("--fee-recipient", required=True)
    parser.add_argument("--expected-chain-id", type=int, required=True)
    parser.add_argument("--fee-bps", type=int, default=500)
    parser.add_argument("--release-cap-ron", default="1000", help="Most RON released per period, all jobs.")
    parser.add_argument("--period-seconds", type=int, default=86_400)
    args = parser.parse_args(argv)

    w3 = Web3(Web3.HTTPProvider(args.rpc_url, request_kwargs={"timeout": 30}))
    chain_id = w3.eth.chain_id
    if chain_id != args.expected_chain_id:
        print(f"error: the RPC serves chain {chain_id}, not {args.expected_chain_id}", file=sys.stderr)
        return 2
    password = os.environ.get("RONRENDER_KEYSTORE_PASSWORD") or getpass.getpass("owner keystore password: ")
    owner = Account.from_key(Account.decrypt(json.loads(args.keystore.read_text()), password))
    artifact = json.loads(ARTIFACT.read_text())
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    release_cap_wei = int(Decimal(args.release_cap_ron) * 10**18)
    transaction = factory.constructor(
        Web3.to_checksum_address(args.operator),
        Web3.to_checksum_address(args.fee_recipient),
        args.fee_bps,
        release_cap_wei,
        args.period_seconds,
    ).build_transaction(
        {"from": owner.address, "nonce": w3.eth.get_transaction_count(owner.address), "chainId": chain_id}
    )
    signed = owner.sign_transaction(transaction)
    receipt = w3.eth.wait_for_transaction_receipt(
        w3.eth.send_raw_transaction(signed.raw_transaction), timeout=300
    )
    if receipt["status"] != 1:
        print("error: the deployment reverted", file=sys.stderr)
        return 1
    print(
        json.dumps(
            {"chain_id": chain_id, "escrow_address": receipt["contractAddress"], "owner": owner.address}
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
