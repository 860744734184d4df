"""Jobs: create (split and estimate), accept (lock), follow, cancel, download frames."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from flask import Response
from sqlalchemy import func, select
from zipstream import ZipStream

from backend.api.access import bearer, caller, require_owner, require_same_address
from backend.api.schemas import (
    AcceptanceQuery,
    AcceptIn,
    FramesOut,
    JobCreateIn,
    JobEscrowOut,
    JobOut,
    JobsOut,
    JobsQuery,
)
from backend.errors import NotFound
from backend.extensions import db
from backend.models import Attempt, Frame, Job
from backend.services import job_lifecycle, job_split, payments, scene_intake
from backend.services.chain_access import escrow_chain
from backend.services.scene_intake import storage
from backend.storage import send_stored
from shared.protocol import API_PREFIX
from shared.states import FrameState

blueprint = APIBlueprint("jobs", __name__, url_prefix=f"{API_PREFIX}/jobs", tag="Jobs")

OUTPUT_EXTENSIONS = {"PNG": "png", "OPEN_EXR": "exr"}
OUTPUT_MIMETYPES = {"PNG": "image/png", "OPEN_EXR": "image/x-exr"}


def _my_job(job_id: str) -> Job:
    """The job, if the caller created it (or is an admin); anyone else gets the same 404 as a typo."""
    job = job_split.get_job(job_id)
    require_owner(job.owner_address, f"job {job_id}")
    return job


def _job_view(job: Job) -> dict[str, Any]:
    view = {column.name: getattr(job, column.name) for column in Job.__table__.columns}
    view["output_width"] = job.output_width
    view["output_height"] = job.output_height
    view["frame_counts"] = job_lifecycle.frame_counts(job.id)
    view["money"] = {k: str(v) for k, v in payments.money_summary(job.id).items()}
    return view


@blueprint.post("")
@blueprint.auth_required(bearer)
@blueprint.input(JobCreateIn)
@blueprint.output(JobOut, status_code=201)
@blueprint.doc(summary="Create a job from an analysed scene file: one frame per frame number, priced")
def create_job(json_data: dict[str, Any]) -> Any:
    me = caller()
    if not (me.is_admin or scene_intake.is_owner(json_data["scene_sha256"], me.address)):
        raise NotFound(f"no scene file {json_data['scene_sha256']}")
    job = job_split.create_job(job_split.JobRequest(**json_data, owner_address=me.address))
    return _job_view(job)


@blueprint.get("")
@blueprint.auth_required(bearer)
@blueprint.input(JobsQuery, location="query")
@blueprint.output(JobsOut)
@blueprint.doc(summary="My recent jobs, newest first (admins: everyone's, optionally one artist's)")
def list_jobs(query_data: dict[str, Any]) -> Any:
    query = select(Job).order_by(Job.created_at.desc()).limit(query_data["limit"])
    me = caller()
    if not me.is_admin:
        query = query.where(func.lower(Job.owner_address) == me.address.lower())
    if query_data["artist_address"]:
        query = query.where(func.lower(Job.artist_address) == query_data["artist_address"].lower())
    return {"jobs": [_job_view(job) for job in db.session.scalars(query)]}


@blueprint.get("/<job_id>")
@blueprint.auth_required(bearer)
@blueprint.output(JobOut)
@blueprint.doc(summary="A job, its frame counts by state and its money")
def get_job(job_id: str) -> Any:
    return _job_view(_my_job(job_id))


@blueprint.get("/<job_id>/acceptance")
@blueprint.auth_required(bearer)
@blueprint.input(AcceptanceQuery, location="query")
@blueprint.doc(summary="The EIP-712 message the artist signs to accept the estimate")
def acceptance_message(job_id: str, query_data: dict[str, Any]) -> Any:
    require_same_address(query_data["artist_address"], "the paying wallet")
    return job_lifecycle.acceptance_message(_my_job(job_id), query_data["artist_address"])


@blueprint.post("/<job_id>/accept")
@blueprint.auth_required(bearer)
@blueprint.input(AcceptIn)
@blueprint.output(JobOut, status_code=202)
@blueprint.doc(
    summary="Accept the signed estimate: the lock is taken on chain, then frames go out",
    responses={409: "Not awaiting acceptance", 422: "Bad signature"},
)
def accept_job(job_id: str, json_data: dict[str, Any]) -> Any:
    _my_job(job_id)
    require_same_address(json_data["artist_address"], "the paying wallet")
    job = job_lifecycle.accept_job(job_id, json_data["artist_address"], json_data["signature"])
    return _job_view(job)


@blueprint.get("/<job_id>/escrow")
@blueprint.auth_required(bearer)
@blueprint.output(JobEscrowOut)
@blueprint.doc(summary="The job's money as the chain's events record it")
def job_escrow(job_id: str) -> Any:
    _my_job(job_id)
    history = escrow_chain().job_history(job_id)
    history["paid_wei_by_node"] = {k: str(v) for k, v in history["paid_wei_by_node"].items()}
    return history


@blueprint.post("/<job_id>/cancel")
@blueprint.auth_required(bearer)
@blueprint.output(JobOut)
@blueprint.doc(summary="Cancel a job; what was not released is refunded")
def cancel_job(job_id: str) -> Any:
    _my_job(job_id)
    return _job_view(job_lifecycle.cancel_job(job_id))


@blueprint.get("/<job_id>/frames")
@blueprint.auth_required(bearer)
@blueprint.output(FramesOut)
@blueprint.doc(summary="Every frame of a job with its state, node and progress")
def list_frames(job_id: str) -> Any:
    _my_job(job_id)
    rows = db.session.execute(
        select(Frame, Attempt)
        .outerjoin(Attempt, Attempt.id == Frame.current_attempt_id)
        .where(Frame.job_id == job_id)
        .order_by(Frame.number)
    ).all()
    frames = [
        {
            "number": frame.number,
            "state": frame.state,
            "failures": frame.failures,
            "node_id": attempt.node_id if attempt else None,
            "progress": 1.0 if frame.state == FrameState.VERIFIED else (attempt.progress if attempt else 0.0),
            "last_rejection": frame.last_rejection,
            "output_sha256": frame.output_sha256,
            "thumbnail_sha256": frame.thumbnail_sha256,
            "verdict": _verdict(frame),
        }
        for frame, attempt in rows
    ]
    return {"frames": frames}


def _verdict(frame: Frame) -> str | None:
    """The verifier's last word on the frame: "ACCEPTED", or the rejection's reason code."""
    if frame.state == FrameState.VERIFIED:
        return "ACCEPTED"
    if frame.last_rejection:
        return frame.last_rejection.split(":", 1)[0]
    return None


def _verified_frames(job_id: str) -> list[Frame]:
    return list(
        db.session.scalars(
            select(Frame)
            .where(Frame.job_id == job_id, Frame.state == FrameState.VERIFIED)
            .order_by(Frame.number)
        )
    )


def _frame_filename(job: Job, number: int) -> str:
    return f"frame_{number:05d}.{OUTPUT_EXTENSIONS[job.output_format]}"


@blueprint.get("/<job_id>/frames/<int:number>/output")
@blueprint.auth_required(bearer)
@blueprint.doc(summary="Download one verified frame")
def download_frame(job_id: str, number: int) -> Any:
    job = _my_job(job_id)
    frame = db.session.scalar(select(Frame).where(Frame.job_id == job_id, Frame.number == number))
    if frame is None or frame.state != FrameState.VERIFIED or frame.output_sha256 is None:
        raise NotFound(f"frame {number} of job {job_id} has no verified output")
    return send_stored(
        frame.output_sha256,
        mimetype=OUTPUT_MIMETYPES[job.output_format],
        download_name=_frame_filename(job, number),
        as_attachment=True,
    )


@blueprint.get("/<job_id>/frames/<int:number>/thumbnail")
@blueprint.auth_required(bearer)
@blueprint.doc(summary="A verified frame's preview: PNG, at most 256 px wide, tone-mapped for EXR")
def frame_thumbnail(job_id: str, number: int) -> Any:
    _my_job(job_id)
    frame = db.session.scalar(select(Frame).where(Frame.job_id == job_id, Frame.number == number))
    if frame is None or frame.state != FrameState.VERIFIED or frame.thumbnail_sha256 is None:
        raise NotFound(f"frame {number} of job {job_id} has no thumbnail")
    return send_stored(
        frame.thumbnail_sha256,
        mimetype="image/png",
        download_name=f"frame_{number:05d}_thumbnail.png",
        max_age=3600,
    )


@blueprint.get("/<job_id>/output.zip")
@blueprint.auth_required(bearer)
@blueprint.doc(summary="Download every verified frame of a job as one zip, streamed")
def download_zip(job_id: str) -> Any:
    job = _my_job(job_id)
    archive = ZipStream(sized=True)
    for frame in _verified_frames(job_id):
        assert frame.output_sha256 is not None
        archive.add_path(str(storage().path_for(frame.output_sha256)), _frame_filename(job, frame.number))
    return Response(
        archive,
        mimetype="application/zip",
        headers={
            "Content-Length": str(len(archive)),
            "Content-Disposition": f'attachment; filename="{job_id}.zip"',
        },
    )
