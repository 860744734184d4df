"""A scripted HTTP server on 127.0.0.1 for the farm client's tests: each route
answers from a list of canned responses (the last one repeats) and every request
is recorded, so retries, headers and streamed bodies can be checked over a real
socket."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Canned:
    status: int
    body: bytes = b""
    content_type: str = "application/json"


def canned_json(status: int, data: Any) -> Canned:
    return Canned(status, json.dumps(data).encode())


def canned_error(status: int, message: str, reason: str, detail: Any = None) -> Canned:
    return canned_json(status, {"message": message, "reason": reason, "detail": detail or {}})


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HttpStub:
    routes: dict[tuple[str, str], list[Canned]] = field(default_factory=dict)
    requests: list[Seen] = field(default_factory=list)
    url: str = ""

    def on(self, method: str, path: str, *responses: Canned) -> None:
        self.routes[(method, path)] = list(responses)

    def seen(self, method: str, path: str) -> list[Seen]:
        return [r for r in self.requests if r.method == method and r.path == path]

    def answer(self, method: str, path: str) -> Canned:
        responses = self.routes.get((method, path))
        if not responses:
            return canned_error(404, f"no route {method} {path}", "NOT_FOUND")
        return responses.pop(0) if len(responses) > 1 else responses[0]


def start_stub() -> tuple[HttpStub, ThreadingHTTPServer]:
    stub = HttpStub()

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            stub.requests.append(Seen(self.command, self.path, dict(self.headers.items()), body))
            canned = stub.answer(self.command, self.path)
            self.send_response(canned.status)
            self.send_header("Content-Type", canned.content_type)
            self.send_header("Content-Length", str(len(canned.body)))
            self.end_headers()
            self.wfile.write(canned.body)

        do_GET = do_POST = do_PUT = _handle

        def log_message(self, *args: Any) -> None:
            pass

    class QuietServer(ThreadingHTTPServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # a client that hangs up mid-request (a stopped upload) is expected here

    server = QuietServer(("127.0.0.1", 0), Handler)
    stub.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    return stub, server
