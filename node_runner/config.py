"""A node's configuration: the owner's TOML file (written by ``ronrender-node init``),
overridden by command-line flags, as one frozen ``NodeConfig``."""

from __future__ import annotations

import os
import socket
import sys
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from node_runner import defaults
from node_runner.wallet import KEY_ENV, WalletError, load_node_wallet
from shared.api_client import SigningWallet
from shared.protocol import DEFAULT_BACKEND_URL

GIB = 1024**3


class ConfigError(ValueError):
    """The config file or a flag holds a value the node cannot use."""


@dataclass(frozen=True)
class NodeConfig:
    backend_url: str
    name: str
    work_dir: Path
    payout_address: str | None = None  # the wallet's address; a differing one is refused
    wallet: SigningWallet | None = None  # signs the backend's sign-in challenge; receives the RON
    wallet_keystore: Path | None = None
    wallet_password_file: Path | None = None
    config_path: Path | None = None
    blender_python: str = sys.executable
    threads: int = 0  # render threads per CPU slot; 0 shares the cores among CPU slots
    heartbeat_interval_s: float = defaults.HEARTBEAT_INTERVAL_S
    idle_poll_interval_s: float = defaults.IDLE_POLL_INTERVAL_S
    retry_window_s: float = defaults.BACKEND_RETRY_WINDOW_S
    # Slots
    use_gpus: bool = True
    devices: tuple[str, ...] = ()  # Cycles device ids to use; empty = every GPU Cycles sees
    allow_cpu_slot: bool = True  # the CPU as a slot of its own beside the GPUs
    cpu_slots: int = 1  # CPU slots when there is no GPU slot
    max_slots: int = 0  # 0 = no limit
    prestart_blender: bool = True  # an idle slot loads its next Blender before work comes
    # The owner's terms
    schedule: tuple[str, ...] = ()  # empty = any time; e.g. "mon-fri 18:00-08:00", "sat-sun"
    idle_only: bool = False
    idle_max_load_per_core: float = defaults.IDLE_MAX_LOAD_PER_CORE
    blocked_jobs: tuple[str, ...] = ()
    blocked_artists: tuple[str, ...] = ()
    # Limits
    cache_limit_bytes: int = defaults.CACHE_LIMIT_BYTES
    memory_limit_bytes: int = 0  # per render child; 0 = no limit
    output_limit_bytes: int = defaults.OUTPUT_LIMIT_BYTES
    # Sandbox and benchmark
    allow_unsandboxed: bool = False
    run_benchmark: bool = True
    hide_paths: tuple[Path, ...] = field(default=())  # more paths the render child must not see

    def with_overrides(self, **overrides: Any) -> NodeConfig:
        """This config with the given non-None values replaced (command-line flags win)."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


CONFIG_TEMPLATE = """\
# RonRender node configuration, read by `ronrender-node run --config {path}`.
# Command-line flags override what is set here. Sizes are in GiB unless named otherwise.

# The farm's backend.
backend_url = "{backend_url}"
# The name shown to the farm and in its dashboard.
name = "{name}"
# Where the node keeps cached scenes, logs of failed frames, its status and its benchmark.
work_dir = "{work_dir}"

# The payout wallet, an encrypted keystore (create one with `ronrender-node init
# --new-wallet`): the node signs in to the farm with it, and verified frames are paid
# to its address. Render children never see these files.
wallet_keystore = "{wallet_keystore}"
wallet_password_file = "{wallet_password_file}"

# A Python with the bpy module (Blender as a Python module).
# blender_python = "/usr/bin/python3"

[slots]
# One render slot per GPU that Blender's Cycles sees (CUDA, OptiX, HIP, oneAPI, Metal).
use_gpus = true
# Only these Cycles device ids (see the node's log at start); empty = every GPU.
devices = []
# Render on the CPU as a slot of its own beside the GPUs.
allow_cpu_slot = true
# With no GPU: how many CPU slots share the cores.
cpu_slots = 1
# Render threads per CPU slot; 0 shares the cores among the CPU slots.
threads = 0
# At most this many slots at once; 0 = no limit.
max_slots = 0
# An idle slot loads its next Blender before work comes, so a job's first frame starts
# at once (about 400 MB resident per slot while it waits); false loads it per job.
prestart_blender = true

[terms]
# Hours of the week when the node takes work, in local time; empty = any time.
# Examples: "mon-fri 18:00-08:00" (overnight), "sat-sun", "wed 00:00-06:00".
schedule = []
# Take new frames only while the machine is otherwise idle (load average per core below
# idle_max_load_per_core, not counting the node's own renders).
idle_only = false
idle_max_load_per_core = {idle_load}
# Never render these jobs, or any job of these artists (0x addresses).
blocked_jobs = []
blocked_artists = []

[limits]
# Scene cache on disk; least recently used scenes go first.
cache_size_gb = {cache_gb}
# Memory (address space) of one render child; 0 = no limit. Blender needs about 2 GiB.
# Not applied to GPU slots: GPU drivers reserve large address ranges.
memory_limit_gb = 0
# The largest file a render child may write.
output_limit_gb = {output_gb}

[sandbox]
# The render child runs in bubblewrap (Debian package `bubblewrap`): no network, a
# read-only filesystem but its own job directory, this node's keys and config hidden.
# Without bubblewrap the node refuses to start unless this is true.
allow_unsandboxed = false
"""


def config_template(
    path: Path,
    *,
    backend_url: str = DEFAULT_BACKEND_URL,
    name: str | None = None,
    work_dir: str = defaults.DEFAULT_WORK_DIR,
    wallet_keystore: str = defaults.DEFAULT_WALLET_KEYSTORE,
    wallet_password_file: str = defaults.DEFAULT_WALLET_PASSWORD_FILE,
) -> str:
    """The commented TOML that ``ronrender-node init`` writes."""

    return CONFIG_TEMPLATE.format(
        path=path,
        backend_url=backend_url,
        name=name or socket.gethostname(),
        work_dir=work_dir,
        wallet_keystore=wallet_keystore,
        wallet_password_file=wallet_password_file,
        idle_load=defaults.IDLE_MAX_LOAD_PER_CORE,
        cache_gb=defaults.CACHE_LIMIT_BYTES // GIB,
        output_gb=defaults.OUTPUT_LIMIT_BYTES // GIB,
    )


# TOML key (section.key) → NodeConfig field, with a converter.
def _gib(value: Any) -> int:
    return int(float(value) * GIB)


def _path(value: Any) -> Path:
    return Path(os.path.expanduser(str(value)))


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError(f"expected a list, got {value!r}")
    return tuple(str(item) for item in value)


_KEYS: dict[str, tuple[str, Any]] = {
    "backend_url": ("backend_url", str),
    "name": ("name", str),
    "work_dir": ("work_dir", _path),
    "payout_address": ("payout_address", str),
    "wallet_keystore": ("wallet_keystore", _path),
    "wallet_password_file": ("wallet_password_file", _path),
    "blender_python": ("blender_python", str),
    "heartbeat_interval_s": ("heartbeat_interval_s", float),
    "slots.use_gpus": ("use_gpus", bool),
    "slots.devices": ("devices", _strings),
    "slots.allow_cpu_slot": ("allow_cpu_slot", bool),
    "slots.cpu_slots": ("cpu_slots", int),
    "slots.threads": ("threads", int),
    "slots.max_slots": ("max_slots", int),
    "slots.prestart_blender": ("prestart_blender", bool),
    "terms.schedule": ("schedule", _strings),
    "terms.idle_only": ("idle_only", bool),
    "terms.idle_max_load_per_core": ("idle_max_load_per_core", float),
    "terms.blocked_jobs": ("blocked_jobs", _strings),
    "terms.blocked_artists": ("blocked_artists", lambda v: tuple(a.lower() for a in _strings(v))),
    "limits.cache_size_gb": ("cache_limit_bytes", _gib),
    "limits.memory_limit_gb": ("memory_limit_bytes", _gib),
    "limits.output_limit_gb": ("output_limit_bytes", _gib),
    "sandbox.allow_unsandboxed": ("allow_unsandboxed", bool),
}


def read_config_file(path: Path) -> dict[str, Any]:
    """The NodeConfig fields set in a TOML file; unknown keys are an error, so typos show."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"cannot read {path}: {error}") from error
    values: dict[str, Any] = {"config_path": path}
    for key, raw in _flatten(data).items():
        if key not in _KEYS:
            raise ConfigError(f"{path}: unknown setting {key!r}")
        name, convert = _KEYS[key]
        try:
            values[name] = convert(raw)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"{path}: {key} = {raw!r}: {error}") from error
    return values


def build_config(file_values: dict[str, Any], flags: dict[str, Any]) -> NodeConfig:
    """Defaults, then the file, then flags that were given; resolves the payout address."""
    merged = {**file_values, **{k: v for k, v in flags.items() if v is not None}}
    known = {f.name for f in fields(NodeConfig)}
    unknown = set(merged) - known
    if unknown:
        raise ConfigError(f"unknown settings: {sorted(unknown)}")
    merged.setdefault("backend_url", DEFAULT_BACKEND_URL)
    merged.setdefault("name", socket.gethostname())
    merged.setdefault("work_dir", _path(defaults.DEFAULT_WORK_DIR))
    merged["work_dir"] = _path(merged["work_dir"])
    for key in ("wallet_keystore", "wallet_password_file"):
        if merged.get(key) is not None:
            merged[key] = _path(merged[key])
    return with_wallet(NodeConfig(**merged))


def with_wallet(config: NodeConfig) -> NodeConfig:
    """Open the payout wallet (keystore, or $RONRENDER_NODE_KEY on local farms) and take
    the payout address from it; a payout address that is not the wallet's is refused."""
    wallet = config.wallet
    if wallet is None and (config.wallet_keystore is not None or os.environ.get(KEY_ENV)):
        try:
            wallet = load_node_wallet(config.wallet_keystore, config.wallet_password_file)
        except WalletError as error:
            raise ConfigError(str(error)) from error
    if wallet is None:
        if config.payout_address is None:
            raise ConfigError(
                "no payout wallet: set wallet_keystore and wallet_password_file in the config "
                "(or --wallet-keystore and --wallet-password-file)"
            )
        return config
    if config.payout_address and config.payout_address.lower() != wallet.address.lower():
        raise ConfigError(f"--payout-address {config.payout_address} is not the wallet's ({wallet.address})")
    return replace(config, wallet=wallet, payout_address=wallet.address)


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
