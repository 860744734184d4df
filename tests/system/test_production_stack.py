"""The production-like stack as an operator runs it: `scripts/stack.py --env FILE` starts the
Procfile under honcho (gunicorn with several workers, one RQ worker per queue and two for
verification, the escrow scheduler, the sweeper) on PostgreSQL, S3 storage (SeaweedFS on
loopback) and a local chain; an artist submits with the CLI, one node renders, and the
frames, payments, stored objects and metrics are checked from outside."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from eth_account import Account
from prometheus_client.parser import text_string_to_metric_families

from backend.storage import object_key
from tests.conftest import REDIS_URL
from tests.system.conftest import free_port

pytestmark = pytest.mark.system

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
STACK = [sys.executable, str(ROOT / "scripts" / "stack.py")]
STARTUP_TIMEOUT_S = 180.0
SUBMIT_TIMEOUT_S = 600.0
SETTLE_TIMEOUT_S = 120.0
STOP_GRACE_S = 30.0
KEYSTORE_PASSWORD = "stack-test"
FRAMES = 2


def write_env_file(path: Path, settings: dict[str, str]) -> Path:
    """An env file in honcho's format: every value quoted (single quotes keep it verbatim)."""
    for name, value in settings.items():
        assert "'" not in value and "\n" not in value, name
    path.write_text("".join(f"{name}='{value}'\n" for name, value in settings.items()))
    path.chmod(0o600)
    return path


def processes_with(marker: str) -> list[int]:
    """Pids of live processes whose environment holds ``marker`` (a setting unique to one test)."""
    needle = marker.encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def log_tails(*paths: Path, chars: int = 6000) -> str:
    parts = []
    for path in paths:
        text = path.read_text(errors="replace") if path.exists() else "(no log)"
        parts.append(f"----- {path.name} (last {chars} characters) -----\n{text[-chars:]}")
    return "\n".join(parts)


class Spawned:
    """A child in its own process group, logging to a file; stopped TERM, then KILL."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self, grace_s: float = STOP_GRACE_S) -> int | None:
        """TERM the group, wait, KILL the group; the exit status, or None if it had to be killed."""
        if self.process.poll() is not None:
            return self.process.returncode
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                pass
            try:
                code = self.process.wait(timeout=grace_s)
                return code if sig == signal.SIGTERM else None
            except subprocess.TimeoutExpired:
                continue
        return None


@pytest.fixture
def stack_settings(database_url, seaweedfs, chain, escrow, tmp_path) -> Iterator[dict[str, str]]:
    """A full production-like config: PostgreSQL, S3, the dev chain, an admin token, a unique
    queue prefix (also the marker that finds the stack's processes to clean up after)."""
    run_id = uuid.uuid4().hex[:10]
    settings = {
        "RONRENDER_BIND": f"127.0.0.1:{free_port()}",
        "RONRENDER_WEB_WORKERS": "2",
        "RONRENDER_WEB_THREADS": "4",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        "RONRENDER_LOG_FORMAT": "json",
        "RONRENDER_DATABASE_URL": database_url,
        "RONRENDER_REDIS_URL": REDIS_URL,
        "RONRENDER_QUEUE_PREFIX": f"rr-stack-{run_id}",
        "RONRENDER_DATA_DIR": str(tmp_path / "data"),
        "RONRENDER_STORAGE_DIR": str(tmp_path / "data" / "storage"),
        **seaweedfs.settings,
        "RONRENDER_S3_PREFIX": f"rr-stack-{run_id}/",
        "RONRENDER_CHAIN_RPC_URL": chain.rpc_url,
        "RONRENDER_CHAIN_ID": str(chain.chain_id),
        "RONRENDER_ESCROW_ADDRESS": escrow["address"],
        "RONRENDER_OPERATOR_KEY": escrow["operator_key"],
        "RONRENDER_CONFIRMATIONS": "1",
        "RONRENDER_ADMIN_TOKEN": secrets.token_urlsafe(32),
    }
    yield settings
    # Whatever a failed stop left behind, found by the unique prefix: processes this test started.
    for pid in processes_with(f"RONRENDER_QUEUE_PREFIX={settings['RONRENDER_QUEUE_PREFIX']}"):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def wait_for_health(url: str, stack: Spawned, timeout_s: float = STARTUP_TIMEOUT_S) -> dict:
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        if stack.process.poll() is not None:
            raise AssertionError(f"the stack exited with {stack.process.returncode} before it was healthy")
        try:
            response = requests.get(f"{url}/api/v1/health", timeout=10)
            if response.status_code == 200:
                return response.json()
            last = f"{response.status_code}: {response.text[:500]}"
        except requests.RequestException as error:
            last = str(error)
        time.sleep(0.5)
    raise AssertionError(f"the stack was not healthy within {timeout_s} s: {last}")


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_stack_renders_and_pays_a_job_on_postgres_s3_and_chain(
    stack_settings, seaweedfs, escrow, scene_files, tmp_path
):
    settings = stack_settings
    url = f"http://{settings['RONRENDER_BIND']}"
    env_file = write_env_file(tmp_path / "stack.env", settings)
    stack_log, node_log = tmp_path / "stack.log", tmp_path / "node.log"
    # Nothing of the stack's config reaches the stack through the environment: only the file.
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith(("RONRENDER_", "PROMETHEUS_"))}
    stack = Spawned([*STACK, "--env", str(env_file), "--concurrency", "verification=2"], clean_env, stack_log)
    node: Spawned | None = None
    try:
        wait_for_health(url, stack)

        node_account = Account.create()
        node = Spawned(
            [
                str(VENV_BIN / "ronrender-node"), "run",
                "--backend", url,
                "--name", "n1",
                "--work-dir", str(tmp_path / "node"),
                "--heartbeat-interval", "1",
            ],
            {**clean_env, "RONRENDER_NODE_KEY": node_account.key.to_0x_hex(), "PYTHONUNBUFFERED": "1"},
            node_log,
        )  # fmt: skip

        keystore = tmp_path / "artist-keystore.json"
        keystore.write_text(json.dumps(Account.encrypt(escrow["artist_key"], KEYSTORE_PASSWORD)))
        artist_env = {
            **clean_env,
            "RONRENDER_KEYSTORE": str(keystore),
            "RONRENDER_KEYSTORE_PASSWORD": KEYSTORE_PASSWORD,
        }
        submitted = subprocess.run(
            [
                str(VENV_BIN / "ronrender"), "--url", url,
                "submit", str(scene_files["tiny"]), "--frames", f"1-{FRAMES}", "--yes", "--json",
            ],
            env=artist_env,
            capture_output=True,
            text=True,
            timeout=SUBMIT_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert submitted.returncode == 0, submitted.stderr
        job_id = json.loads(submitted.stdout)["id"]

        admin = requests.Session()
        admin.headers["Authorization"] = f"Bearer {settings['RONRENDER_ADMIN_TOKEN']}"

        def admin_get(path: str) -> dict:
            response = admin.get(url + path, timeout=30)
            response.raise_for_status()
            return response.json()

        job = admin_get(f"/api/v1/jobs/{job_id}")
        assert job["state"] == "COMPLETED"
        assert job["frames_total"] == FRAMES
        frames = admin_get(f"/api/v1/jobs/{job_id}/frames")["frames"]
        assert [(f["number"], f["state"]) for f in frames] == [(n, "VERIFIED") for n in range(1, FRAMES + 1)]

        # Payments, as the chain's events record them, once the job is closed (fee and refund).
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while (escrow := admin_get(f"/api/v1/jobs/{job_id}/escrow"))["fee_wei"] == "0":
            assert time.monotonic() < deadline, f"the job was not closed on chain: {escrow}"
            time.sleep(0.5)
        paid = {address.lower(): int(wei) for address, wei in escrow["paid_wei_by_node"].items()}
        price = int(job["price_per_frame_wei"])
        assert paid == {node_account.address.lower(): price * FRAMES}
        assert int(escrow["locked_wei"]) == sum(paid.values()) + int(escrow["fee_wei"]) + int(
            escrow["refunded_wei"]
        )

        # The frames' bytes are in the bucket, under the stack's prefix; nothing in a local store.
        s3 = seaweedfs.client()
        for frame in frames:
            key = settings["RONRENDER_S3_PREFIX"] + object_key(frame["output_sha256"])
            head = s3.head_object(Bucket=settings["RONRENDER_S3_BUCKET"], Key=key)
            assert head["ContentLength"] > 0
        assert not (Path(settings["RONRENDER_STORAGE_DIR"]) / "objects").exists()

        # Metrics: the farm's state, and the verification timings of the RQ worker processes
        # added up through PROMETHEUS_MULTIPROC_DIR by whichever gunicorn worker answers.
        response = requests.get(f"{url}/metrics", timeout=30)
        assert response.status_code == 200
        assert any(line.startswith("ronrender_frames") for line in response.text.splitlines())
        samples = {
            sample.name: sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
            if not sample.labels
        }
        assert samples.get("ronrender_verification_seconds_count", 0) >= FRAMES
        assert list(Path(settings["PROMETHEUS_MULTIPROC_DIR"]).glob("*.db"))

        health = wait_for_health(url, stack)
        assert health["checks"]["storage"]["kind"] == "s3"
        assert health["checks"]["database"]["dialect"] == "postgresql"
        assert health["checks"]["chain"]["latest_confirmed_payment"]["job_id"] == job_id

        # Every Procfile process ran, verification twice; SIGTERM to stack.py alone (as a
        # supervisor sends it) is passed on and stops them all.
        started = stack_log.read_text()
        for name in ("web.1", "analysis.1", "verification.1", "verification.2", "escrow.1", "sweeper.1"):
            assert f"{name} started" in started, name
        node.stop()
        stack.process.send_signal(signal.SIGTERM)
        assert stack.process.wait(timeout=STOP_GRACE_S) == 0, "the stack did not stop cleanly on SIGTERM"
        marker = f"RONRENDER_QUEUE_PREFIX={settings['RONRENDER_QUEUE_PREFIX']}"
        deadline = time.monotonic() + 10
        while processes_with(marker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not processes_with(marker), "processes of the stack outlived it"
    except BaseException:
        print(log_tails(stack_log, node_log))
        raise
    finally:
        if node is not None:
            node.stop()
        stack.stop()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_stack_refuses_bad_config_in_one_line(stack_settings, tmp_path):
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith(("RONRENDER_", "PROMETHEUS_"))}

    def check(overrides: dict[str, str]) -> subprocess.CompletedProcess[str]:
        settings = {k: v for k, v in {**stack_settings, **overrides}.items() if v is not None}
        env_file = write_env_file(tmp_path / "bad.env", settings)
        return subprocess.run(
            [*STACK, "--env", str(env_file), "--check"],
            env=clean_env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    ok = check({})
    assert ok.returncode == 0, ok.stderr

    wrong_chain = check({"RONRENDER_CHAIN_ID": "2020"})
    assert wrong_chain.returncode == 2
    assert (
        f"serves chain {stack_settings['RONRENDER_CHAIN_ID']}, not the configured 2020" in wrong_chain.stderr
    )
    # one line per problem, no traceback
    assert all(line.startswith("stack: ") for line in wrong_chain.stderr.strip().splitlines())

    no_database = check({"RONRENDER_DATABASE_URL": None})
    assert no_database.returncode == 2
    assert "must set RONRENDER_DATABASE_URL" in no_database.stderr

    missing_file = subprocess.run(
        [*STACK, "--env", str(tmp_path / "nope.env"), "--check"],
        env=clean_env,
        capture_output=True,
        text=True,
    )
    assert missing_file.returncode == 2
    assert "cannot read the env file" in missing_file.stderr
