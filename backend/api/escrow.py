"""The escrow as clients need it: which chain and contract, and a wallet's balance there."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from apiflask.validators import Regexp
from flask import current_app

from backend.api.schemas import EscrowOut, WalletOut
from backend.errors import RonRenderError
from backend.services.chain_access import escrow_chain
from shared.protocol import API_PREFIX

blueprint = APIBlueprint("escrow", __name__, url_prefix=f"{API_PREFIX}/escrow", tag="Escrow")
ADDRESS = Regexp(r"^0x[0-9a-fA-F]{40}$")


@blueprint.get("")
@blueprint.output(EscrowOut)
@blueprint.doc(summary="The chain and contract holding the escrow, for wallets to deposit")
def escrow_info() -> Any:
    chain = escrow_chain()
    return {
        "chain_id": chain.chain_id,
        "rpc_url": current_app.config["RONRENDER_PUBLIC_RPC_URL"],
        "contract_address": chain.contract.address,
        "fee_bps": chain.fee_bps(),
        "abi": chain.contract.abi,
    }


@blueprint.get("/wallets/<address>")
@blueprint.output(WalletOut)
@blueprint.doc(summary="A wallet's free escrow balance and the spending cap it granted")
def wallet(address: str) -> Any:
    try:
        ADDRESS(address)
    except Exception as error:
        raise RonRenderError(f"{address} is not a 0x-prefixed 20-byte address") from error
    chain = escrow_chain()
    return {
        "address": address,
        "free_balance_wei": str(chain.free_balance(address)),
        "spending_cap_wei": str(chain.spending_cap(address)),
    }
