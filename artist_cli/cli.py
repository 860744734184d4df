"""``ronrender submit | status | download``: the artist's command line."""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from artist_cli.artist_client import ArtistClient
from shared.api_client import ApiError
from shared.protocol import BACKEND_URL_ENV, DEFAULT_BACKEND_URL
from shared.states import JobState, OutputFormat, RenderEngine, SceneState

WEI_PER_RON = 10**18


def format_ron(wei: int | str) -> str:
    """Wei as RON for people, exactly (no float rounding)."""
    return f"{Decimal(int(wei)) / WEI_PER_RON:f} RON"


def parse_frames(value: str | None) -> tuple[int | None, int | None]:
    if value is None:
        return None, None
    try:
        start, _, end = value.partition("-")
        return int(start), int(end or start)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a frame or a range like 1-12") from None


class ApiErrorsAsClickErrors(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ApiError as error:
            raise click.ClickException(f"{error.message} [{error.reason}]") from error
        except OSError as error:
            raise click.ClickException(f"cannot reach the backend or file: {error}") from error


@click.group(cls=ApiErrorsAsClickErrors)
@click.option(
    "--url",
    envvar=BACKEND_URL_ENV,
    default=DEFAULT_BACKEND_URL,
    show_default=True,
    help=f"Backend URL (or ${BACKEND_URL_ENV}).",
)
@click.pass_context
def main(ctx: click.Context, url: str) -> None:
    """RonRender: render Blender scenes on a farm paid in RON."""
    ctx.obj = ArtistClient(url)


@main.command()
@click.argument("scene", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--frames", help="A frame or a range, e.g. 1-12 (default: the scene's range).")
@click.option("--engine", type=click.Choice([e.value for e in RenderEngine]))
@click.option("--samples", type=click.IntRange(min=1))
@click.option("--resolution-percentage", type=click.IntRange(1, 1000))
@click.option("--format", "output_format", type=click.Choice([f.value for f in OutputFormat]))
@click.option("--yes", is_flag=True, help="Accept the estimate without asking.")
@click.option("--no-wait", is_flag=True, help="Print the job id and return once the job is accepted.")
@click.option("--json", "as_json", is_flag=True, help="Print the final job as JSON.")
@click.pass_obj
def submit(
    client: ArtistClient,
    scene: Path,
    frames: str | None,
    engine: str | None,
    samples: int | None,
    resolution_percentage: int | None,
    output_format: str | None,
    yes: bool,
    no_wait: bool,
    as_json: bool,
) -> None:
    """Upload SCENE (a packed .blend), show the estimate, and render it."""
    frame_start, frame_end = parse_frames(frames)
    with tqdm(total=scene.stat().st_size, unit="B", unit_scale=True, desc="upload", file=sys.stderr) as bar:
        uploaded = client.upload_scene(scene, bar.update)
    click.echo(f"scene {uploaded['sha256'][:12]} stored; Blender is reading it…", err=True)
    analysed = client.wait_for_scene(uploaded["sha256"])
    if analysed["state"] == SceneState.INVALID:
        raise click.ClickException(analysed["error"] or "the scene file is not usable")
    job = client.create_job(
        {
            "scene_sha256": uploaded["sha256"],
            "frame_start": frame_start,
            "frame_end": frame_end,
            "engine": engine,
            "samples": samples,
            "resolution_percentage": resolution_percentage,
            "output_format": output_format,
        }
    )
    click.echo(
        f"job {job['id']}: {job['frames_total']} frames of {job['width']}x{job['height']} "
        f"{job['engine']} {job['output_format']}, {format_ron(job['price_per_frame_wei'])} per frame, "
        f"estimate {format_ron(job['estimate_wei'])} (fee {job['fee_bps'] / 100}% included)",
        err=True,
    )
    if not yes:
        if not sys.stdin.isatty():
            raise click.ClickException("no terminal to confirm the estimate: pass --yes to accept it")
        click.confirm("Lock the estimate and render?", abort=True, err=True)
    job = client.accept_job(job["id"])
    if no_wait:
        click.echo(job["id"])
        return
    job = _follow(client, job)
    _report(job, as_json)


def _follow(client: ArtistClient, job: dict[str, Any]) -> dict[str, Any]:
    with tqdm(total=job["frames_total"], unit="frame", desc="render", file=sys.stderr) as bar:

        def on_update(current: dict[str, Any]) -> None:
            counts = current["frame_counts"]
            done = counts["VERIFIED"] + counts["FAILED"]
            bar.set_postfix_str(
                f"{current['state'].lower()}, rendering {counts['RENDERING'] + counts['ASSIGNED']}"
            )
            bar.update(done - bar.n)

        return client.wait_for_job(job["id"], on_update)


def _report(job: dict[str, Any], as_json: bool) -> None:
    counts = job["frame_counts"]
    if as_json:
        click.echo(json.dumps(job, indent=2))
    else:
        click.echo(
            f"job {job['id']} {job['state']}: {counts['VERIFIED']}/{job['frames_total']} frames verified"
        )
    if job["state"] == JobState.LOCK_FAILED:
        raise click.ClickException(f"the escrow lock failed: {job['lock_error']}")
    if job["state"] != JobState.COMPLETED or counts["FAILED"]:
        raise click.ClickException(f"{counts['FAILED']} frames failed; see `ronrender status {job['id']}`")


@main.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def status(client: ArtistClient, job_id: str, as_json: bool) -> None:
    """Show a job's state, frames and money."""
    job = client.get_job(job_id)
    frames = client.frames(job_id)
    if as_json:
        click.echo(json.dumps({"job": job, "frames": frames}, indent=2))
        return
    counts = ", ".join(f"{state.lower()} {n}" for state, n in job["frame_counts"].items() if n)
    click.echo(f"job {job['id']} {job['state']}: {counts}")
    click.echo(
        f"estimate {format_ron(job['estimate_wei'])}; "
        + ", ".join(f"{k[:-4]} {format_ron(v)}" for k, v in job["money"].items())
    )
    for frame in frames:
        line = f"  frame {frame['number']:>5} {frame['state']:<10} node {frame['node_id'] or '-'}"
        if frame["last_rejection"]:
            line += f"  last problem: {frame['last_rejection']}"
        click.echo(line)


@main.command()
@click.argument("job_id")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.pass_obj
def download(client: ArtistClient, job_id: str, directory: Path) -> None:
    """Download every verified frame of JOB_ID into DIRECTORY."""
    paths = client.download(job_id, directory)
    if not paths:
        raise click.ClickException(f"job {job_id} has no verified frames yet")
    click.echo(f"{len(paths)} frames in {directory}")
