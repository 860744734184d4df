"""Bearer-token authentication for the API and the ownership checks every
blueprint shares. Refusals are 401 (who are you?) or 403 (not yours); a
resource that belongs to someone else answers 404, so ids leak nothing."""

from __future__ import annotations

from apiflask import HTTPTokenAuth

from backend.errors import Forbidden, NotFound
from backend.services import identity
from backend.services.identity import Identity

bearer = HTTPTokenAuth(
    scheme="Bearer",
    description="A session token from POST /api/v1/auth/login or an API token from POST /api/v1/auth/tokens.",
)

ADMIN = "admin"


@bearer.verify_token
def _verify(secret: str) -> Identity | None:
    return identity.identify(secret) if secret else None


@bearer.get_user_roles
def _roles(caller: Identity) -> list[str]:
    return [ADMIN] if caller.is_admin else []


def caller() -> Identity:
    """The identity of the current request (inside an ``auth_required`` view)."""
    return bearer.current_user


def require_owner(owner_address: str | None, what: str) -> None:
    """404 unless the caller owns the resource or is an admin."""
    me = caller()
    if not (me.is_admin or me.owns(owner_address)):
        raise NotFound(f"no {what}")


def require_same_address(address: str, what: str) -> None:
    """403 when a request names a wallet other than the signed-in one."""
    me = caller()
    if not me.owns(address):
        raise Forbidden(f"{what} must be the signed-in wallet {me.address}")
