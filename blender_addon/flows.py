"""What each button does once the main thread has handed over: the work
functions run by ``tasks.TaskRunner``. No bpy module use.

Estimate: pack → upload (skipped when the farm already has these bytes) → wait
for the farm's Blender to read the scene → create the job, which is the estimate
(AWAITING_ACCEPTANCE). Submit: accept the estimated job, estimating first when
there is no estimate for these settings. Refresh, pull frames and cancel follow
a job.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from .errors import AddonError, FarmError
from .farm_client import FarmClient, file_sha256
from .job_model import JobView, frame_problems
from .messages import EstimateReady, FramesPulled, JobAccepted, JobUpdated, WalletBalance
from .scene_packer import PackPlan, pack_scene
from .tasks import TaskContext, Work
from .vendor.states import FrameState, SceneState
from .wallet_signing import KeystoreSigner, check_acceptance

OUTPUT_EXTENSIONS = {"PNG": "png", "OPEN_EXR": "exr"}
MIB = 1024 * 1024


def frame_filename(number: int, output_format: str) -> str:
    """How a pulled frame is named on disk (as the farm names it): frame_00012.png."""
    return f"frame_{number:05d}.{OUTPUT_EXTENSIONS.get(output_format, 'png')}"


def _mib(size: int) -> str:
    return f"{size / MIB:.1f} MiB"


def upload_packed_scene(context: TaskContext, client: FarmClient, plan: PackPlan) -> tuple[str, int]:
    """Pack, upload and wait for the farm to read the scene; returns (sha256, bytes)."""
    context.progress("Connecting to the farm…", force=True)
    client.ping()
    context.progress("Packing the scene into one file…", force=True)
    packed = pack_scene(plan, context.cancelled)
    size = packed.stat().st_size
    sha256 = file_sha256(packed)
    context.check()
    known = client.find_scene(sha256)
    if known is None or known["state"] == SceneState.INVALID:

        def on_progress(sent: int, total: int) -> None:
            context.progress(
                f"Uploading the scene: {_mib(sent)} of {_mib(total)}", sent / total if total else 1.0
            )

        uploaded = client.upload_scene(packed, on_progress, context.cancelled)
        sha256 = uploaded["sha256"]
    context.progress("The farm's Blender is reading the scene…", force=True)
    scene = client.wait_for_scene(sha256, context.cancelled)
    if scene["state"] == SceneState.INVALID:
        raise FarmError(
            scene.get("error") or "the farm could not open the scene file", reason="SCENE_INVALID"
        )
    return sha256, size


def estimate(
    context: TaskContext, client: FarmClient, plan: PackPlan, request: dict[str, Any], scene_revision: int
) -> dict[str, Any]:
    """Pack, upload and create the job; posts ``EstimateReady`` and returns the job."""
    try:
        sha256, size = upload_packed_scene(context, client, plan)
    finally:
        shutil.rmtree(plan.work_dir, ignore_errors=True)
    context.progress("Pricing the job…", force=True)
    job = client.create_job({"scene_sha256": sha256, **request})
    context.post(EstimateReady(context.task, job, request, sha256, size, scene_revision))
    return job


def post_wallet_balance(context: TaskContext, client: FarmClient, address: str) -> None:
    """Post the wallet's escrow balance if the farm tells it; silence otherwise (it is a hint)."""
    try:
        balance = client.wallet_balance(address)
    except FarmError:
        return
    if balance is not None:
        context.post(
            WalletBalance(
                context.task, address, int(balance["free_balance_wei"]), int(balance["spending_cap_wei"])
            )
        )


def accept(
    context: TaskContext, client: FarmClient, job: JobView, signer: KeystoreSigner | None
) -> dict[str, Any]:
    """Accept ``job``'s estimate as the artist saw it, signed by the artist's wallet
    when one is set up (the farm's message must be for exactly that estimate)."""
    context.progress("Accepting the estimate…", force=True)
    if signer is None:
        try:
            accepted = client.accept_job(job.job_id)
        except FarmError as error:
            if error.status == 422 and "signature" in str(error.detail):
                raise FarmError(
                    "this farm accepts a job only with your wallet's signature: set your wallet keystore "
                    "in the RonRender preferences",
                    reason="SIGNATURE_REQUIRED",
                    detail=error.detail,
                ) from error
            raise
    else:
        address = signer.address
        typed_data = client.acceptance_message(job.job_id, address)
        check_acceptance(typed_data, job.job_id, job.estimate_wei, job.frames_total)
        context.progress("Signing the acceptance with your wallet…", force=True)
        accepted = client.accept_job(job.job_id, address, signer.sign_typed_data(typed_data))
    context.post(JobAccepted(context.task, accepted))
    return accepted


def estimate_work(
    client: FarmClient, plan: PackPlan, request: dict[str, Any], scene_revision: int, wallet_address: str = ""
) -> Work:
    def work(context: TaskContext) -> None:
        estimate(context, client, plan, request, scene_revision)
        if wallet_address:
            post_wallet_balance(context, client, wallet_address)

    return work


def submit_work(
    client: FarmClient,
    plan: PackPlan | None,
    request: dict[str, Any],
    shown_estimate: JobView | None,
    signer: KeystoreSigner | None,
    scene_revision: int = 0,
) -> Work:
    """Accept the estimate on screen, or (without one) estimate with ``plan`` first."""

    def work(context: TaskContext) -> None:
        if shown_estimate is not None:
            job = shown_estimate
        elif plan is not None:
            job = JobView.from_json(estimate(context, client, plan, request, scene_revision))
        else:
            raise AddonError("nothing to submit: no estimate and no scene", reason="NO_ESTIMATE")
        accept(context, client, job, signer)

    return work


def accept_work(
    client: FarmClient, job_id: str, shown: JobView | None, signer: KeystoreSigner | None
) -> Work:
    """Accept a listed job again (after a refused lock and a deposit, for example)."""

    def work(context: TaskContext) -> None:
        accept(context, client, shown or JobView.from_json(client.get_job(job_id)), signer)

    return work


def balance_work(client: FarmClient, address: str) -> Work:
    def work(context: TaskContext) -> None:
        context.progress("Asking the farm for your escrow balance…", force=True)
        balance = client.wallet_balance(address)
        if balance is None:
            raise AddonError("this farm has no wallet endpoint", reason="NO_WALLET_ENDPOINT")
        post_wallet_balance(context, client, address)

    return work


def refresh_work(client: FarmClient, job_ids: list[str]) -> Work:
    """Fetch each job (and why frames failed, when some did)."""

    def work(context: TaskContext) -> None:
        errors: list[FarmError] = []
        for job_id in job_ids:
            context.check()
            try:
                job = client.get_job(job_id)
                problems = frame_problems(client.frames(job_id)) if job["frame_counts"].get("FAILED") else ()
            except FarmError as error:
                errors.append(error)
                continue
            context.post(JobUpdated(context.task, job, problems))
        if errors:
            raise errors[0]

    return work


def pull_work(client: FarmClient, job_id: str, directory: Path) -> Work:
    """Download the verified frames not yet on disk (or changed) into ``directory``."""

    def work(context: TaskContext) -> None:
        context.progress(f"Listing the frames of job {job_id[:8]}…", force=True)
        job = client.get_job(job_id)
        frames = client.frames(job_id)
        verified = [frame for frame in frames if frame["state"] == FrameState.VERIFIED]
        context.post(JobUpdated(context.task, job, frame_problems(frames)))
        if not verified:
            raise AddonError(f"job {job_id[:8]} has no verified frames yet", reason="NO_VERIFIED_FRAMES")
        directory.mkdir(parents=True, exist_ok=True)
        files, downloaded = [], 0
        for index, frame in enumerate(verified):
            context.check()
            path = directory / frame_filename(frame["number"], job["output_format"])
            if not (path.is_file() and file_sha256(path) == frame["output_sha256"]):
                context.progress(
                    f"Downloading frame {frame['number']} ({index + 1} of {len(verified)})",
                    index / len(verified),
                )
                client.download_frame(
                    job_id, frame["number"], path, frame["output_sha256"], context.cancelled
                )
                downloaded += 1
            files.append(str(path))
        context.progress(f"{len(files)} frames on disk", 1.0)
        context.post(
            FramesPulled(
                context.task,
                job_id,
                str(directory),
                tuple(files),
                int(job["frame_start"]),
                int(job["frame_end"]),
                job["output_format"],
                downloaded,
            )
        )

    return work


def cancel_work(client: FarmClient, job_id: str) -> Work:
    def work(context: TaskContext) -> None:
        context.progress(f"Cancelling job {job_id[:8]}…", force=True)
        context.post(JobUpdated(context.task, client.cancel_job(job_id)))

    return work
