"""Every way the benchmarks sign in and every HTTP header they send as an artist
or as a node, in one place.

The API signs wallets in: ``POST /auth/challenge`` with the address gives a message,
the wallet signs it (EIP-191 personal message), ``POST /auth/login`` trades it for a
session token, sent as ``Authorization: Bearer``. Each simulated node and the bench
artist has a deterministic dev wallet of its own (``bench_wallet``). Against a
backend without sign-in (the challenge answers 404) the token is None and no
header is sent.
"""

from __future__ import annotations

import hashlib
from typing import Any

import aiohttp
import requests
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

from shared.protocol import API_PREFIX, LEASE_TOKEN_HEADER

CHALLENGE_PATH = f"{API_PREFIX}/auth/challenge"
LOGIN_PATH = f"{API_PREFIX}/auth/login"
OCTET_STREAM = {"Content-Type": "application/octet-stream"}


def bench_wallet(name: str) -> LocalAccount:
    """A deterministic dev wallet for ``name`` (say "node-17" or "artist"); never holds funds."""
    return Account.from_key(hashlib.sha256(f"ronrender-bench:{name}".encode()).digest())


def _signed(challenge: dict[str, Any], wallet: LocalAccount) -> dict[str, str]:
    message = challenge["message"]
    signature = wallet.sign_message(encode_defunct(text=message)).signature.to_0x_hex()
    return {"message": message, "signature": signature}


def login(base_url: str, wallet: LocalAccount, session: requests.Session | None = None) -> str | None:
    """A session token for ``wallet`` (blocking), or None when the API has no sign-in."""
    http = session or requests.Session()
    answer = http.post(base_url + CHALLENGE_PATH, json={"address": wallet.address}, timeout=30)
    if answer.status_code == 404:
        return None
    answer.raise_for_status()
    token = http.post(base_url + LOGIN_PATH, json=_signed(answer.json(), wallet), timeout=30)
    token.raise_for_status()
    return token.json()["token"]


async def login_async(http: aiohttp.ClientSession, wallet: LocalAccount) -> str | None:
    """``login`` for a simulated node on an aiohttp session (whose base URL is the backend)."""
    async with http.post(CHALLENGE_PATH, json={"address": wallet.address}) as answer:
        if answer.status == 404:
            return None
        if answer.status != 200:
            raise RuntimeError(f"challenge: HTTP {answer.status}: {(await answer.text())[:300]}")
        challenge = await answer.json()
    async with http.post(LOGIN_PATH, json=_signed(challenge, wallet)) as answer:
        if answer.status != 201:
            raise RuntimeError(f"login: HTTP {answer.status}: {(await answer.text())[:300]}")
        return (await answer.json())["token"]


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def artist_headers(token: str | None) -> dict[str, str]:
    """Headers of an artist's request (upload, create, download)."""
    return bearer(token)


def upload_headers(token: str | None) -> dict[str, str]:
    """Headers of an artist's scene upload (raw bytes)."""
    return {**bearer(token), **OCTET_STREAM}


def node_headers(token: str | None) -> dict[str, str]:
    """Headers of a node's request (register, claim, heartbeat)."""
    return bearer(token)


def lease_headers(token: str | None, lease_token: str) -> dict[str, str]:
    """Headers of a node's upload under its lease."""
    return {**bearer(token), **OCTET_STREAM, LEASE_TOKEN_HEADER: lease_token}
