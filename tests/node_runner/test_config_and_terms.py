"""The owner's side without Blender: ``init`` writes a config that ``run`` loads,
flags win over the file, the weekly schedule and idle-only mode keep a slot from
claiming (with an injected clock and idle probe), and pause / stop-after-frame
travel through the control file."""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path

import click
import pytest
import requests
from click.testing import CliRunner

from node_runner import cli
from node_runner.backend_client import Claimed, NoWork, _retry_after_s
from node_runner.config import GIB, ConfigError, build_config, read_config_file
from node_runner.render import CPU_DEVICE
from node_runner.slot_worker import SlotWorker
from node_runner.slots import SlotSpec
from node_runner.terms import Control, OwnerTerms, Schedule, ScheduleError, Waiting, read_control
from shared.protocol import FrameAssignment, RenderSettings

pytestmark = pytest.mark.unit

PAYOUT = "0x" + "ab" * 20
# 2026-11-23 is a Monday.
MONDAY_NOON = datetime(2026, 11, 23, 12, 0)
MONDAY_EVENING = datetime(2026, 11, 23, 19, 30)
TUESDAY_3AM = datetime(2026, 11, 24, 3, 0)
SATURDAY_NOON = datetime(2026, 11, 28, 12, 0)


def test_init_writes_a_commented_config_that_run_loads(tmp_path):
    path = tmp_path / "etc" / "node.toml"
    keystore, password = tmp_path / "wallet" / "keystore.json", tmp_path / "wallet" / "password"
    result = CliRunner().invoke(
        cli.main,
        ["init", "--config", str(path), "--backend", "http://farm.example:8000", "--name", "box",
         "--work-dir", str(tmp_path / "work"), "--wallet-keystore", str(keystore),
         "--wallet-password-file", str(password), "--new-wallet"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    text = path.read_text()
    assert text.count("\n#") > 10  # commented for the owner
    for setting in ("schedule", "idle_only", "cache_size_gb", "memory_limit_gb", "blocked_artists"):
        assert setting in text

    config = cli.load(path)  # what `run --config` does
    assert config.backend_url == "http://farm.example:8000"
    assert config.name == "box"
    assert config.work_dir == tmp_path / "work"
    assert config.wallet is not None and config.payout_address == config.wallet.address
    assert config.payout_address in result.output
    assert config.cache_limit_bytes == 20 * GIB and config.cpu_slots == 1 and config.prestart_blender
    assert config.config_path == path
    assert not config.allow_unsandboxed

    again = CliRunner().invoke(cli.main, ["init", "--config", str(path)])
    assert again.exit_code != 0 and "exists" in again.output
    with pytest.raises(click.ClickException, match="is not the wallet's"):
        cli.load(path, payout_address=PAYOUT)


def test_flags_override_the_file_and_typos_are_refused(tmp_path):
    path = tmp_path / "node.toml"
    path.write_text(
        'payout_address = "0x' + "11" * 20 + '"\nname = "from-file"\n'
        "[slots]\ncpu_slots = 2\nprestart_blender = false\n"
        '[terms]\nschedule = ["mon-fri 18:00-08:00"]\nblocked_jobs = ["j1"]\n'
        "[limits]\ncache_size_gb = 0.5\nmemory_limit_gb = 3\n[sandbox]\nallow_unsandboxed = true\n"
    )
    config = build_config(
        read_config_file(path), {"name": "from-flag", "payout_address": PAYOUT, "threads": None}
    )
    assert (config.name, config.payout_address, config.cpu_slots) == ("from-flag", PAYOUT, 2)
    assert not config.prestart_blender
    assert config.schedule == ("mon-fri 18:00-08:00",)
    assert config.cache_limit_bytes == GIB // 2 and config.memory_limit_bytes == 3 * GIB
    assert config.allow_unsandboxed and config.blocked_jobs == ("j1",)

    path.write_text("[slots]\ncpu_slot = 2\n")
    with pytest.raises(ConfigError, match=r"unknown setting 'slots\.cpu_slot'"):
        read_config_file(path)
    with pytest.raises(ConfigError, match="no payout wallet"):
        build_config({}, {})


@pytest.mark.parametrize(
    ("rules", "moment", "allowed"),
    [
        ([], MONDAY_NOON, True),
        (["mon-fri 18:00-08:00"], MONDAY_NOON, False),
        (["mon-fri 18:00-08:00"], MONDAY_EVENING, True),
        (["mon-fri 18:00-08:00"], TUESDAY_3AM, True),  # Monday night runs past midnight
        (["mon-fri 18:00-08:00"], SATURDAY_NOON, False),
        (["sat-sun"], SATURDAY_NOON, True),
        (["sat,sun", "mon 09:00-13:00"], MONDAY_NOON, True),
        (["sun-mon 00:00-24:00"], TUESDAY_3AM, False),
    ],
)
def test_the_weekly_schedule(rules, moment, allowed):
    assert Schedule.parse(rules).allows(moment) is allowed


@pytest.mark.parametrize("bad", ["weekdays", "mon 25:00-26:00", "mon-fri 8-9", "fun 10:00-11:00"])
def test_a_bad_schedule_rule_is_refused(bad):
    with pytest.raises(ScheduleError):
        Schedule.parse([bad])


class RecordingBackend:
    """Stands in for the backend: counts claims and has no work."""

    def __init__(self) -> None:
        self.claims = 0
        self.claimed = threading.Event()

    def claim(self, node_id, exclude_job_ids=frozenset(), exclude_artists=frozenset()):
        self.claims += 1
        self.claimed.set()
        return None


def test_the_schedule_keeps_a_slot_from_claiming_outside_its_hours(tmp_path):
    now = [MONDAY_NOON]
    terms = OwnerTerms(tmp_path, schedule=Schedule.parse(["mon-fri 18:00-08:00"]), clock=lambda: now[0])
    backend = RecordingBackend()
    stop = threading.Event()
    slot = SlotWorker(
        SlotSpec("cpu0", CPU_DEVICE, 0, 1), node_id="n", client=backend, scenes=None, blender=_NoBlender(),
        terms=terms, stop=stop, work_dir=tmp_path, idle_poll_interval_s=0.05,
    )  # fmt: skip
    slot.start()
    try:
        _wait_until(lambda: slot.waiting == Waiting.OUTSIDE_SCHEDULE.value)
        assert backend.claims == 0
        now[0] = MONDAY_EVENING  # the owner's hours begin
        assert backend.claimed.wait(30)
    finally:
        stop.set()
        slot.join(30)
    assert not slot.is_alive()


def test_idle_only_waits_while_the_machine_is_busy(tmp_path):
    busy = [True]
    terms = OwnerTerms(tmp_path, idle_only=True, idle_probe=lambda: not busy[0])
    assert terms.why_not_claim() == Waiting.BUSY
    busy[0] = False
    assert terms.why_not_claim() is None
    terms.idle_only = False
    busy[0] = True
    assert terms.why_not_claim() is None


def test_pause_resume_and_stop_go_through_the_control_file(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    terms = OwnerTerms(work)
    runner = CliRunner()
    assert runner.invoke(cli.main, ["pause", "--work-dir", str(work)]).exit_code == 0
    assert terms.why_not_claim() == Waiting.PAUSED
    assert runner.invoke(cli.main, ["resume", "--work-dir", str(work)]).exit_code == 0
    assert terms.why_not_claim() is None
    assert runner.invoke(cli.main, ["stop", "--after-frame", "--work-dir", str(work)]).exit_code == 0
    assert read_control(work) == Control.STOP_AFTER_FRAME
    assert runner.invoke(cli.main, ["pause", "--work-dir", str(tmp_path / "nowhere")]).exit_code != 0


def test_blocklist_matches_jobs_and_artists_in_any_case():
    terms = OwnerTerms(
        Path("."), blocked_jobs=frozenset({"job-1"}), blocked_artists=frozenset({"0x" + "aa" * 20})
    )
    assert terms.blocks("job-1", None)
    assert terms.blocks("job-2", "0x" + "AA" * 20)
    assert not terms.blocks("job-2", "0x" + "bb" * 20)
    assert not terms.blocks("job-2", None)


class _NoBlender:
    def prestart(self) -> None:
        pass

    def close(self) -> None:
        pass


def _wait_until(predicate, timeout_s: float = 30.0) -> None:
    deadline = threading.Event()
    for _ in range(int(timeout_s / 0.05)):
        if predicate():
            return
        deadline.wait(0.05)
    raise AssertionError("condition not reached")


def test_an_idle_slot_waits_as_long_as_the_backend_asks_and_no_less_than_its_own_interval(tmp_path):
    slot = SlotWorker(
        SlotSpec("cpu0", CPU_DEVICE, 0, 1), node_id="n", client=RecordingBackend(), scenes=None,
        blender=_NoBlender(), terms=OwnerTerms(tmp_path), stop=threading.Event(), work_dir=tmp_path,
        idle_poll_interval_s=1.0,
    )  # fmt: skip
    assert slot._idle_wait_s(None) == 1.0  # unreachable backend: the own interval
    assert slot._idle_wait_s(NoWork(None)) == 1.0
    assert slot._idle_wait_s(NoWork(0.5)) == 1.0
    assert slot._idle_wait_s(NoWork(0.0)) == 0.0  # a claim held to the end of its wait: ask again now
    waits = [slot._idle_wait_s(NoWork(20.0)) for _ in range(50)]
    assert all(16.0 <= w <= 24.0 for w in waits) and len(set(waits)) > 1  # spread, not in step


def test_the_retry_after_header_of_an_empty_claim_is_read():
    response = requests.Response()
    response.status_code = 204
    assert _retry_after_s(response) is None
    response.headers["Retry-After"] = "12"
    assert _retry_after_s(response) == 12.0
    response.headers["Retry-After"] = "Wed, 21 Oct 2026 07:28:00 GMT"  # a date: not used by us
    assert _retry_after_s(response) is None


class StopDuringHeldClaim:
    """Stands in for the backend: the claim is held until work appears, and meanwhile the
    node is told to stop; records what is handed back."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.released: list[int] = []

    def claim(self, node_id, exclude_job_ids=frozenset(), exclude_artists=frozenset()):
        self.stop.set()
        settings = RenderSettings("PNG", "CYCLES", 4, 100, 64, 36)
        return Claimed(FrameAssignment(7, "token", "job", 1, "a" * 64, 1, settings, 60))

    def release(self, assignment: FrameAssignment) -> None:
        self.released.append(assignment.attempt_id)


def test_a_frame_handed_to_a_held_claim_after_the_node_was_told_to_stop_goes_back(tmp_path):
    stop = threading.Event()
    backend = StopDuringHeldClaim(stop)
    slot = SlotWorker(
        SlotSpec("cpu0", CPU_DEVICE, 0, 1), node_id="n", client=backend, scenes=None, blender=_NoBlender(),
        terms=OwnerTerms(tmp_path), stop=stop, work_dir=tmp_path, idle_poll_interval_s=0.05,
    )  # fmt: skip
    slot.start()
    slot.join(30)
    assert not slot.is_alive()
    assert slot.error is None  # nothing rendered (this Blender cannot render)
    assert backend.released == [7]
