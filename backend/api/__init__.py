"""The HTTP layer: blueprints that validate input, call a service, shape output."""

from __future__ import annotations

from typing import Any

from apiflask import APIFlask, HTTPError
from flask import jsonify

from backend.errors import RonRenderError


def register_api(app: APIFlask) -> None:
    from backend import retry_after_refused
    from backend.api import admin, attempts, auth, escrow, jobs, nodes, scenes

    for module in (auth, scenes, jobs, nodes, attempts, escrow, admin):
        app.register_blueprint(module.blueprint)

    @app.errorhandler(RonRenderError)
    def _ronrender_error(error: RonRenderError) -> Any:
        body = {"message": error.message, "reason": error.reason, "detail": error.detail}
        return jsonify(body), error.status

    @app.error_processor
    def _http_error(error: HTTPError) -> Any:
        reason = "VALIDATION_ERROR" if error.status_code == 422 else _reason_code(error.message)
        message = error.message
        if reason in AUTH_REASONS:
            message = AUTH_MESSAGES.get(error.status_code, message)
        body = {"message": message, "reason": reason, "detail": error.detail}
        headers = dict(error.headers or {})
        if error.status_code == 429:
            headers["Retry-After"] = retry_after_refused(app)
        return body, error.status_code, headers


AUTH_REASONS = {"UNAUTHORIZED", "FORBIDDEN"}
AUTH_MESSAGES = {
    401: "sign in first: send Authorization: Bearer <token> (POST /api/v1/auth/challenge, then /login)",
    403: "this needs the admin role",
}


def _reason_code(message: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in message.upper()).strip("_")
