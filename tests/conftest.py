"""Fixtures shared by every tier: scene files made with Blender, an app bound to a
fresh database (SQLite or PostgreSQL), a test client, and burst RQ workers."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from flask_migrate import upgrade
from rq import SimpleWorker

from backend import create_app, defaults
from backend.extensions import db
from backend.queues import get_queue
from tests.identities import ADMIN_KEY, NODE_KEY, address_of, signed_in_client

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from local_chain import LocalChain  # noqa: E402
from seaweedfs import SeaweedS3  # noqa: E402

# CLI commands run by tests keep their sessions apart from the user's own file.
_SESSIONS_DIR = Path(tempfile.mkdtemp(prefix="ronrender-test-sessions-"))
os.environ.setdefault("RONRENDER_SESSIONS_FILE", str(_SESSIONS_DIR / "sessions.json"))
os.environ.setdefault("RONRENDER_AGENT_DIR", str(_SESSIONS_DIR / "agents"))  # short: a socket path

REDIS_URL = os.environ.get("RONRENDER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_DSN = os.environ.get("RONRENDER_TEST_POSTGRES_DSN", "postgresql://root@127.0.0.1:5432/test")
DATABASES = ["sqlite", "postgresql"]
ARTIST_DEPOSIT_WEI = 100 * 10**18


def make_scene(path: Path, *args: str) -> Path:
    """Write a sample scene with Blender in a child process."""
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_sample_scene.py"), str(path), *args],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return path


@pytest.fixture(scope="session")
def scene_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small scenes: a good 4-frame one (PNG and EXR), one with a missing texture, a
    truncated one, and one that truly renders a single colour."""
    folder = tmp_path_factory.mktemp("scenes")
    tiny = ("--frames", "4", "--width", "64", "--height", "36", "--samples", "4")
    good = make_scene(folder / "tiny.blend", *tiny)
    exr = make_scene(folder / "tiny_exr.blend", *tiny, "--format", "OPEN_EXR")
    missing = make_scene(folder / "missing_texture.blend", *tiny, "--missing-texture")
    flat = make_scene(folder / "flat.blend", *tiny, "--flat")
    truncated = folder / "truncated.blend"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    return {
        "tiny": good,
        "tiny_exr": exr,
        "missing_texture": missing,
        "truncated": truncated,
        "flat": flat,
    }


_postgres_problem: list[str] = []


def postgres_unavailable() -> str | None:
    """Why PostgreSQL cannot be used here, or None when it can."""
    if not _postgres_problem:
        try:
            with psycopg.connect(POSTGRES_DSN, connect_timeout=3):
                _postgres_problem.append("")
        except psycopg.OperationalError as error:
            _postgres_problem.append(f"PostgreSQL is not reachable at {POSTGRES_DSN}: {error}")
    return _postgres_problem[0] or None


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a PostgreSQL schema of its own."""
    kind = getattr(request, "param", "sqlite")
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'ronrender.db'}"
        return
    problem = postgres_unavailable()
    if problem:
        pytest.skip(problem)
    schema = f"rr_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"postgresql+psycopg://root@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA {schema} CASCADE")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that touches the database runs on SQLite and on PostgreSQL."""
    already = any(
        "database_url" in marker.args[0] for marker in metafunc.definition.iter_markers("parametrize")
    )
    if "database_url" in metafunc.fixturenames and not already:
        metafunc.parametrize("database_url", DATABASES, indirect=True)


@pytest.fixture(scope="session")
def chain() -> Iterator[LocalChain]:
    """One local EVM dev chain (anvil) for the whole run."""
    with LocalChain() as local_chain:
        yield local_chain


@pytest.fixture(scope="session")
def seaweedfs() -> Iterator[SeaweedS3]:
    """One real S3-compatible store (SeaweedFS on loopback) for the run; tests keep apart by key prefix.
    No skip: `make setup` installs `weed`, so a failure to start it is a failure."""
    with SeaweedS3() as store:
        yield store


@pytest.fixture
def escrow(chain: LocalChain) -> dict[str, str]:
    """A freshly deployed escrow contract, and the keys of its operator and of a funded artist."""
    owner, operator, fee_recipient, artist = chain.accounts[:4]
    address = chain.deploy_escrow(operator.address, fee_recipient.address, key=owner.key.to_0x_hex())
    contract = chain.contract(address)
    artist_key = artist.key.to_0x_hex()
    chain.fund(artist.address, ARTIST_DEPOSIT_WEI)  # every test deposits anew: top the wallet up
    chain.transact(contract.functions.deposit(), artist_key, value=ARTIST_DEPOSIT_WEI)
    chain.transact(contract.functions.setSpendingCap(ARTIST_DEPOSIT_WEI), artist_key)
    return {
        "address": address,
        "operator_key": operator.key.to_0x_hex(),
        "artist_key": artist_key,
        "artist_address": artist.address,
        "fee_recipient": fee_recipient.address,
    }


@pytest.fixture
def app(database_url: str, tmp_path: Path, chain: LocalChain, escrow: dict[str, str]) -> Iterator:
    app = create_app(
        {
            "TESTING": True,
            "RONRENDER_CHAIN_RPC_URL": chain.rpc_url,
            "RONRENDER_PUBLIC_RPC_URL": chain.rpc_url,
            "RONRENDER_CHAIN_ID": chain.chain_id,
            "RONRENDER_ESCROW_ADDRESS": escrow["address"],
            "RONRENDER_OPERATOR_KEY": escrow["operator_key"],
            "SQLALCHEMY_DATABASE_URI": database_url,
            "RONRENDER_DATA_DIR": str(tmp_path / "data"),
            "RONRENDER_STORAGE_DIR": str(tmp_path / "data" / "storage"),
            "RONRENDER_REDIS_URL": REDIS_URL,
            "RONRENDER_QUEUE_PREFIX": f"rr-test-{uuid.uuid4().hex[:8]}",
            "RONRENDER_RATE_LIMIT": "",  # tests/backend/test_access.py turns it on where it is the subject
            "RONRENDER_ADMIN_ADDRESSES": [address_of(ADMIN_KEY)],
            # spot checks hold frames back; tests/backend/test_spot_checks.py turns them on
            "RONRENDER_SPOT_CHECK_RATE": 0.0,
            "RONRENDER_SPOT_CHECK_RATE_NEW_NODES": 0.0,
            # releases go at once, so burst workers send them; test_escrow_flow.py tests the window
            "RONRENDER_RELEASE_WINDOW_S": 0.0,
        }
    )
    with app.app_context():
        upgrade()
        yield app
        for name in defaults.ALL_QUEUES:
            get_queue(name).delete(delete_jobs=True)
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app, escrow):
    """The artist of the ``escrow`` fixture, signed in with their wallet."""
    return signed_in_client(app, escrow["artist_key"])


@pytest.fixture
def node_client(app):
    """A node provider's wallet, signed in: it registers nodes and renders for them."""
    return signed_in_client(app, NODE_KEY)


@pytest.fixture
def admin_client(app):
    return signed_in_client(app, ADMIN_KEY)


@pytest.fixture
def anonymous_client(app):
    return app.test_client()


@pytest.fixture
def run_workers(app):
    """Run every queued task to completion, as RQ workers would, in this process."""

    def drain() -> None:
        queues = [get_queue(name) for name in defaults.ALL_QUEUES]
        worker = SimpleWorker(queues, connection=queues[0].connection)
        worker.work(burst=True)
        failed = [q.failed_job_registry.get_job_ids() for q in queues]
        assert not any(failed), f"RQ tasks failed: {failed}"

    return drain
