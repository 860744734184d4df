"""``ronrender-node``: run a render node against a RonRender backend."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
from pathlib import Path

import click

from node_runner import defaults
from node_runner.service import NodeConfig, NodeService
from shared.protocol import BACKEND_URL_ENV, DEFAULT_BACKEND_URL


@click.group()
def main() -> None:
    """RonRender node: render frames for artists and get paid in RON."""


@main.command()
@click.option(
    "--backend", "backend_url", envvar=BACKEND_URL_ENV, default=DEFAULT_BACKEND_URL, show_default=True
)
@click.option("--name", default=socket.gethostname(), show_default=True, help="Name shown to the backend.")
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=defaults.DEFAULT_WORK_DIR,
    show_default=True,
)
@click.option(
    "--payout-address",
    envvar="RONRENDER_PAYOUT_ADDRESS",
    required=True,
    help="0x address that receives RON for verified frames.",
)
@click.option(
    "--blender-python", default=sys.executable, show_default=True, help="Python with the bpy module."
)
@click.option("--threads", default=0, show_default=True, help="Render threads (0 = all cores).")
@click.option(
    "--heartbeat-interval", "heartbeat_interval_s", default=defaults.HEARTBEAT_INTERVAL_S, show_default=True
)
def run(
    backend_url: str,
    name: str,
    work_dir: Path,
    payout_address: str,
    blender_python: str,
    threads: int,
    heartbeat_interval_s: float,
) -> None:
    """Register with the backend and render frames until stopped (SIGTERM hands the frame back)."""
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s node[{name}] %(levelname)s %(message)s")
    service = NodeService(
        NodeConfig(
            backend_url=backend_url,
            name=name,
            work_dir=Path(os.path.expanduser(str(work_dir))),
            payout_address=payout_address,
            blender_python=blender_python,
            threads=threads,
            heartbeat_interval_s=heartbeat_interval_s,
        )
    )
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: service.request_stop())
    try:
        service.run()
    except Exception as error:
        raise click.ClickException(str(error)) from error
