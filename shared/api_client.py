"""A thin HTTP client of the RonRender API that turns error responses into
``ApiError`` with the server's message and reason code."""

from __future__ import annotations

from typing import Any

import requests

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
    def __init__(self, base_url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.session = requests.Session()

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
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
