"""A thin HTTP client of the RonRender API that turns error responses into
``ApiError`` with the server's message and reason code, and signs in.

Two ways to sign in: a bearer token (an artist's API token, e.g. in the
add-on), or a wallet that signs the backend's one-time challenge (nodes and
the artist CLI) for a short-lived session token, renewed before it expires.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

import requests

from .protocol import auth_challenge_path, auth_login_path

# Renew a session token this long before the backend would refuse it.
RENEW_BEFORE_EXPIRY_S = 120.0


class SigningWallet(Protocol):
    """A wallet that can sign the backend's sign-in challenge (EIP-191 text message)."""

    @property
    def address(self) -> str: ...

    def sign_message(self, text: str) -> str: ...


DEFAULT_TIMEOUT_S = 30.0


class ApiError(Exception):
    """The backend answered with an error (``status`` >= 400)."""

    def __init__(self, status: int, message: str, reason: str, detail: Any = None) -> None:
        super().__init__(f"{message} (HTTP {status}, {reason})")
        self.status = status
        self.message = message
        self.reason = reason
        self.detail = detail

    @property
    def transient(self) -> bool:
        """Server-side trouble worth retrying; a 4xx will fail the same way again."""
        return self.status >= 500


def is_transient(error: BaseException) -> bool:
    """True for errors a retry may cure: no connection, a timeout, a 5xx."""
    if isinstance(error, ApiError):
        return error.transient
    return isinstance(error, (requests.ConnectionError, requests.Timeout))


class ApiClient:
    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        token: str | None = None,
        wallet: SigningWallet | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.session = requests.Session()
        self.wallet = wallet
        # Told of each new session token and its end (the artist CLI keeps them between runs).
        self.on_signed_in: Callable[[str, datetime], None] | None = None
        self._token_renew_at = float("inf")
        if token:
            self._use_token(token)

    @property
    def signed_in(self) -> bool:
        return "Authorization" in self.session.headers

    def sign_in(self) -> None:
        """Sign the backend's challenge with the wallet and keep the session token it returns."""
        if self.wallet is None:
            raise ApiError(401, "no wallet to sign in with", "NOT_SIGNED_IN")
        challenge = self._send("POST", auth_challenge_path(), json={"address": self.wallet.address}).json()
        signature = self.wallet.sign_message(challenge["message"])
        issued = self._send(
            "POST", auth_login_path(), json={"message": challenge["message"], "signature": signature}
        ).json()
        expires_at = datetime.fromisoformat(issued["expires_at"])
        self.resume_session(issued["token"], expires_at)
        if self.on_signed_in is not None:
            self.on_signed_in(issued["token"], expires_at)

    def resume_session(self, token: str, expires_at: datetime) -> None:
        """Use a session token from an earlier sign-in until shortly before it ends."""
        lifetime_s = expires_at.timestamp() - time.time()
        self._use_token(token, renew_at=time.monotonic() + lifetime_s - RENEW_BEFORE_EXPIRY_S)

    def _use_token(self, token: str, renew_at: float = float("inf")) -> None:
        self.session.headers["Authorization"] = f"Bearer {token}"
        self._token_renew_at = renew_at

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        can_sign_in = self.wallet is not None
        if can_sign_in and (not self.signed_in or time.monotonic() >= self._token_renew_at):
            self.sign_in()
        try:
            return self._send(method, path, **kwargs)
        except ApiError as error:
            replayable = not hasattr(kwargs.get("data"), "read")
            if error.status != 401 or not can_sign_in or not replayable:
                raise
            self.sign_in()  # the session ended early (revoked, or the backend restarted its keys)
            return self._send(method, path, **kwargs)

    def _send(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout_s)
        response = self.session.request(method, self.base_url + path, **kwargs)
        if response.status_code >= 400:
            raise _error_from(response)
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        return response.json() if response.content else None


def _error_from(response: requests.Response) -> ApiError:
    try:
        body = response.json()
        return ApiError(
            response.status_code, body.get("message", ""), body.get("reason", ""), body.get("detail")
        )
    except ValueError:
        return ApiError(response.status_code, response.text[:200] or response.reason, "HTTP_ERROR")
