"""Simulated render nodes: many real HTTP clients in one asyncio process.

Each simulated node does what ``node_runner`` does over HTTP: it registers, waits
for the start signal, then claims a frame, "renders" by sleeping for the frame's
drawn render time, uploads a tiny valid PNG under its lease and claims the next
frame in the same request, as the real node does. As the node, it says it starts
what it is handed at once (the backend marks the frame RENDERING with its answer),
so it beats only when the backend has not heard from it for an interval or a
frame's lease has gone an interval unrenewed; with no work it polls again after
the idle interval. Render times are drawn from the frame number
alone (``render_time_s``), so the controller knows the ideal schedule.

Run by ``scripts.bench.scheduler`` as ``python -m scripts.bench.sim_nodes ...``:
it prints ``registered`` once every node is registered, starts on a ``go`` line
on stdin, stops on a ``stop`` line (or end of input), and writes its
measurements as JSON to ``--result``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import struct
import sys
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from scripts.bench.auth import bench_wallet, lease_headers, login_async, node_headers
from shared import protocol

RENDER_S_MIN, RENDER_S_MAX = 2.0, 20.0
# As the real node: requests time out after shared.api_client's 30 s, and an upload
# that fails for want of an answer is tried again with growing pauses.
REQUEST_TIMEOUT_S = 30.0
UNREACHABLE_RETRY_S = 1.0  # node_runner.defaults: a claim that got no answer waits 1-2 s
UPLOAD_RETRY_WINDOW_S = 600.0
UPLOAD_RETRY_MAX_WAIT_S = 15.0
REGISTER_CONCURRENCY = 32
LOOP_LAG_PROBE_S = 0.05  # how often the simulator checks how late its own event loop runs
STARTS_AT_ONCE = {"starts_at_once": True}  # as the node: what it is handed is RENDERING from the answer


def render_time_s(frame_number: int, time_scale: float, seed: int = 0) -> float:
    """The frame's simulated render time: uniform in [2 s, 20 s], times ``time_scale``."""
    return random.Random(seed * 1_000_003 + frame_number).uniform(RENDER_S_MIN, RENDER_S_MAX) * time_scale


def tiny_png(value: int, size: int = 8) -> bytes:
    """A valid, unique ``size``x``size`` RGB PNG (made without Pillow: cheap per frame)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    seed = value.to_bytes(4, "big")
    row = b"\x00" + bytes((seed[i % 4] + i) % 256 for i in range(size * 3))
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * size))
        + chunk(b"IEND", b"")
    )


@dataclass
class Measurements:
    claim_ms: list[float] = field(default_factory=list)  # claims that got a frame, after the first
    claim_sent_at: list[float] = field(default_factory=list)  # monotonic time each of those was sent
    upload_claim_ms: list[float] = field(default_factory=list)  # uploads whose answer held the next frame
    upload_claim_sent_at: list[float] = field(default_factory=list)
    first_claim_ms: list[float] = field(default_factory=list)  # each node's first: all at once at "go"
    first_claim_at: list[float] = field(default_factory=list)  # when each was answered
    empty_claim_ms: list[float] = field(default_factory=list)  # 204: nothing to do
    empty_claim_at: list[float] = field(default_factory=list)
    heartbeat_ms: list[float] = field(default_factory=list)
    heartbeat_at: list[float] = field(default_factory=list)  # monotonic time of each answer
    upload_ms: list[float] = field(default_factory=list)
    uploaded_at: list[float] = field(default_factory=list)
    render_s: list[float] = field(default_factory=list)
    loop_lag_ms: list[float] = field(default_factory=list)  # how late the event loop woke a sleeper
    errors: dict[str, int] = field(default_factory=dict)

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


@dataclass
class SimConfig:
    url: str
    nodes: int
    name_prefix: str
    time_scale: float
    heartbeat_interval_s: float
    idle_poll_s: float
    seed: int


class SimNode:
    def __init__(self, config: SimConfig, index: int, http: aiohttp.ClientSession, out: Measurements) -> None:
        self.config = config
        self.index = index
        self.http = http
        self.out = out
        self.node_id = ""
        self.token: str | None = None
        self.active: dict[str, Any] | None = None
        self.active_reported_at = 0.0  # its lease began or was last renewed
        self.heard_at = 0.0  # the last beat or claim the backend answered
        self.claimed_before = False
        self.retry_after_s = 0.0  # the backend's hint from the last empty claim
        self.stop = asyncio.Event()

    async def register(self) -> None:
        wallet = bench_wallet(f"{self.config.name_prefix}-node-{self.index}")
        self.token = await login_async(self.http, wallet)
        body = {
            "name": f"{self.config.name_prefix}-{self.index}",
            "cpu_cores": 8,
            "memory_bytes": 32 * 1024**3,
            "blender_version": "4.5.15 LTS",
            "gpus": [],
            "payout_address": wallet.address,
        }
        async with self.http.post(
            protocol.nodes_path(), json=body, headers=node_headers(self.token)
        ) as response:
            if response.status != 201:
                raise RuntimeError(f"register: HTTP {response.status}: {(await response.text())[:300]}")
            self.node_id = (await response.json())["id"]
        self.heard_at = time.monotonic()  # as the node: registering counts as being heard

    async def heartbeat(self) -> None:
        active = self.active
        slots = []
        if active is not None:
            slots = [
                {
                    "attempt_id": active["attempt_id"],
                    "lease_token": active["lease_token"],
                    "progress": 0.5,
                    "detail": "Sample 8/16",
                }
            ]
        started = time.monotonic()
        try:
            async with self.http.post(
                protocol.node_heartbeat_path(self.node_id),
                json={"slots": slots},
                headers=node_headers(self.token),
            ) as response:
                await response.read()
                if response.status != 200:
                    self.out.error(f"heartbeat HTTP {response.status}")
                    return
        except (aiohttp.ClientError, TimeoutError) as error:
            self.out.error(f"heartbeat {type(error).__name__}")
            return
        self.heard_at = started
        if active is not None:
            self.active_reported_at = started
        done = time.monotonic()
        self.out.heartbeat_ms.append((done - started) * 1000)
        self.out.heartbeat_at.append(done)

    def heartbeat_due(self) -> bool:
        """As node_runner's Heartbeat.due: silent for an interval, or a lease unrenewed as long."""
        now, interval = time.monotonic(), self.config.heartbeat_interval_s
        if now - self.heard_at >= interval:
            return True
        return self.active is not None and now - self.active_reported_at >= interval

    async def heartbeat_loop(self) -> None:
        interval = self.config.heartbeat_interval_s
        tick_s = min(interval, max(0.5 * self.config.time_scale, interval / 5))
        await asyncio.sleep(random.uniform(0, tick_s))  # spread the ticks
        while not self.stop.is_set():
            if self.heartbeat_due():
                await self.heartbeat()
            try:
                await asyncio.wait_for(self.stop.wait(), tick_s)
            except TimeoutError:
                pass

    async def claim(self) -> dict[str, Any] | None:
        started = time.monotonic()
        async with self.http.post(
            protocol.node_claim_path(self.node_id), json=STARTS_AT_ONCE, headers=node_headers(self.token)
        ) as response:
            body = await response.read()
            elapsed_ms = (time.monotonic() - started) * 1000
            self.heard_at = time.monotonic()
            if response.status == 204:
                self.out.empty_claim_ms.append(elapsed_ms)
                self.out.empty_claim_at.append(time.monotonic())
                self.retry_after_s = float(response.headers.get("Retry-After", 0)) * self.config.time_scale
                return None
            if response.status != 200:
                self.out.error(f"claim HTTP {response.status}")
                return None
            if self.claimed_before:
                self.out.claim_ms.append(elapsed_ms)
                self.out.claim_sent_at.append(started)
            else:
                self.out.first_claim_ms.append(elapsed_ms)
                self.out.first_claim_at.append(time.monotonic())
            self.claimed_before = True
            return json.loads(body)

    async def upload(self, assignment: dict[str, Any]) -> dict[str, Any] | None:
        """PUT the output under the lease, claiming the next frame (returned, or None);
        retried while the backend does not answer or answers 5xx. A repeated try is answered
        as the first was (a 409 after a try that got no answer: that try was stored)."""
        started = time.monotonic()
        path = protocol.attempt_output_path(assignment["attempt_id"])
        headers = lease_headers(self.token, assignment["lease_token"])
        data = tiny_png(assignment["attempt_id"])
        wait_s, unanswered, answer = 0.5, False, {}
        while True:
            try:
                async with self.http.put(
                    path, data=data, headers=headers, params={"claim_next": "true", "starts_at_once": "true"}
                ) as response:
                    body = await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as error:
                self.out.error(f"upload {type(error).__name__}")
                status, unanswered = 0, True
            if status == 202:
                answer = json.loads(body)
                break
            if status == 409 and unanswered:
                break
            if 0 < status < 500 or time.monotonic() - started > UPLOAD_RETRY_WINDOW_S:
                self.out.error(f"upload HTTP {status}")
                return None
            await asyncio.sleep(wait_s * random.uniform(0.5, 1.5))
            wait_s = min(wait_s * 2, UPLOAD_RETRY_MAX_WAIT_S)
        done = time.monotonic()
        self.out.upload_ms.append((done - started) * 1000)
        self.out.uploaded_at.append(done)
        following = answer.get("next")
        if following is not None:
            self.heard_at = done
            self.out.upload_claim_ms.append((done - started) * 1000)  # the next frame came with it
            self.out.upload_claim_sent_at.append(started)
        return following

    async def work(self) -> None:
        handed: dict[str, Any] | None = None  # the next frame, from the last upload's answer
        while not self.stop.is_set():
            if handed is not None:
                assignment = handed
            else:
                unanswered = False
                try:
                    assignment = await self.claim()
                except (aiohttp.ClientError, TimeoutError) as error:
                    self.out.error(f"claim {type(error).__name__}")
                    assignment, unanswered = None, True
                if assignment is None:
                    # As the node: its own idle interval, or the backend's longer one, spread;
                    # a backend that did not answer is asked again after 1-2 s.
                    wait_s = self.config.idle_poll_s
                    if unanswered:
                        unreachable_s = UNREACHABLE_RETRY_S * self.config.time_scale
                        wait_s = max(wait_s, unreachable_s) * random.uniform(1, 2)
                    elif self.retry_after_s > wait_s:
                        wait_s = self.retry_after_s * random.uniform(0.8, 1.2)
                    self.retry_after_s = 0.0
                    try:
                        await asyncio.wait_for(self.stop.wait(), wait_s)
                    except TimeoutError:
                        pass
                    continue
            self.active = assignment
            self.active_reported_at = time.monotonic()
            render_s = render_time_s(assignment["frame_number"], self.config.time_scale, self.config.seed)
            self.out.render_s.append(render_s)
            await asyncio.sleep(render_s)
            handed = await self.upload(assignment)
            self.active = None
            if handed is None:  # as the node: after an upload that found no next frame, idle first
                try:
                    await asyncio.wait_for(self.stop.wait(), self.config.idle_poll_s)
                except TimeoutError:
                    pass


async def measure_loop_lag(out: Measurements, stop: asyncio.Event) -> None:
    """Record how late the event loop wakes a short sleep: the part of every latency this
    process measures that is its own queueing for the CPU, not the backend's answer."""
    while not stop.is_set():
        started = time.monotonic()
        await asyncio.sleep(LOOP_LAG_PROBE_S)
        out.loop_lag_ms.append(max(0.0, time.monotonic() - started - LOOP_LAG_PROBE_S) * 1000)


async def _read_line() -> str:
    return (await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)).strip()


async def simulate(config: SimConfig, connections: int) -> Measurements:
    out = Measurements()
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(config.url, connector=connector, timeout=timeout) as http:
        nodes = [SimNode(config, index, http, out) for index in range(config.nodes)]
        gate = asyncio.Semaphore(REGISTER_CONCURRENCY)

        async def register(node: SimNode) -> None:
            async with gate:
                await node.register()

        await asyncio.gather(*(register(node) for node in nodes))
        print("registered", flush=True)
        if await _read_line() != "go":
            return out
        tasks = [asyncio.create_task(node.work()) for node in nodes]
        tasks += [asyncio.create_task(node.heartbeat_loop()) for node in nodes]
        stopping = asyncio.Event()
        tasks.append(asyncio.create_task(measure_loop_lag(out, stopping)))
        await _read_line()  # "stop", or end of input
        stopping.set()
        for node in nodes:
            node.stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--nodes", type=int, required=True)
    parser.add_argument("--name-prefix", default="sim")
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--heartbeat-interval-s", type=float, default=15.0)
    parser.add_argument("--idle-poll-s", type=float, default=protocol.IDLE_POLL_INTERVAL_S)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--result", required=True)
    args = parser.parse_args(argv)
    config = SimConfig(
        url=args.url,
        nodes=args.nodes,
        name_prefix=args.name_prefix,
        time_scale=args.time_scale,
        heartbeat_interval_s=args.heartbeat_interval_s,
        idle_poll_s=args.idle_poll_s,
        seed=args.seed,
    )
    out = asyncio.run(simulate(config, args.connections))
    with open(args.result, "w", encoding="utf-8") as handle:
        json.dump(out.__dict__, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
