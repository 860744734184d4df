"""The RonRender backend: a Flask app (HTTP API) plus RQ workers (analysis,
verification, escrow). ``create_app`` builds the app from a config mapping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from apiflask import APIFlask

from backend.config import config_from_env, engine_options
from backend.extensions import db, migrate

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
    migrate.init_app(app, db, directory=MIGRATIONS_DIR, render_as_batch=True)
    _enable_sqlite_wal(app)

    from backend.api import register_api
    from backend.dashboard import blueprint as dashboard

    register_api(app)
    app.register_blueprint(dashboard)
    return app


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
