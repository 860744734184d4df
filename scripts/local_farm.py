"""A local farm on this machine: database migrations, the backend (gunicorn), RQ
workers and render nodes, each a child process, all stopped together.

``python scripts/local_farm.py`` (what ``make up`` runs) keeps one running in the
foreground until Ctrl-C; ``scripts/demo.py`` uses the same ``LocalFarm``.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import requests

VENV_BIN = Path(sys.executable).parent
STARTUP_TIMEOUT_S = 60.0
STOP_GRACE_S = 20.0


class LocalFarm:
    """Start with ``with LocalFarm(...) as farm:``; everything stops on exit."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int = 8000,
        nodes: int = 2,
        workers: int = 2,
        node_threads: int = 0,
        redis_url: str = "redis://127.0.0.1:6379/0",
        queue_prefix: str = "ronrender",
        database_url: str | None = None,
        heartbeat_interval_s: float = 15.0,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self.nodes = nodes
        self.workers = workers
        self.node_threads = node_threads
        self.url = f"http://127.0.0.1:{port}"
        self.heartbeat_interval_s = heartbeat_interval_s
        self.env = dict(os.environ)
        self.env.update(
            {
                "RONRENDER_DATA_DIR": str(self.data_dir),
                "RONRENDER_REDIS_URL": redis_url,
                "RONRENDER_QUEUE_PREFIX": queue_prefix,
                "RONRENDER_URL": self.url,
                "PYTHONUNBUFFERED": "1",
            }
        )
        if database_url:
            self.env["RONRENDER_DATABASE_URL"] = database_url
        self.queue_prefix = queue_prefix
        self.redis_url = redis_url
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.log_dir = self.data_dir / "logs"

    def __enter__(self) -> LocalFarm:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.log_dir / f"{name}.log", "ab")
        self.processes[name] = subprocess.Popen(
            argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [str(VENV_BIN / "flask"), "--app", "backend", "db", "upgrade"],
            env=self.env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._spawn(
            "backend",
            [
                str(VENV_BIN / "gunicorn"),
                "--bind", f"127.0.0.1:{self.port}",
                "--workers", "2",
                "--threads", "4",
                "--timeout", "600",
                "backend:create_app()",
            ],
        )  # fmt: skip
        queues = [f"{self.queue_prefix}-{name}" for name in ("escrow", "verification", "analysis")]
        for index in range(self.workers):
            self._spawn(
                f"worker-{index + 1}",
                [
                    str(VENV_BIN / "rq"), "worker",
                    "--url", self.redis_url,
                    "--worker-class", "rq.worker.SimpleWorker",
                    "--with-scheduler",
                    *queues,
                ],
            )  # fmt: skip
        self._wait_for_backend()
        for index in range(self.nodes):
            name = f"local-node-{index + 1}"
            self._spawn(
                name,
                [
                    str(VENV_BIN / "ronrender-node"), "run",
                    "--backend", self.url,
                    "--name", name,
                    "--work-dir", str(self.data_dir / "nodes" / name),
                    "--threads", str(self.node_threads),
                    "--heartbeat-interval", str(self.heartbeat_interval_s),
                ],
            )  # fmt: skip

    def _wait_for_backend(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.processes["backend"].poll() is not None:
                raise RuntimeError(f"the backend exited; see {self.log_dir / 'backend.log'}")
            try:
                if requests.get(self.url + "/openapi.json", timeout=2).ok:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the backend did not answer on {self.url}")

    def stop(self) -> None:
        """TERM nodes first (they hand their frames back), then workers and the backend."""
        for process in reversed(list(self.processes.values())):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.processes.clear()


def main() -> int:
    parser = argparse.ArgumentParser(description="Run a local RonRender farm until Ctrl-C.")
    parser.add_argument("--data-dir", type=Path, default=Path(".ronrender/farm"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("RONRENDER_PORT", 8000)))
    parser.add_argument("--nodes", type=int, default=2)
    args = parser.parse_args()
    stop = False

    def on_signal(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with LocalFarm(args.data_dir, port=args.port, nodes=args.nodes) as farm:
        print(f"RonRender farm at {farm.url} with {args.nodes} nodes; logs in {farm.log_dir}")
        print(
            f"Submit from another terminal: RONRENDER_URL={farm.url} .venv/bin/ronrender submit SCENE.blend"
        )
        print("Ctrl-C stops everything.")
        while not stop:
            for name, process in farm.processes.items():
                if process.poll() is not None:
                    print(f"{name} exited with code {process.returncode}; stopping the farm")
                    stop = True
            time.sleep(0.5)
    print("farm stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
