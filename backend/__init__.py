"""The RonRender backend: a Flask app (HTTP API) plus RQ workers (analysis,
verification, escrow). ``create_app`` builds the app from a config mapping."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from apiflask import APIFlask
from flask_limiter import Limiter
from werkzeug.routing import IntegerConverter

from backend.config import config_from_env, engine_options
from backend.extensions import db, migrate, rate_limiter

MIGRATIONS_DIR = str(Path(__file__).resolve().parent / "migrations")


def create_app(config: dict[str, Any] | None = None) -> APIFlask:
    """Build the app; ``config`` overrides what the environment says."""
    app = APIFlask(__name__, title="RonRender API", version="1")
    app.config.update(config_from_env())
    app.config.update(config or {})
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {
        **engine_options(app.config["SQLALCHEMY_DATABASE_URI"]),
        **(config or {}).get("SQLALCHEMY_ENGINE_OPTIONS", {}),
    }
    Path(app.config["RONRENDER_DATA_DIR"]).mkdir(parents=True, exist_ok=True)
    Path(app.config["RONRENDER_STORAGE_DIR"]).mkdir(parents=True, exist_ok=True)

    db.init_app(app)

    @app.teardown_request
    def _discard_a_failed_transaction(error: BaseException | None) -> None:
        # An unexpected error mid-flush must not poison the next request on this session.
        if error is not None:
            db.session.rollback()

    migrate.init_app(app, db, directory=MIGRATIONS_DIR, render_as_batch=True)
    _enable_sqlite_wal(app)

    # Ids in URLs fit the database's 32-bit integer columns; larger ones are simply not found.
    app.url_map.converters["int"] = BoundedIntegerConverter
    from backend.api import register_api
    from backend.dashboard import blueprint as dashboard

    register_api(app)
    app.register_blueprint(dashboard)

    from backend import observability
    from backend.api import health

    app.register_blueprint(health.blueprint)
    observability.init_app(app)  # /metrics, and JSON logs when RONRENDER_LOG_FORMAT=json
    limiter = _init_rate_limits(app)
    # Probes and scrapers poll these all day; the reverse proxy restricts who reaches them.
    limiter.exempt(health.blueprint)
    limiter.exempt(observability.metrics_blueprint)
    return app


class BoundedIntegerConverter(IntegerConverter):
    def __init__(self, url_map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", 2**31 - 1)
        super().__init__(url_map, *args, **kwargs)


def _enable_sqlite_wal(app: APIFlask) -> None:
    """Let SQLite readers proceed while one writer commits (several processes share the file)."""
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        return
    from sqlalchemy import event

    with app.app_context():

        @event.listens_for(db.engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()


def _init_rate_limits(app: APIFlask) -> Limiter:
    """Limits per identity, counted in Redis so every gunicorn worker shares them."""
    limit = app.config["RONRENDER_RATE_LIMIT"]
    app.config.setdefault("RATELIMIT_ENABLED", bool(limit))
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config["RONRENDER_REDIS_URL"])
    app.config.setdefault("RATELIMIT_KEY_PREFIX", app.config["RONRENDER_QUEUE_PREFIX"] + ":ratelimit")
    app.config.setdefault("RATELIMIT_DEFAULT", limit or "1000000 per second")
    # Flask-Limiter's headers would stamp every answer with Retry-After (its window's
    # reset, up to a minute): an idle node reads that on an empty claim and waits for
    # nothing. Only a refusal says how long to wait (``retry_after_refused``).
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", False)
    limiter = rate_limiter(app)
    app.extensions["ronrender_rate_limiter"] = limiter
    return limiter


def retry_after_refused(app: APIFlask) -> str:
    """Seconds until the caller's rate-limit window resets, for a 429's Retry-After."""
    current = app.extensions["ronrender_rate_limiter"].current_limit
    if current is None:
        return "1"
    return str(max(1, int(current.reset_at - time.time())))
