"""Sign-in: a wallet signs a one-time challenge and gets a session token;
signed-in artists create and revoke named API tokens."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint

from backend.api.access import bearer, caller
from backend.api.schemas import (
    ApiTokenIn,
    ApiTokensOut,
    ChallengeIn,
    ChallengeOut,
    IssuedTokenOut,
    LoginIn,
    RevokedTokenOut,
    WhoAmIOut,
)
from backend.services import identity
from shared.protocol import API_PREFIX

blueprint = APIBlueprint("auth", __name__, url_prefix=f"{API_PREFIX}/auth", tag="Auth")


def _issued(secret: str, token: Any) -> dict[str, Any]:
    return {**{c.name: getattr(token, c.name) for c in token.__table__.columns}, "token": secret}


@blueprint.post("/challenge")
@blueprint.input(ChallengeIn)
@blueprint.output(ChallengeOut)
@blueprint.doc(summary="A one-time message for a wallet to sign (valid five minutes)")
def challenge(json_data: dict[str, Any]) -> Any:
    return identity.issue_challenge(json_data["address"])


@blueprint.post("/login")
@blueprint.input(LoginIn)
@blueprint.output(IssuedTokenOut, status_code=201)
@blueprint.doc(
    summary="Trade a signed challenge for a short-lived session token",
    responses={401: "Unknown or expired challenge, or a signature from another wallet"},
)
def login(json_data: dict[str, Any]) -> Any:
    return _issued(*identity.sign_in(json_data["message"], json_data["signature"]))


@blueprint.get("/me")
@blueprint.auth_required(bearer)
@blueprint.output(WhoAmIOut)
@blueprint.doc(summary="The wallet behind the token")
def whoami() -> Any:
    return caller()


@blueprint.post("/tokens")
@blueprint.auth_required(bearer)
@blueprint.input(ApiTokenIn)
@blueprint.output(IssuedTokenOut, status_code=201)
@blueprint.doc(summary="Create a named API token (for scripts and the Blender add-on); shown once")
def create_token(json_data: dict[str, Any]) -> Any:
    return _issued(*identity.create_api_token(caller(), json_data["name"], json_data["expires_in_days"]))


@blueprint.get("/tokens")
@blueprint.auth_required(bearer)
@blueprint.output(ApiTokensOut)
@blueprint.doc(summary="My API tokens (never their secrets)")
def list_tokens() -> Any:
    return {"tokens": identity.list_api_tokens(caller())}


@blueprint.delete("/tokens/<token_id>")
@blueprint.auth_required(bearer)
@blueprint.output(RevokedTokenOut)
@blueprint.doc(summary="Revoke one of my API tokens; it stops working at once")
def revoke_token(token_id: str) -> Any:
    return identity.revoke_token(caller(), token_id)
