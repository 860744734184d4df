"""``ronrender submit | status | download``: the artist's command line."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from artist_cli.artist_client import ArtistClient
from artist_cli.sessions import SessionStore
from artist_cli.wallet import (
    KEYSTORE_ENV,
    PASSWORD_ENV,
    TOKEN_ENV,
    EscrowWallet,
    KeystoreError,
    OpeningWallet,
    Wallet,
    stated_address,
)
from artist_cli.wallet_agent import AgentWallet, Farm, find_agent, start_agent, stop_all_agents
from shared.api_client import ApiError
from shared.protocol import BACKEND_URL_ENV, DEFAULT_BACKEND_URL, is_acceptance_of
from shared.states import JobState, OutputFormat, RenderEngine, SceneState

WEI_PER_RON = 10**18


def format_ron(wei: int | str) -> str:
    """Wei as RON for people, exactly (no float rounding)."""
    return f"{Decimal(int(wei)) / WEI_PER_RON:f} RON"


def parse_ron(value: str) -> int:
    """A RON amount typed by a person ("1.5") as exact integer wei."""
    try:
        amount = Decimal(value) * WEI_PER_RON
    except InvalidOperation:
        raise click.BadParameter(f"{value!r} is not an amount of RON") from None
    if amount < 0 or amount != amount.to_integral_value():
        raise click.BadParameter(f"{value!r} is negative or finer than 1 wei")
    return int(amount)


def open_wallet(keystore: Path | None, farm_url: str | None = None) -> OpeningWallet | AgentWallet:
    """The wallet agent holding this keystore's key for the farm at ``farm_url`` (``ronrender
    wallet unlock``), if one runs; else ask for the password and open the keystore in the
    background. Without ``farm_url``, always the keystore."""
    if keystore is None:
        raise click.ClickException(
            f"no wallet: pass --keystore or set ${KEYSTORE_ENV} (ronrender wallet new)"
        )
    if farm_url is not None and (agent := find_agent(stated_address(keystore), farm_url)) is not None:
        return agent
    password = os.environ.get(PASSWORD_ENV) or click.prompt("keystore password", hide_input=True, err=True)
    return OpeningWallet(keystore, password)


def file_sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def signed_in_wallet(client: ArtistClient, keystore: Path | None) -> OpeningWallet | AgentWallet:
    """Open the wallet; the client signs in with it (unless it has an API token, or a
    session kept from an earlier command for this backend and address)."""
    wallet = open_wallet(keystore, farm_url=client.api.base_url)
    client.sign_in_with(wallet, SessionStore(), address=wallet.stated_address)
    return wallet


def require_sign_in(client: ArtistClient, keystore: Path | None) -> None:
    """An API token (--token) is enough; without one, the wallet signs in."""
    if not client.has_credentials:
        signed_in_wallet(client, keystore)


def require_key(client: ArtistClient, keystore: Path | None) -> None:
    """As ``require_sign_in``, and the keystore must open even with a kept session: a
    lasting token, or a cancelled job, takes the key, not only the session."""
    if not client.has_credentials:
        wallet = open_wallet(keystore)  # the keystore itself: the wallet agent will not do
        client.sign_in_with(wallet.opened(), SessionStore(), address=wallet.stated_address)


def escrow_wallet(client: ArtistClient, keystore: Path | None) -> EscrowWallet:
    """The artist's wallet, connected to the escrow the backend names. Transactions take
    the keystore itself: the wallet agent never signs one."""
    return EscrowWallet(open_wallet(keystore).opened(), client.escrow_info())


keystore_option = click.option(
    "--keystore",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar=KEYSTORE_ENV,
    help=f"The artist's encrypted wallet keystore (or ${KEYSTORE_ENV}; password in ${PASSWORD_ENV}).",
)


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
        except KeystoreError as error:
            raise click.ClickException(str(error)) from error
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
@click.option(
    "--token",
    envvar=TOKEN_ENV,
    default=None,
    help=f"An API token (or ${TOKEN_ENV}); without one, commands sign in with your wallet.",
)
@click.pass_context
def main(ctx: click.Context, url: str, token: str | None) -> None:
    """RonRender: render Blender scenes on a farm paid in RON."""
    ctx.obj = ArtistClient(url, token=token)


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
@keystore_option
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
    keystore: Path | None,
) -> None:
    """Upload SCENE (a packed .blend), show the estimate, lock it from your wallet, and render it."""
    frame_start, frame_end = parse_frames(frames)
    wallet = signed_in_wallet(client, keystore)
    uploaded = client.stored_scene(file_sha256(scene))  # the same bytes again: nothing to send
    if uploaded is None:
        size = scene.stat().st_size
        with tqdm(total=size, unit="B", unit_scale=True, desc="upload", file=sys.stderr) as bar:
            uploaded = client.upload_scene(scene, bar.update)
        click.echo(f"scene {uploaded['sha256'][:12]} stored; Blender is reading it…", err=True)
    else:
        click.echo(f"scene {uploaded['sha256'][:12]} already stored; not sent again", err=True)
    analysed = client.wait_for_scene(uploaded["sha256"])
    if analysed["state"] == SceneState.INVALID:
        raise click.ClickException(analysed["error"] or "the scene file is not usable")
    wallet.opened()  # no job for a keystore that does not open
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
    job = accept(client, job, wallet)
    if no_wait:
        click.echo(job["id"])
        return
    job = _follow(client, job)
    _report(job, as_json)


def accept(client: ArtistClient, job: dict[str, Any], wallet: OpeningWallet | AgentWallet) -> dict[str, Any]:
    """Sign the acceptance of exactly this estimate with the wallet, and send it."""
    message = client.acceptance_message(job["id"], wallet.address)
    estimate = {"total_wei": int(job["estimate_wei"]), "frame_count": job["frames_total"]}
    if not is_acceptance_of(message, job_id=job["id"], artist=wallet.address, **estimate):
        raise click.ClickException("the backend asked to sign something other than this job's estimate")
    return client.accept_job(job["id"], wallet.address, wallet.sign_typed_data(message))


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
    if job["state"] == JobState.AWAITING_PAYMENT:
        raise click.ClickException(
            f"job {job['id']} is awaiting payment: {job['lock_error']}; then `ronrender accept {job['id']}`"
        )
    if job["state"] != JobState.COMPLETED or counts["FAILED"]:
        raise click.ClickException(f"{counts['FAILED']} frames failed; see `ronrender status {job['id']}`")


@main.command("accept")
@click.argument("job_id")
@keystore_option
@click.option("--no-wait", is_flag=True)
@click.pass_obj
def accept_command(client: ArtistClient, job_id: str, keystore: Path | None, no_wait: bool) -> None:
    """Accept JOB_ID's estimate (again, after a deposit) and follow it."""
    wallet = signed_in_wallet(client, keystore)
    job = accept(client, client.get_job(job_id), wallet)
    if not no_wait:
        _report(_follow(client, job), as_json=False)


@main.command()
@click.argument("job_id")
@keystore_option
@click.pass_obj
def cancel(client: ArtistClient, job_id: str, keystore: Path | None) -> None:
    """Cancel JOB_ID; what was locked and not paid is refunded."""
    require_key(client, keystore)
    job = client.cancel_job(job_id)
    click.echo(f"job {job['id']} {job['state']}")


@main.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True)
@keystore_option
@click.pass_obj
def status(client: ArtistClient, job_id: str, as_json: bool, keystore: Path | None) -> None:
    """Show a job's state, frames and money."""
    require_sign_in(client, keystore)
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
@keystore_option
@click.pass_obj
def download(client: ArtistClient, job_id: str, directory: Path, keystore: Path | None) -> None:
    """Download every verified frame of JOB_ID into DIRECTORY."""
    require_sign_in(client, keystore)
    paths = client.download(job_id, directory)
    if not paths:
        raise click.ClickException(f"job {job_id} has no verified frames yet")
    click.echo(f"{len(paths)} frames in {directory}")


@main.command()
@click.argument("image", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--width", type=click.IntRange(min=1), help="Expected width (default: the file's).")
@click.option("--height", type=click.IntRange(min=1), help="Expected height (default: the file's).")
@click.option(
    "--format",
    "image_format",
    type=click.Choice(["png", "exr"], case_sensitive=False),
    help="Expected format.",
)
def verify(image: Path, width: int | None, height: int | None, image_format: str | None) -> None:
    """Check IMAGE as the farm checks a render output; print the verdict as JSON.

    Exits 0 when accepted, 1 when rejected, 2 on a usage error. Without options the
    format and size are read from the file itself."""
    from shared.image_checks import ExpectedImage, check_render_output, describe_file

    found_format, found_width, found_height = describe_file(str(image))
    output_format = {"png": "PNG", "exr": "OPEN_EXR"}[image_format.lower()] if image_format else found_format
    expected = ExpectedImage(
        output_format="PNG" if output_format == "UNKNOWN" else output_format,
        width=width or found_width,
        height=height or found_height,
    )
    verdict = check_render_output(str(image), expected)
    report = {
        "file": str(image),
        "expected": {"format": expected.output_format, "width": expected.width, "height": expected.height},
    } | verdict.to_json()
    click.echo(json.dumps(report, indent=2))
    sys.exit(0 if verdict.accepted else 1)


@main.command("sign-in")
@keystore_option
@click.pass_obj
def sign_in(client: ArtistClient, keystore: Path | None) -> None:
    """Sign in with your wallet; later commands reuse the session for an hour."""
    if client.api.signed_in:
        raise click.ClickException("an API token is given (--token or $RONRENDER_TOKEN): nothing to sign in")
    wallet = open_wallet(keystore)
    client.sign_in_with(wallet, SessionStore())
    client.api.sign_in()
    click.echo(f"signed in to {client.api.base_url} as {wallet.address}")


@main.command("sign-out")
@click.pass_obj
def sign_out(client: ArtistClient) -> None:
    """Forget the sessions kept for this backend (the next command signs in again)."""
    forgotten = SessionStore().forget(client.api.base_url)
    click.echo(f"forgot {forgotten} session(s) for {client.api.base_url}")


@main.group()
def token() -> None:
    """API tokens for scripts and the Blender add-on: create, list, revoke."""


@token.command("create")
@click.argument("name")
@click.option("--expires-in-days", type=click.IntRange(1, 3650), help="Default: until revoked.")
@keystore_option
@click.pass_obj
def token_create(client: ArtistClient, name: str, expires_in_days: int | None, keystore: Path | None) -> None:
    """Create a token named NAME; prints the secret once (paste it into the add-on's preferences)."""
    require_key(client, keystore)
    issued = client.create_api_token(name, expires_in_days)
    click.echo(f"token {issued['id']} for {issued['address']} (shown once):", err=True)
    click.echo(issued["token"])


@token.command("list")
@keystore_option
@click.pass_obj
def token_list(client: ArtistClient, keystore: Path | None) -> None:
    """Your API tokens (never their secrets)."""
    require_sign_in(client, keystore)
    for issued in client.api_tokens():
        state = "revoked" if issued["revoked_at"] else f"expires {issued['expires_at'] or 'never'}"
        click.echo(f"{issued['id']}  {issued['name']:<24} created {issued['created_at']}  {state}")


@token.command("revoke")
@click.argument("token_id")
@keystore_option
@click.pass_obj
def token_revoke(client: ArtistClient, token_id: str, keystore: Path | None) -> None:
    """Revoke TOKEN_ID: it stops working at once."""
    require_sign_in(client, keystore)
    client.revoke_api_token(token_id)
    click.echo(f"token {token_id} revoked")


@main.group()
def wallet() -> None:
    """Your wallet: create it, deposit RON into the escrow, set the platform's cap, withdraw."""


@wallet.command("new")
@click.option(
    "--keystore", type=click.Path(dir_okay=False, path_type=Path), envvar=KEYSTORE_ENV, required=True
)
def wallet_new(keystore: Path) -> None:
    """Create an encrypted keystore with a new key."""
    if keystore.exists():
        raise click.ClickException(f"{keystore} exists; refusing to overwrite a wallet")
    password = os.environ.get(PASSWORD_ENV) or click.prompt(
        "new keystore password", hide_input=True, confirmation_prompt=True, err=True
    )
    click.echo(Wallet.create(keystore, password).address)


@wallet.command("show")
@keystore_option
@click.pass_obj
def wallet_show(client: ArtistClient, keystore: Path | None) -> None:
    """Your address, its RON on chain, and its escrow balance and cap."""
    escrow = escrow_wallet(client, keystore)
    own = escrow.wallet
    balance = client.wallet_balance(own.address)
    click.echo(f"address        {own.address}")
    click.echo(f"on chain       {format_ron(escrow.chain_balance())}")
    click.echo(f"escrow balance {format_ron(balance['free_balance_wei'])}")
    click.echo(f"spending cap   {format_ron(balance['spending_cap_wei'])}")


@wallet.command("deposit")
@click.argument("amount_ron")
@click.option("--cap", "cap_ron", help="Also set the platform's spending cap to this many RON.")
@keystore_option
@click.pass_obj
def wallet_deposit(client: ArtistClient, amount_ron: str, cap_ron: str | None, keystore: Path | None) -> None:
    """Deposit AMOUNT_RON into your escrow balance (and optionally set the cap)."""
    amount, cap = parse_ron(amount_ron), parse_ron(cap_ron) if cap_ron else None
    escrow = escrow_wallet(client, keystore)
    click.echo(f"deposited {format_ron(amount)}: {escrow.deposit(amount)}")
    if cap is not None:
        click.echo(f"spending cap {format_ron(cap)}: {escrow.set_spending_cap(cap)}")


@wallet.command("cap")
@click.argument("amount_ron")
@keystore_option
@click.pass_obj
def wallet_cap(client: ArtistClient, amount_ron: str, keystore: Path | None) -> None:
    """Set how much the platform may lock from your balance in total."""
    cap = parse_ron(amount_ron)
    escrow = escrow_wallet(client, keystore)
    click.echo(f"spending cap {format_ron(cap)}: {escrow.set_spending_cap(cap)}")


@wallet.command("withdraw")
@click.argument("amount_ron")
@keystore_option
@click.pass_obj
def wallet_withdraw(client: ArtistClient, amount_ron: str, keystore: Path | None) -> None:
    """Withdraw AMOUNT_RON of your unlocked escrow balance back to your wallet."""
    amount = parse_ron(amount_ron)
    escrow = escrow_wallet(client, keystore)
    click.echo(f"withdrew {format_ron(amount)}: {escrow.withdraw(amount)}")


@wallet.command("unlock")
@click.option(
    "--for",
    "minutes",
    type=click.IntRange(1, 24 * 60),
    default=60,
    show_default=True,
    help="Minutes until the agent forgets the key.",
)
@keystore_option
@click.pass_obj
def wallet_unlock(client: ArtistClient, minutes: int, keystore: Path | None) -> None:
    """Keep the wallet open for this farm in a background agent: later commands sign in
    and accept jobs without the password (never a transaction). `wallet lock` ends it."""
    opened = open_wallet(keystore).opened()
    client.sign_in_with(opened, SessionStore())
    escrow = client.escrow_info()
    farm = Farm(
        url=client.api.base_url, chain_id=escrow["chain_id"], contract_address=escrow["contract_address"]
    )
    until = start_agent(opened, farm, timedelta(minutes=minutes))
    ends = until.astimezone()
    click.echo(f"wallet {opened.address} unlocked for {farm.url} until {ends:%H:%M} (ronrender wallet lock)")


@wallet.command("lock")
def wallet_lock() -> None:
    """Stop every wallet agent of yours: commands ask for the keystore's password again."""
    click.echo(f"locked {stop_all_agents()} wallet(s)")
