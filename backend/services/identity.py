"""Who is asking: wallet sign-in by signed challenge, bearer tokens, admins.

Every identity is a wallet address. A client asks for a challenge, signs it
(EIP-191 personal message in the Sign-In with Ethereum text format) and gets
a short-lived session token. A signed-in artist can create named API tokens for
scripts and the add-on. Only a token's sha256 is stored; tokens are random
256-bit strings, so a plain hash is enough to make a database leak useless.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import random
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cachetools import TLRUCache
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import is_address, to_checksum_address
from flask import current_app, request
from redis.exceptions import RedisError
from sqlalchemy import Select, bindparam, select

from backend import defaults
from backend.errors import Forbidden, LoginRefused, NotFound
from backend.extensions import app_scoped, db
from backend.models import ApiToken, utc_now
from backend.queues import redis_connection
from shared.protocol import sign_in_message
from shared.states import TokenKind

log = logging.getLogger(__name__)
TOKEN_PREFIX = "rr_"
CHALLENGE_TTL_S = 300
TOKEN_CACHE_SIZE = 100_000
MIN_TRUST_SHARE = 0.75  # of RONRENDER_TOKEN_CACHE_S
ADMIN_TOKEN_ADDRESS = "admin"  # the bootstrap admin token has no wallet behind it


@dataclass(frozen=True)
class Identity:
    """The caller of one request."""

    address: str
    is_admin: bool
    token_kind: str
    token_id: str | None = None

    def owns(self, address: str | None) -> bool:
        return address is not None and address.lower() == self.address.lower()


def _challenge_key(nonce: str) -> str:
    return f"{current_app.config['RONRENDER_QUEUE_PREFIX']}:login:{nonce}"


def issue_challenge(address: str) -> dict[str, str]:
    """A one-time sign-in message for ``address``, valid for five minutes."""
    address = to_checksum_address(address)
    nonce = secrets.token_hex(16)
    issued = utc_now().replace(microsecond=0)
    expires = issued + timedelta(seconds=CHALLENGE_TTL_S)
    message = sign_in_message(
        host=request.host,
        origin=request.host_url.rstrip("/"),
        address=address,
        nonce=nonce,
        issued_at=issued.isoformat(),
        expires_at=expires.isoformat(),
    )
    redis_connection().set(_challenge_key(nonce), message, ex=CHALLENGE_TTL_S)
    return {"message": message, "nonce": nonce, "expires_at": expires.isoformat()}


def sign_in(message: str, signature: str) -> tuple[str, ApiToken]:
    """Trade a signed challenge for a session token. Each challenge works once."""
    nonce = next((line[7:] for line in message.splitlines() if line.startswith("Nonce: ")), "")
    stored = redis_connection().getdel(_challenge_key(nonce)) if nonce else None
    if stored is None or stored.decode() != message:
        raise LoginRefused("unknown or expired challenge: ask for a new one")
    claimed = message.splitlines()[1]
    try:
        signer = Account.recover_message(encode_defunct(text=message), signature=signature)
    except Exception as error:  # malformed signatures raise many kinds of errors
        raise LoginRefused("the signature does not decode") from error
    if signer.lower() != claimed.lower():
        raise LoginRefused("the signature is not from the address in the challenge")
    ttl = timedelta(seconds=current_app.config["RONRENDER_SESSION_TTL_S"])
    return _issue(signer, TokenKind.SESSION, "session", utc_now() + ttl)


def create_api_token(identity: Identity, name: str, expires_in_days: int | None) -> tuple[str, ApiToken]:
    if identity.token_kind == "ADMIN":
        raise Forbidden("the bootstrap admin token has no wallet: sign in with a wallet to create tokens")
    expires = utc_now() + timedelta(days=expires_in_days) if expires_in_days else None
    return _issue(identity.address, TokenKind.API, name, expires)


def _issue(address: str, kind: TokenKind, name: str, expires_at: datetime | None) -> tuple[str, ApiToken]:
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        owner_address=to_checksum_address(address),
        token_sha256=_digest(secret),
        kind=kind,
        name=name,
        expires_at=expires_at,
    )
    db.session.add(token)
    db.session.commit()
    return secret, token


def list_api_tokens(identity: Identity) -> list[ApiToken]:
    return list(
        db.session.scalars(
            select(ApiToken)
            .where(ApiToken.owner_address == identity.address, ApiToken.kind == TokenKind.API)
            .order_by(ApiToken.created_at)
        )
    )


def revoke_token(identity: Identity, token_id: str) -> ApiToken:
    token = db.session.get(ApiToken, token_id)
    # Someone else's token id answers exactly like a missing one: ids leak nothing.
    if token is None or not identity.owns(token.owner_address):
        raise NotFound(f"no token {token_id}")
    if token.revoked_at is None:
        token.revoked_at = utc_now()
        db.session.commit()
        _announce_revocation()
    _forget_token(token)
    return token


def identify(secret: str) -> Identity | None:
    """The identity behind a bearer token, or None when it is unknown, expired or revoked."""
    admin_token = current_app.config["RONRENDER_ADMIN_TOKEN"]
    if admin_token and secrets.compare_digest(secret.encode(), admin_token.encode()):
        return Identity(address=ADMIN_TOKEN_ADDRESS, is_admin=True, token_kind="ADMIN")
    if not secret.startswith(TOKEN_PREFIX):
        return None
    digest = _digest(secret)
    cache = _trusted_tokens()
    with _token_cache_lock:
        cached = cache.get(digest)
    if cached is None:
        token = db.session.execute(_token_by_digest(), {"digest": digest}).first()
        if token is None or token.revoked_at is not None:
            return None
        identity = Identity(
            address=token.owner_address,
            is_admin=token.owner_address.lower() in admin_addresses(),
            token_kind=token.kind,
            token_id=token.id,
        )
        cached = (identity, token.expires_at)
        with _token_cache_lock:
            cache[digest] = cached
    identity, expires_at = cached
    if expires_at is not None and expires_at <= datetime.now(UTC):
        return None
    return identity


@functools.cache
def _token_by_digest() -> Select[Any]:
    """What identifying a bearer needs of its token row; built once, as every request asks."""
    return select(
        ApiToken.id, ApiToken.owner_address, ApiToken.kind, ApiToken.expires_at, ApiToken.revoked_at
    ).where(ApiToken.token_sha256 == bindparam("digest"))


# Every request carries a token: a process trusts what it looked up for a while (3/4 to
# all of RONRENDER_TOKEN_CACHE_S) instead of reading the same row again and again. A revocation
# counts up a counter in Redis, which each process reads at most once a second
# (defaults.TOKEN_REVOCATION_CHECK_S): when it moved, or cannot be read, the process
# forgets every token it trusted and reads each again.
_token_cache_lock = threading.Lock()


def _revocations_key() -> str:
    return f"{current_app.config['RONRENDER_QUEUE_PREFIX']}:token-revocations"


def _announce_revocation() -> None:
    """Tell every process to stop trusting the tokens it looked up; sent after the commit,
    so that a process reading the token again finds it revoked."""
    try:
        redis_connection().incr(_revocations_key())
    except RedisError:  # the revocation stands; others trust their copy up to RONRENDER_TOKEN_CACHE_S
        log.warning("token revoked; Redis unreachable, so other processes trust it until their cache ends")


def _trusted_tokens() -> TLRUCache:
    """The process's token cache, emptied first if a token was revoked since it last looked."""
    cache = _token_cache()
    checked = app_scoped("ronrender_token_revocations", lambda: {"count": None, "next_s": 0.0})
    now = time.monotonic()
    if now >= checked["next_s"]:
        try:
            count = redis_connection().get(_revocations_key())
        except RedisError:
            count = object()  # unknown: trust nothing kept
        if count != checked["count"]:
            with _token_cache_lock:
                cache.clear()
        checked.update(count=count, next_s=now + defaults.TOKEN_REVOCATION_CHECK_S)
    return cache


def _token_cache() -> TLRUCache:
    return app_scoped("ronrender_token_cache", _new_token_cache)


def _new_token_cache() -> TLRUCache:
    ttl_s = current_app.config["RONRENDER_TOKEN_CACHE_S"]
    return token_trust_cache(ttl_s) if ttl_s > 0 else _NoCache()


def token_trust_cache(ttl_s: float, timer: Callable[[], float] = time.monotonic) -> TLRUCache:
    """Trusts each token for a random 3/4 to all of ``ttl_s``: the tokens a farm's nodes
    sent in its first seconds would otherwise all be read again in the same seconds,
    every ``ttl_s``, as a burst of reads on a busy backend."""

    def trusted_until(_digest: str, _identity: object, now: float) -> float:
        return now + ttl_s * random.uniform(MIN_TRUST_SHARE, 1.0)

    return TLRUCache(maxsize=TOKEN_CACHE_SIZE, ttu=trusted_until, timer=timer)


class _NoCache(dict):
    """A cache that keeps nothing (RONRENDER_TOKEN_CACHE_S = 0)."""

    def __setitem__(self, key: object, value: object) -> None:
        pass


def _forget_token(token: ApiToken) -> None:
    with _token_cache_lock:
        _token_cache().pop(token.token_sha256, None)


def admin_addresses() -> set[str]:
    configured = (a.strip() for a in current_app.config["RONRENDER_ADMIN_ADDRESSES"])
    return {a.lower() for a in configured if is_address(a)}


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
