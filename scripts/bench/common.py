"""What the benchmarks share: paths, a fresh PostgreSQL schema, the backend under
gunicorn, a seeded claimable job, percentiles and process memory."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent.parent
SCRIPTS_DIR = ROOT / "scripts"
OUTPUT_DIR = ROOT / "bench-output"
VENV_BIN = Path(sys.executable).parent
REDIS_URL = os.environ.get("RONRENDER_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_DSN = os.environ.get("RONRENDER_BENCH_POSTGRES_DSN", "postgresql://root@127.0.0.1:5432/test")
BACKEND_STARTUP_TIMEOUT_S = 60.0
BACKEND_STOP_GRACE_S = 10.0
# gunicorn's own default. Thirty seconds (past a node's 15 s beat) ended the resets of
# requests sent on connections the server was closing, but pins each node to one worker.
GUNICORN_KEEPALIVE_S = 2

if str(SCRIPTS_DIR) not in sys.path:  # local_chain and local_farm import each other by bare name
    sys.path.insert(0, str(SCRIPTS_DIR))

from child_processes import free_port  # noqa: E402


@dataclass
class Section:
    """One benchmark's figures (None where unmeasured), its notes, and table rows."""

    figures: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    rows: list[tuple[str, str, str]] = field(default_factory=list)  # (what, value, target)

    def unmeasured(self, keys: Sequence[str], reason: str) -> None:
        for key in keys:
            self.figures[key] = None
        self.notes.append(f"unmeasured {', '.join(keys)}: {reason}")


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child process: this checkout first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


REFERENCE_LOOP_ADDITIONS = 5_000_000


def reference_loop_s(repeats: int = 3) -> float:
    """Seconds this machine takes for a fixed pure-Python loop (best of ``repeats``): the
    day's CPU speed, printed beside the figures. The same code measures very differently
    on different days here, and a figure is only comparable with this one beside it."""
    best = math.inf
    for _ in range(repeats):
        started, total = time.perf_counter(), 0
        for number in range(REFERENCE_LOOP_ADDITIONS):
            total += number
        best = min(best, time.perf_counter() - started)
    return best


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile (``fraction`` in 0..1), None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def directory_bytes(path: Path) -> int:
    """Bytes of every file under ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of a process and all its descendants (Linux /proc)."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
        pending += _children(current)
    return total


def tree_written_bytes(pid: int) -> int:
    """Bytes a process and its descendants wrote to storage, less writes cancelled by
    truncating or deleting the file (``/proc/PID/io``)."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            fields = dict(line.split(": ") for line in Path(f"/proc/{current}/io").read_text().splitlines())
            total += int(fields["write_bytes"]) - int(fields["cancelled_write_bytes"])
        except (OSError, KeyError, ValueError):
            continue
        pending += _children(current)
    return total


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh schema in the PostgreSQL database ``test``, dropped afterwards; yields its URL."""
    import psycopg

    schema = f"rr_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_DSN, autocommit=True, connect_timeout=5) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    base = POSTGRES_DSN.replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA {schema} CASCADE")


def postgres_problem() -> str | None:
    """Why PostgreSQL cannot be used, or None."""
    try:
        import psycopg

        with psycopg.connect(POSTGRES_DSN, connect_timeout=3):
            return None
    except Exception as error:
        return f"PostgreSQL is not reachable at {POSTGRES_DSN}: {error}"


def app_config(database_url: str, data_dir: Path, queue_prefix: str) -> dict[str, Any]:
    """The backend's config for a bench: its own database, storage and queues; no chain."""
    return {
        "SQLALCHEMY_DATABASE_URI": database_url,
        "RONRENDER_DATA_DIR": str(data_dir),
        "RONRENDER_STORAGE_DIR": str(data_dir / "storage"),
        "RONRENDER_REDIS_URL": REDIS_URL,
        "RONRENDER_QUEUE_PREFIX": queue_prefix,
    }


def backend_env(config: dict[str, Any], **extra: str) -> dict[str, str]:
    """The same config as ``RONRENDER_*`` environment variables for backend processes."""
    return child_env(
        RONRENDER_DATABASE_URL=config["SQLALCHEMY_DATABASE_URI"],
        RONRENDER_DATA_DIR=config["RONRENDER_DATA_DIR"],
        RONRENDER_STORAGE_DIR=config["RONRENDER_STORAGE_DIR"],
        RONRENDER_REDIS_URL=config["RONRENDER_REDIS_URL"],
        RONRENDER_QUEUE_PREFIX=config["RONRENDER_QUEUE_PREFIX"],
        **extra,
    )


def migrate(config: dict[str, Any]) -> None:
    """Bring the bench's database to the current schema (Alembic, as ``flask db upgrade``)."""
    done = subprocess.run(
        [str(VENV_BIN / "flask"), "--app", "backend", "db", "upgrade"],
        env=backend_env(config),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"migrations failed: {done.stderr[-2000:]}")


def drop_queues(config: dict[str, Any]) -> None:
    """Delete the bench's RQ queues and their jobs from Redis."""
    from redis import Redis
    from rq import Queue

    from backend import defaults

    connection = Redis.from_url(config["RONRENDER_REDIS_URL"])
    for name in defaults.ALL_QUEUES:
        Queue(f"{config['RONRENDER_QUEUE_PREFIX']}-{name}", connection=connection).delete(delete_jobs=True)


class Backend:
    """The real backend under gunicorn (``with Backend(...) as backend:``); stopped on exit."""

    def __init__(
        self,
        config: dict[str, Any],
        log_path: Path,
        *,
        workers: int = 4,
        threads: int = 4,
        keepalive_s: int = GUNICORN_KEEPALIVE_S,
        **env: str,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = config
        self.log_path = log_path
        self.workers = workers
        self.threads = threads
        self.keepalive_s = keepalive_s
        self.env = backend_env(config, **env)
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Backend:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    str(VENV_BIN / "gunicorn"),
                    "--bind",
                    f"127.0.0.1:{self.port}",
                    "--workers",
                    str(self.workers),
                    "--worker-class",
                    "gthread",
                    "--threads",
                    str(self.threads),
                    "--backlog",
                    "4096",
                    "--timeout",
                    "600",
                    "--keep-alive",
                    str(self.keepalive_s),
                    "--chdir",
                    str(ROOT),
                    "backend.wsgi:app",  # as in production: built, then frozen out of the collector's way
                ],
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + BACKEND_STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the backend exited; see {self.log_path}")
            try:
                if requests.get(self.url + "/openapi.json", timeout=5).ok:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the backend did not answer on {self.url}; see {self.log_path}")

    def written_bytes(self) -> int:
        """Bytes the gunicorn master and its workers wrote to disk so far."""
        return tree_written_bytes(self.process.pid) if self.process is not None else 0

    def rss_bytes(self) -> int:
        """Resident memory of the gunicorn master and its workers."""
        return tree_rss_bytes(self.process.pid) if self.process is not None else 0

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=BACKEND_STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
