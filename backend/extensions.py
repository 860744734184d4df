"""Flask extensions, created here and bound to an app in ``create_app``."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TypeVar

from flask import Flask, current_app, request
from flask_limiter import Limiter
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData

# Named constraints keep Alembic migrations portable between SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING_CONVENTION))
migrate = Migrate()


Made = TypeVar("Made")


def app_scoped(key: str, make: Callable[[], Made]) -> Made:
    """The current app's one object under ``key``, made on first use: per app rather than
    per module, as tests build many apps with their own config. ``dict.setdefault`` is
    atomic, so threads racing to make it all get the one kept."""
    found = current_app.extensions.get(key)
    if found is None:
        found = current_app.extensions.setdefault(key, make())
    return found


def _rate_limit_key() -> str:
    """Per identity: the bearer token's hash when one is sent, else the client's address."""
    offered = request.headers.get("Authorization", "")
    if offered:
        return "token:" + hashlib.sha256(offered.encode()).hexdigest()
    return "ip:" + (request.remote_addr or "unknown")


def rate_limiter(app: Flask) -> Limiter:
    """One limiter per app (tests build many apps with different limits)."""
    return Limiter(key_func=_rate_limit_key, app=app)
