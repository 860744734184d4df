"""JSON shapes of the HTTP API; APIFlask validates requests with them and
builds the OpenAPI document from them. Wei amounts travel as decimal strings."""

from __future__ import annotations

from apiflask import Schema
from apiflask.fields import Boolean, DateTime, Dict, Float, Function, Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Range, Regexp

from backend import defaults
from backend.services import heartbeats, reputation
from shared.states import DeviceType, OutputFormat, RenderEngine

# Integers land in 32- and 64-bit database columns; larger ones are refused up front.
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
SHA256 = Regexp(r"^[0-9a-f]{64}$", error="must be a lowercase hex sha256")
ADDRESS = Regexp(r"^0x[0-9a-fA-F]{40}$", error="must be a 0x-prefixed 20-byte address")


class ErrorOut(Schema):
    message = String(required=True)
    reason = String(required=True)
    detail = Dict()


class SceneOut(Schema):
    sha256 = String()
    size_bytes = Integer()
    state = String()
    error = String(allow_none=True)
    analysis = Dict(allow_none=True)
    created_at = DateTime()


class JobCreateIn(Schema):
    scene_sha256 = String(required=True, validate=SHA256)
    frame_start = Integer(load_default=None, validate=Range(min=-INT32_MAX, max=INT32_MAX))
    frame_end = Integer(load_default=None, validate=Range(min=-INT32_MAX, max=INT32_MAX))
    frame_step = Integer(load_default=None, validate=Range(min=1, max=INT32_MAX))
    engine = String(load_default=None, validate=OneOf([e.value for e in RenderEngine]))
    samples = Integer(load_default=None, validate=Range(min=1, max=1_000_000))
    resolution_percentage = Integer(load_default=None, validate=Range(min=1, max=1000))
    output_format = String(load_default=None, validate=OneOf([f.value for f in OutputFormat]))
    required_device = String(load_default=None, validate=OneOf([d.value for d in DeviceType]))
    required_memory_bytes = Integer(load_default=0, validate=Range(min=0, max=INT64_MAX))


class JobOut(Schema):
    id = String()
    state = String()
    scene_sha256 = String()
    frame_start = Integer()
    frame_end = Integer()
    frame_step = Integer()
    frames_total = Integer()
    output_format = String()
    engine = String()
    samples = Integer(allow_none=True)
    width = Integer(attribute="output_width")
    height = Integer(attribute="output_height")
    resolution_percentage = Integer()
    required_device = String()
    required_memory_bytes = Integer()
    price_per_frame_wei = String()
    fee_bps = Integer()
    estimate_wei = String()
    estimated_render_us_per_frame = Integer()
    safety_margin_percent = Integer()
    artist_address = String(allow_none=True)
    lock_error = String(allow_none=True)
    frame_counts = Dict(keys=String(), values=Integer())
    money = Dict(keys=String(), values=String())
    created_at = DateTime()
    finished_at = DateTime(allow_none=True)


class FrameOut(Schema):
    number = Integer()
    state = String()
    failures = Integer()
    node_id = String(allow_none=True)
    progress = Float()
    last_rejection = String(allow_none=True)
    output_sha256 = String(allow_none=True)
    thumbnail_sha256 = String(allow_none=True)
    verdict = String(allow_none=True)  # "ACCEPTED", a rejection reason code, or None before any


class FramesOut(Schema):
    frames = List(Nested(FrameOut))


class GpuIn(Schema):
    name = String(required=True, validate=Length(max=128))
    backend = String(required=True, validate=Length(max=16))
    memory_bytes = Integer(load_default=0, validate=Range(min=0, max=INT64_MAX))


class SlotIn(Schema):
    name = String(required=True, validate=Length(min=1, max=64))
    device_type = String(required=True, validate=OneOf([d.value for d in DeviceType]))
    memory_bytes = Integer(load_default=0, validate=Range(min=0, max=INT64_MAX))


class NodeRegisterIn(Schema):
    name = String(required=True, validate=Length(min=1, max=128))
    cpu_cores = Integer(required=True, validate=Range(min=1, max=INT32_MAX))
    memory_bytes = Integer(required=True, validate=Range(min=0, max=INT64_MAX))
    blender_version = String(
        required=True,
        validate=[
            Length(max=32),
            Regexp(r"^[0-9]{1,4}\.[0-9]{1,4}(\.[0-9]{1,6})?( [ -~]*)?$", error="like 4.5.1 LTS"),
        ],
    )
    gpus = List(Nested(GpuIn), load_default=list)
    payout_address = String(
        load_default=None,
        validate=ADDRESS,
        metadata={"description": "Must be the signed-in wallet (the sign-in proves the node controls it)"},
    )
    sandboxed = Boolean(load_default=False, metadata={"description": "Renders run in a sandbox"})
    benchmark_ms = Integer(
        load_default=None,
        validate=Range(min=1, max=INT32_MAX),
        metadata={"description": "The first-start benchmark render"},
    )
    slots = List(Nested(SlotIn), load_default=list, validate=Length(max=64))


class NodeOut(Schema):
    id = String()
    name = String()
    state = String()
    reputation = Function(lambda node: reputation.score(node))
    suspended_reason = String(allow_none=True)
    frames_verified = Integer()
    frames_rejected = Integer()
    frames_failed = Integer()
    frames_timed_out = Integer()
    frames_dropped = Integer()
    cpu_cores = Integer()
    memory_bytes = Integer()
    gpus = List(Dict())
    blender_version = String()
    payout_address = String(allow_none=True)
    sandboxed = Boolean()
    benchmark_ms = Integer(allow_none=True)
    slots = List(Dict())
    last_heartbeat_at = DateTime()
    rendering = Function(
        lambda node: heartbeats.current_work(node),
        metadata={"description": "Open leases: job, frame and the progress the node last reported"},
    )


class SlotProgressIn(Schema):
    attempt_id = Integer(required=True, validate=Range(min=0, max=INT32_MAX))
    lease_token = String(required=True, validate=Length(max=64))
    progress = Float(required=True, validate=Range(min=0.0, max=1.0))
    detail = String(load_default="", validate=Length(max=128))


class HeartbeatIn(Schema):
    slots = List(Nested(SlotProgressIn), load_default=list)


class HeartbeatOut(Schema):
    abandon_attempt_ids = List(Integer())


class RenderSettingsOut(Schema):
    output_format = String()
    engine = String()
    samples = Integer(allow_none=True)
    resolution_percentage = Integer()
    width = Integer()
    height = Integer()


STARTS_AT_ONCE_DESCRIPTION = (
    "The node starts the frame as soon as it is handed (it asks the scene at once): the frame is"
    " RENDERING from the answer on, and no beat needs to say it started."
)


class ClaimIn(Schema):
    """What the node's owner will not render (their blocklist), so it is never handed out,
    whether the node starts what it is handed at once, and how long it will wait for work."""

    exclude_job_ids = List(String(validate=Length(max=32)), load_default=list, validate=Length(max=1000))
    exclude_artists = List(String(validate=ADDRESS), load_default=list, validate=Length(max=1000))
    starts_at_once = Boolean(load_default=False, metadata={"description": STARTS_AT_ONCE_DESCRIPTION})
    wait_s = Float(
        load_default=0.0,
        validate=Range(min=0, max=defaults.CLAIM_HOLD_MAX_S),
        metadata={
            "description": "With nothing to hand out, hold the claim up to this long and answer as soon as"
            " work appears (a job starts rendering, a frame is handed back); a claim held that long"
            " and still empty answers 204 with Retry-After: 0 (ask again now). A busy process, or a"
            " farm large enough to answer Retry-After, answers at once"
        },
    )


class AssignmentOut(Schema):
    kind = String(
        metadata={
            "description": "FRAME: render the frame and upload it; SPOT_CHECK: render each crop"
            " (on the CPU) and upload it to the attempt's crops"
        }
    )
    crops = List(
        List(Float()),
        metadata={"description": "Render borders [min_x, max_x, min_y, max_y], fractions of the frame"},
    )
    attempt_id = Integer()
    artist_address = String(allow_none=True, metadata={"description": "The paying wallet of the job"})
    lease_token = String()
    job_id = String()
    frame_number = Integer()
    scene_sha256 = String()
    scene_size_bytes = Integer()
    settings = Nested(RenderSettingsOut)
    time_limit_s = Integer()


class FailureIn(Schema):
    reason = String(required=True, validate=Length(min=1, max=2000))
    log_tail = String(load_default="", validate=Length(max=20000))


class AttemptOut(Schema):
    id = Integer()
    outcome = String()
    output_sha256 = String(allow_none=True)


class OutputUploadQuery(Schema):
    claim_next = Boolean(
        load_default=False,
        metadata={
            "description": "Also claim the node's next frame, answered in `next` (saves a request per"
            " frame). A node with a blocklist claims on its own instead."
        },
    )
    starts_at_once = Boolean(
        load_default=False, metadata={"description": "With claim_next: " + STARTS_AT_ONCE_DESCRIPTION}
    )


class OutputUploadOut(AttemptOut):
    next = Nested(
        AssignmentOut,
        allow_none=True,
        metadata={
            "description": "With claim_next: the next frame under a new lease, or null when none fits."
            " A frame of the same job is RENDERING at once (the node holds its scene), as is any"
            " frame with starts_at_once."
        },
    )


class AcceptIn(Schema):
    artist_address = String(required=True, validate=ADDRESS)
    signature = String(
        required=True, validate=Regexp(r"^0x[0-9a-fA-F]{130}$", error="must be a 65-byte hex signature")
    )


class AcceptanceQuery(Schema):
    artist_address = String(required=True, validate=ADDRESS)


class EscrowOut(Schema):
    chain_id = Integer()
    rpc_url = String()
    contract_address = String()
    fee_bps = Integer()
    abi = List(Dict())


class WalletOut(Schema):
    address = String()
    free_balance_wei = String()
    spending_cap_wei = String()


class JobEscrowOut(Schema):
    locked_wei = String()
    paid_wei_by_node = Dict(keys=String(), values=String())
    fee_wei = String()
    refunded_wei = String()
    tx_hashes = List(String())


class NodesOut(Schema):
    nodes = List(Nested(NodeOut))


class JobsQuery(Schema):
    artist_address = String(load_default=None, validate=ADDRESS)
    limit = Integer(load_default=50, validate=Range(min=1, max=500))


class JobsOut(Schema):
    jobs = List(Nested(JobOut))


class UploadStartIn(Schema):
    size_bytes = Integer(required=True, validate=Range(min=1, max=INT64_MAX))


class UploadChunkQuery(Schema):
    offset = Integer(required=True, validate=Range(min=0, max=INT64_MAX))


class UploadOut(Schema):
    id = String()
    size_bytes = Integer()
    received_bytes = Integer(metadata={"description": "Where the next chunk starts (resume here)"})
    chunk_bytes = Integer(metadata={"description": "The chunk size the backend suggests"})


class ChallengeIn(Schema):
    address = String(required=True, validate=ADDRESS)


class ChallengeOut(Schema):
    message = String()
    nonce = String()
    expires_at = String()


class LoginIn(Schema):
    message = String(required=True, validate=Length(min=1, max=2000))
    signature = String(
        required=True, validate=Regexp(r"^0x[0-9a-fA-F]{130}$", error="must be a 65-byte hex signature")
    )


class IssuedTokenOut(Schema):
    id = String()
    token = String(metadata={"description": "The secret: shown once, store it"})
    kind = String()
    name = String()
    address = String(attribute="owner_address")
    expires_at = DateTime(allow_none=True)


class ApiTokenIn(Schema):
    name = String(required=True, validate=Length(min=1, max=128))
    expires_in_days = Integer(load_default=None, validate=Range(min=1, max=3650))


class ApiTokenOut(Schema):
    id = String()
    kind = String()
    name = String()
    created_at = DateTime()
    expires_at = DateTime(allow_none=True)
    revoked_at = DateTime(allow_none=True)


class ApiTokensOut(Schema):
    tokens = List(Nested(ApiTokenOut))


class RevokedTokenOut(ApiTokenOut):
    pass


class RequeuedFrameOut(FrameOut):
    pass


class WhoAmIOut(Schema):
    address = String()
    is_admin = Boolean()
    token_kind = String()


class EarningsDayOut(Schema):
    date = String()
    wei = String()
    frames = Integer()


class EarningsOut(Schema):
    released_wei = String(metadata={"description": "Paid out, confirmed on chain"})
    pending_wei = String(metadata={"description": "Verified, release not yet confirmed"})
    frames_paid = Integer()
    frames_pending = Integer()
    by_day = List(Nested(EarningsDayOut))


class QueueOut(Schema):
    name = String()
    queued = Integer()
    started = Integer()
    scheduled = Integer(metadata={"description": "Retries waiting for their time"})
    failed = Integer()


class QueuesOut(Schema):
    queues = List(Nested(QueueOut))
    workers = Integer(metadata={"description": "RQ workers alive on these queues"})


class SuspendIn(Schema):
    reason = String(required=True, validate=Length(min=1, max=500))
