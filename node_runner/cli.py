"""``ronrender-node``: run a render node against a RonRender backend.

``init`` writes a commented config, ``run`` renders, and ``pause``, ``resume``,
``stop --after-frame`` and ``status`` talk to a running node from another terminal
through files in its work directory."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click

from node_runner import defaults
from node_runner.backend_client import BackendClient
from node_runner.config import ConfigError, NodeConfig, build_config, config_template, read_config_file
from node_runner.service import NodeService
from node_runner.status import format_status, read_status
from node_runner.terms import Control, write_control
from node_runner.wallet import KEYSTORE_ENV, PASSWORD_FILE_ENV, create_keystore
from shared.api_client import is_transient
from shared.protocol import BACKEND_URL_ENV

PATH = click.Path(path_type=Path)


def _expand(path: Path | None) -> Path | None:
    return None if path is None else Path(os.path.expanduser(str(path)))


def load(config_path: Path | None, **flags: Any) -> NodeConfig:
    """The config file (if any) with the given flags on top; a clear error otherwise."""
    try:
        values = read_config_file(_expand(config_path)) if config_path is not None else {}  # type: ignore[arg-type]
        return build_config(values, flags)
    except ConfigError as error:
        raise click.ClickException(str(error)) from error


def _work_dir(config_path: Path | None, work_dir: Path | None) -> Path:
    if work_dir is not None:
        return _expand(work_dir)  # type: ignore[return-value]
    if config_path is not None:
        values = read_config_file(_expand(config_path))  # type: ignore[arg-type]
        if "work_dir" in values:
            return values["work_dir"]
    return _expand(Path(defaults.DEFAULT_WORK_DIR))  # type: ignore[return-value]


config_option = click.option("--config", "config_path", type=PATH, help="The node's TOML config file.")
work_dir_option = click.option(
    "--work-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help=f"[default: {defaults.DEFAULT_WORK_DIR}]",
)


@click.group()
def main() -> None:
    """RonRender node: render frames for artists and get paid in RON."""


@main.command()
@click.option("--config", "config_path", type=PATH, default=defaults.DEFAULT_CONFIG_PATH, show_default=True)
@click.option("--backend", "backend_url", envvar=BACKEND_URL_ENV, default=None)
@click.option("--name", default=None)
@click.option("--work-dir", default=defaults.DEFAULT_WORK_DIR, show_default=True)
@click.option("--wallet-keystore", default=defaults.DEFAULT_WALLET_KEYSTORE, show_default=True)
@click.option("--wallet-password-file", default=defaults.DEFAULT_WALLET_PASSWORD_FILE, show_default=True)
@click.option(
    "--new-wallet", is_flag=True, help="Create the payout wallet too (a random password in the file)."
)
@click.option("--force", is_flag=True, help="Overwrite an existing config file.")
def init(
    config_path: Path,
    backend_url: str | None,
    name: str | None,
    work_dir: str,
    wallet_keystore: str,
    wallet_password_file: str,
    new_wallet: bool,
    force: bool,
) -> None:
    """Write a commented config file to edit, then start with `run --config FILE`."""
    path = _expand(config_path)
    assert path is not None
    if path.exists() and not force:
        raise click.ClickException(f"{path} exists; pass --force to overwrite it")
    if new_wallet:
        keystore, password_file = _expand(Path(wallet_keystore)), _expand(Path(wallet_password_file))
        assert keystore is not None and password_file is not None
        if keystore.exists():
            raise click.ClickException(f"{keystore} exists; not overwriting a wallet")
        password_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        password = secrets.token_urlsafe(24)
        password_file.write_text(password)
        os.chmod(password_file, 0o600)
        click.echo(f"created payout wallet {create_keystore(keystore, password)} in {keystore}")
    path.parent.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {
        "name": name,
        "work_dir": work_dir,
        "wallet_keystore": wallet_keystore,
        "wallet_password_file": wallet_password_file,
    }
    if backend_url:
        options["backend_url"] = backend_url
    path.write_text(config_template(path, **options), encoding="utf-8")
    click.echo(f"wrote {path}; edit it, then: ronrender-node run --config {path}")


@main.command()
@config_option
@click.option("--backend", "backend_url", envvar=BACKEND_URL_ENV, default=None, help="Backend URL.")
@click.option("--name", default=None, help="Name shown to the backend [default: host name].")
@work_dir_option
@click.option(
    "--wallet-keystore",
    envvar=KEYSTORE_ENV,
    type=PATH,
    default=None,
    help="The payout wallet's encrypted keystore: signs in, receives RON.",
)
@click.option("--wallet-password-file", envvar=PASSWORD_FILE_ENV, type=PATH, default=None)
@click.option(
    "--payout-address", envvar="RONRENDER_PAYOUT_ADDRESS", default=None,
    help="Checked against the wallet's address (the wallet is what gets paid).",
)  # fmt: skip
@click.option("--blender-python", default=None, help="Python with the bpy module [default: this one].")
@click.option("--threads", type=int, default=None, help="Render threads per CPU slot (0 = share all cores).")
@click.option("--cpu-slots", type=int, default=None, help="CPU slots when there is no GPU.")
@click.option("--heartbeat-interval", "heartbeat_interval_s", type=float, default=None)
@click.option("--allow-unsandboxed", is_flag=True, default=None, help="Run without bubblewrap (risky).")
@click.option("--no-benchmark", "no_benchmark", is_flag=True, help="Skip the first-start benchmark.")
def run(config_path: Path | None, no_benchmark: bool, **flags: Any) -> None:
    """Register with the backend and render frames until stopped (SIGTERM hands frames back)."""
    if no_benchmark:
        flags["run_benchmark"] = False
    if not flags.get("allow_unsandboxed"):
        flags.pop("allow_unsandboxed", None)  # unset: the config file decides
    for key in ("work_dir", "wallet_keystore", "wallet_password_file"):
        if flags.get(key) is not None:
            flags[key] = _expand(flags[key])
    config = load(config_path, **flags)
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s node[{config.name}] %(levelname)s %(message)s"
    )
    service = NodeService(config)
    asked_to_stop = threading.Event()

    def on_signal(*_: Any) -> None:
        asked_to_stop.set()
        service.request_stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    try:
        service.run()
    except Exception as error:
        if asked_to_stop.is_set() and is_transient(error):
            return  # stopped while the backend was out of reach: nothing was lost
        raise click.ClickException(str(error)) from error


def _control(config_path: Path | None, work_dir: Path | None, control: Control, message: str) -> None:
    directory = _work_dir(config_path, work_dir)
    if not directory.is_dir():
        raise click.ClickException(f"no node work directory at {directory}")
    write_control(directory, control)
    click.echo(message)


@main.command()
@config_option
@work_dir_option
def pause(config_path: Path | None, work_dir: Path | None) -> None:
    """Take no new frames (frames being rendered finish) until `resume`."""
    _control(config_path, work_dir, Control.PAUSED, "paused: slots finish their frames and take no new ones")


@main.command()
@config_option
@work_dir_option
def resume(config_path: Path | None, work_dir: Path | None) -> None:
    """Take frames again after `pause`."""
    _control(config_path, work_dir, Control.RUN, "resumed")


@main.command()
@config_option
@work_dir_option
@click.option(
    "--after-frame", is_flag=True, required=True, help="Finish the frames being rendered, then exit."
)
def stop(config_path: Path | None, work_dir: Path | None, after_frame: bool) -> None:
    """Stop the node once its slots have finished their current frames."""
    _control(config_path, work_dir, Control.STOP_AFTER_FRAME, "the node stops after its current frames")


@main.command()
@config_option
@work_dir_option
def status(config_path: Path | None, work_dir: Path | None) -> None:
    """Slots and their frames, today's counts, reputation and earnings."""
    directory = _work_dir(config_path, work_dir)
    current = read_status(directory)
    node = error = None
    if current and current.get("node_id"):
        try:
            # The backend shows a node to the wallet that registered it.
            wallet = load(config_path).wallet if config_path is not None else None
            client = BackendClient(current["backend_url"], threading.Event(), 0, wallet=wallet)
            node = client.get_node(current["node_id"])
            node["earnings"] = client.get_earnings(current["node_id"])
        except Exception as failure:
            error = str(failure)
    else:
        error = "not registered yet"
    click.echo(format_status(current, node, error))
    sys.exit(0 if current else 1)
