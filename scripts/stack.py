"""The single-machine production-like stack: every process of the ``Procfile`` under honcho,
configured by one env file.

    python scripts/stack.py --env stack.env [--concurrency verification=2,escrow=1]

Before anything starts it reads the env file (honcho's format: ``KEY=value`` lines, quote
values with spaces or ``#``), refuses a config that cannot work (no database URL, no chain
id, an RPC that serves another chain, a database, Redis or storage that does not answer),
runs the database migrations, empties ``PROMETHEUS_MULTIPROC_DIR`` if one is configured,
and then runs ``honcho start`` in the foreground until SIGTERM or Ctrl-C, which it passes
on. honcho stops every process when one of them exits. ``--check`` stops after the checks.
Every problem is one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from honcho.environ import parse as parse_env_file
from honcho.environ import parse_procfile

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
PROCFILE = ROOT / "Procfile"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
MIGRATION_TIMEOUT_S = 600
# What a production-like stack cannot do without (the backend has embedded defaults for a
# local farm, which would silently give each machine its own SQLite file).
REQUIRED = (
    "RONRENDER_DATABASE_URL",
    "RONRENDER_REDIS_URL",
    "RONRENDER_CHAIN_RPC_URL",
    "RONRENDER_CHAIN_ID",
    "RONRENDER_ESCROW_ADDRESS",
)
EXIT_BAD_CONFIG = 2
HONCHO_STOPPED_CODES = (128 + signal.SIGINT, 128 + signal.SIGTERM)


class ConfigError(Exception):
    """The stack's configuration is unusable; the message is one line for the operator."""


def read_env_file(path: Path) -> dict[str, str]:
    """The settings of an env file, parsed exactly as honcho will parse it for the processes."""
    try:
        return parse_env_file(path.read_text())
    except OSError as error:
        raise ConfigError(f"cannot read the env file {path}: {error.strerror}") from error


def read_process_types(procfile: Path) -> list[str]:
    try:
        return list(parse_procfile(procfile.read_text()).processes)
    except OSError as error:
        raise ConfigError(f"cannot read the Procfile {procfile}: {error.strerror}") from error


def parse_concurrency(text: str, process_types: list[str]) -> dict[str, int]:
    """``web=2,verification=3`` → counts, for process types the Procfile has."""
    counts: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, count = item.partition("=")
        if name not in process_types:
            raise ConfigError(f"--concurrency: no process type {name!r} (the Procfile has {process_types})")
        if not count.isdigit():
            raise ConfigError(f"--concurrency: {item!r} is not NAME=COUNT")
        counts[name] = int(count)
    return counts


def check_settings(env: dict[str, str]) -> None:
    """Settings that must be present, before anything is contacted."""
    missing = [name for name in REQUIRED if not env.get(name)]
    if missing:
        raise ConfigError(f"the env file must set {', '.join(missing)} (see stack.env.example)")
    if not env["RONRENDER_CHAIN_ID"].isdigit():
        raise ConfigError(f"RONRENDER_CHAIN_ID must be a number, not {env['RONRENDER_CHAIN_ID']!r}")
    if env["RONRENDER_DATABASE_URL"].startswith("sqlite"):
        print(
            "stack: warning: RONRENDER_DATABASE_URL is SQLite; use PostgreSQL beyond one machine",
            file=sys.stderr,
        )


def check_services(env: dict[str, str]) -> list[str]:
    """Ask the database, Redis, storage and the chain, with the backend's own code; returns
    one line per failure. The chain id is read from the RPC and must be RONRENDER_CHAIN_ID."""
    from backend import create_app
    from backend.api.health import check_database, check_redis, check_storage
    from backend.config import config_from_env
    from backend.services.chain_access import escrow_chain

    def check_chain() -> dict[str, Any]:
        return {"chain_id": escrow_chain().chain_id}  # raises on another chain, or without a key

    app = create_app(config_from_env(env))
    problems = []
    with app.app_context():
        for name, check in (
            ("database", check_database),
            ("redis", check_redis),
            ("storage", check_storage),
            ("chain", check_chain),
        ):
            try:
                check()
            except Exception as error:  # every failing check is reported, not just the first
                first_line = (str(error).strip().splitlines() or [""])[0]
                problems.append(f"{name}: {type(error).__name__}: {first_line}")
    return problems


def run_migrations(env: dict[str, str]) -> None:
    """``flask db upgrade`` with the stack's settings (idempotent: a no-op at head)."""
    result = subprocess.run(
        [str(VENV_BIN / "flask"), "--app", "backend", "db", "upgrade"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=MIGRATION_TIMEOUT_S,
    )
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines() or ["(no output)"]
        raise ConfigError(f"the database migrations failed: {lines[-1]}")


def prepare_multiproc_dir(directory: str) -> None:
    """One empty directory for every process's metric files. Only the files prometheus_client
    writes (``*.db``) are removed, so a mistyped path cannot wipe anything else."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()


def run_honcho(env_file: Path, procfile: Path, concurrency: str, env: dict[str, str]) -> int:
    """``honcho start`` in the foreground; SIGTERM and SIGINT are passed on to it (it stops
    every process, TERM then KILL after 5 s). The exit status is 0 after a requested stop,
    else honcho's (that of the first process that exited)."""
    argv = [str(VENV_BIN / "honcho"), "start", "--no-colour", "-d", str(ROOT)]
    argv += ["-e", str(env_file), "-f", str(procfile)]
    if concurrency:
        argv += ["-c", concurrency]
    honcho = subprocess.Popen(argv, env=env, cwd=ROOT)
    asked_to_stop = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal asked_to_stop
        asked_to_stop = True
        if honcho.poll() is None:
            honcho.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    code = honcho.wait()
    # honcho answers 128 + the signal when it was told to stop: a requested stop is a clean one.
    return 0 if asked_to_stop and code in HONCHO_STOPPED_CODES else code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run RonRender's production-like stack from an env file.")
    parser.add_argument("--env", type=Path, required=True, help="the env file (see stack.env.example)")
    parser.add_argument("--procfile", type=Path, default=PROCFILE)
    parser.add_argument(
        "--concurrency", default="", help="processes per type, e.g. web=1,verification=2 (default 1 each)"
    )
    parser.add_argument("--check", action="store_true", help="check the config and services, then exit")
    parser.add_argument("--no-migrate", action="store_true", help="do not run the database migrations")
    args = parser.parse_args(argv)

    env_file = args.env.resolve()
    # Metric files are for the stack's processes only: this one (it imports the backend to
    # check the config) and the migration must not leave any behind.
    os.environ.pop(MULTIPROC_ENV, None)
    try:
        settings = read_env_file(env_file)
        process_types = read_process_types(args.procfile)
        parse_concurrency(args.concurrency, process_types)
        env = {**os.environ, **settings, "PYTHONUNBUFFERED": "1"}
        env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"  # gunicorn, rq, ronrender-sweeper
        multiproc_dir = env.pop(MULTIPROC_ENV, "")
        check_settings(env)
        problems = check_services(env)
        if problems:
            for problem in problems:
                print(f"stack: {problem}", file=sys.stderr)
            return EXIT_BAD_CONFIG
        if args.check:
            print("stack: the configuration and every service check out")
            return 0
        if not args.no_migrate:
            run_migrations(env)
    except ConfigError as error:
        print(f"stack: {error}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    if multiproc_dir:
        prepare_multiproc_dir(multiproc_dir)
        env[MULTIPROC_ENV] = multiproc_dir
    print(f"stack: starting {', '.join(process_types)} from {args.procfile} with {env_file}", flush=True)
    return run_honcho(env_file, args.procfile.resolve(), args.concurrency, env)


if __name__ == "__main__":
    sys.exit(main())
