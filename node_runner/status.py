"""The node's status file (written by the running service in its work directory)
and the table ``ronrender-node status`` prints from it and from the backend."""

from __future__ import annotations

import json
import os
from datetime import date, datetime
from pathlib import Path
from typing import Any

STATUS_FILE = "status.json"
BAR_WIDTH = 20


def write_status(work_dir: Path, status: dict[str, Any]) -> None:
    """Atomically, so ``status`` never reads half a file."""
    path = work_dir / STATUS_FILE
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(status, indent=1, default=str))
    os.replace(partial, path)


def read_status(work_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((work_dir / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None


def today_base(previous: dict[str, Any] | None, today: date) -> dict[str, Any]:
    """Today's counts carried over from an earlier run of the node today."""
    counts = (previous or {}).get("today") or {}
    if counts.get("date") != today.isoformat():
        return {"date": today.isoformat(), "uploaded": 0, "failed": {}, "blocked": 0}
    return {
        "date": counts["date"],
        "uploaded": int(counts.get("uploaded", 0)),
        "failed": dict(counts.get("failed", {})),
        "blocked": int(counts.get("blocked", 0)),
    }


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def progress_bar(fraction: float) -> str:
    filled = round(max(0.0, min(fraction, 1.0)) * BAR_WIDTH)
    return "[" + "#" * filled + "-" * (BAR_WIDTH - filled) + f"] {fraction * 100:3.0f}%"


def format_status(
    status: dict[str, Any] | None, node: dict[str, Any] | None, backend_error: str | None
) -> str:
    """The table an owner reads: slots and their frames, today's counts, reputation, earnings."""
    if status is None:
        return "no status file: this node has not run in this work directory yet"
    running = status.get("running") and process_alive(int(status.get("pid", 0)))
    state = (
        f"running (pid {status['pid']})" if running else f"not running (last seen {status.get('updated_at')})"
    )
    lines = [
        f"node {status.get('name')} ({status.get('node_id') or 'not registered'}) "
        f"at {status.get('backend_url')}",
        f"  {state}; owner control: {status.get('control')}; "
        f"{'sandboxed' if status.get('sandboxed') else 'NOT sandboxed'}; "
        f"benchmark {status.get('benchmark_ms') or '-'} ms",
        "",
        f"{'SLOT':<6} {'DEVICE':<14} {'STATE':<10} {'JOB / FRAME':<24} PROGRESS",
    ]
    for slot in status.get("slots", []):
        job = f"{slot['job_id'][:12]} / {slot['frame']}" if slot.get("job_id") else "-"
        if slot.get("job_id"):
            doing = f"{progress_bar(float(slot.get('progress', 0)))} {slot.get('detail', '')}"
        else:
            doing = slot.get("waiting") or "asking for work"
        lines.append(f"{slot['name']:<6} {slot['device'][:14]:<14} {slot['state']:<10} {job:<24} {doing}")
    today = status.get("today") or {}
    failed = today.get("failed") or {}
    why = ", ".join(f"{kind}: {n}" for kind, n in sorted(failed.items()))
    lines += [
        "",
        f"today ({today.get('date')}): {today.get('uploaded', 0)} frames uploaded, "
        f"{sum(failed.values())} failed{f' ({why})' if why else ''}, "
        f"{today.get('blocked', 0)} handed back (blocklist)",
    ]
    if node is not None:
        lines.append(
            f"backend: reputation {node.get('reputation')}, state {node.get('state')}; frames verified "
            f"{node.get('frames_verified')}, rejected {node.get('frames_rejected')}, failed "
            f"{node.get('frames_failed')}, timed out {node.get('frames_timed_out')}, "
            f"dropped {node.get('frames_dropped')}"
        )
        if node.get("suspended_reason"):
            lines.append(f"  suspended: {node['suspended_reason']}")
        earnings = node.get("earnings")
        if earnings:
            # The backend's EarningsOut: released (confirmed on chain) and pending, paid per day.
            today_paid = next(
                (d for d in earnings.get("by_day") or [] if d.get("date") == today.get("date")), None
            )
            lines.append(
                f"earned: {_ron(earnings.get('released_wei'))} RON confirmed on chain "
                f"({earnings.get('frames_paid', 0)} frames), {_ron(earnings.get('pending_wei'))} RON "
                f"pending ({earnings.get('frames_pending', 0)} frames)"
            )
            if today_paid:
                lines.append(
                    f"  paid today: {_ron(today_paid.get('wei'))} RON for {today_paid.get('frames')} frames"
                )
        else:
            lines.append("earned: the backend does not report earnings")
    else:
        lines.append(f"backend: unreachable ({backend_error})")
    return "\n".join(lines)


def _ron(wei: Any) -> str:
    try:
        return f"{int(wei) / 10**18:.6f}"
    except (TypeError, ValueError):
        return "-"


def now_iso() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")
