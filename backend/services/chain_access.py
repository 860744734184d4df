"""The configured escrow chain for this app, connected once per process, and the
operator lock that keeps the operator's nonces in order across workers."""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from pathlib import Path

from eth_account import Account
from flask import current_app

from backend import defaults
from backend.errors import EscrowError
from backend.escrow_chain import ChainConfig, EscrowChain
from backend.extensions import app_scoped
from backend.queues import redis_connection

OPERATOR_LOCK_PREFIX = "ronrender:escrow-operator:"


def escrow_chain() -> EscrowChain:
    """The app's escrow chain, built on first use (decrypting a keystore is slow)."""
    return app_scoped("ronrender_escrow_chain", lambda: EscrowChain(chain_config()))


def chain_config() -> ChainConfig:
    settings = current_app.config
    if not settings["RONRENDER_CHAIN_RPC_URL"] or not settings["RONRENDER_ESCROW_ADDRESS"]:
        raise EscrowError("no escrow chain is configured (RONRENDER_CHAIN_RPC_URL, RONRENDER_ESCROW_ADDRESS)")
    return ChainConfig(
        rpc_url=settings["RONRENDER_CHAIN_RPC_URL"],
        contract_address=settings["RONRENDER_ESCROW_ADDRESS"],
        operator_key=_operator_key(),
        expected_chain_id=settings["RONRENDER_CHAIN_ID"],
        confirmations=settings["RONRENDER_CONFIRMATIONS"],
    )


def _operator_key() -> str:
    settings = current_app.config
    keystore = settings["RONRENDER_OPERATOR_KEYSTORE"]
    if keystore:
        password = Path(settings["RONRENDER_OPERATOR_KEYSTORE_PASSWORD_FILE"]).read_text().strip()
        return "0x" + bytes(Account.decrypt(json.loads(Path(keystore).read_text()), password)).hex()
    if settings["RONRENDER_OPERATOR_KEY"]:
        return settings["RONRENDER_OPERATOR_KEY"]
    raise EscrowError("no operator key: set RONRENDER_OPERATOR_KEYSTORE and its password file")


def operator_lock() -> AbstractContextManager[object]:
    """Held from choosing a nonce until the transaction is sent, by one worker at a time."""
    return redis_connection().lock(
        OPERATOR_LOCK_PREFIX + escrow_chain().operator.address,
        timeout=defaults.OPERATOR_LOCK_TIMEOUT_S,
        blocking_timeout=defaults.OPERATOR_LOCK_TIMEOUT_S,
    )
