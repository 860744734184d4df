"""The dashboard: web pages for artists, node providers and admins.

Every page is a server-rendered shell; its script reads and changes the farm only
through the JSON API (``/api/v1/…``), polling for live updates, with the bearer token
of this browser tab: a wallet signs in (Sign-In with Ethereum) or an API token is
pasted, and the token stays in the tab's sessionStorage. Static assets are
hand-written CSS and JavaScript served by the app: no build step, nothing fetched
from elsewhere at run time (the Content-Security-Policy says so to the browser).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, redirect, render_template, url_for

from shared.protocol import API_PREFIX

POLL_INTERVAL_MS = 1500
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)

blueprint = Blueprint(
    "dashboard",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/dashboard/static",
)


@blueprint.after_request
def _security_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


def _page(template: str, page: str, **context: Any) -> str:
    return render_template(
        f"dashboard/{template}",
        page=page,
        api_prefix=API_PREFIX,
        poll_interval_ms=POLL_INTERVAL_MS,
        **context,
    )


@blueprint.get("/")
def home() -> Any:
    return redirect(url_for("dashboard.jobs"))


@blueprint.get("/dashboard/")
def jobs() -> str:
    return _page("jobs.html", "jobs")


@blueprint.get("/dashboard/new")
def new_job() -> str:
    return _page("new_job.html", "new-job")


@blueprint.get("/dashboard/jobs/<job_id>")
def job(job_id: str) -> str:
    return _page("job.html", "job", job_id=job_id)


@blueprint.get("/dashboard/nodes/")
def nodes() -> str:
    return _page("node.html", "node", node_id="")


@blueprint.get("/dashboard/nodes/<node_id>")
def node(node_id: str) -> str:
    return _page("node.html", "node", node_id=node_id)


@blueprint.get("/dashboard/tokens")
def tokens() -> str:
    return _page("tokens.html", "tokens")


@blueprint.get("/dashboard/admin")
def admin() -> str:
    return _page("admin.html", "admin")
