"""The dashboard in a real browser against a real farm: sign in with a browser wallet,
upload and accept a job, watch its frames fill in live, check the money and the zip;
API tokens made and revoked on the page; what a visitor, another artist, a node's wallet
and an admin each see; the admin's suspend, reinstate and requeue; every page fits a phone."""

from __future__ import annotations

import io
import json
import os
import secrets
import signal
import sqlite3
import time
import zipfile
from pathlib import Path

import pytest
import requests
from local_farm import LOCAL_KEYSTORE_PASSWORD

from artist_cli.wallet import Wallet
from backend.defaults import TOKEN_REVOCATION_CHECK_S
from tests.conftest import make_scene
from tests.dashboard.conftest import LAPTOP, PHONE

pytestmark = pytest.mark.dashboard

STATIC = Path(__file__).resolve().parents[2] / "backend" / "dashboard" / "static"
FRAMES = 4
RENDER_TIMEOUT_MS = 120_000

# A stand-in for an injected wallet (window.ethereum): it hands the sign-in message and
# the typed data, as the page passed them, to the test, which signs with a keystore's key.
FAKE_WALLET = """
window.ethereum = {
  async request({ method, params }) {
    if (method === "eth_requestAccounts" || method === "eth_accounts") return [%(address)s];
    if (method === "personal_sign") return window.ronrenderTestSignMessage(params[0], params[1]);
    if (method === "eth_signTypedData_v4") {
      if (typeof params[1] !== "string") throw new Error("typed data must be passed as JSON text");
      return window.ronrenderTestSign(params[0], params[1]);
    }
    throw new Error("unsupported method " + method);
  },
};
"""


def ron_text(wei: str) -> str:
    """What the dashboard shows for an amount: exact RON, thousands grouped, zeros trimmed."""
    whole, fraction = divmod(int(wei), 10**18)
    decimals = f"{fraction:018d}".rstrip("0")
    return f"{whole:,}" + (f".{decimals}" if decimals else "") + " RON"


def api(farm, path: str) -> dict:
    return farm.admin_get(f"/api/v1{path}")


def give_wallet(page, wallet: Wallet) -> list[str]:
    """Inject a browser wallet holding ``wallet``'s key; returns the typed data it signs."""
    signed: list[str] = []

    def sign_typed_data(address: str, typed_data: str) -> str:
        assert address.lower() == wallet.address.lower()
        signed.append(typed_data)
        return wallet.sign_typed_data(json.loads(typed_data))

    def sign_message(message: str, address: str) -> str:
        assert address.lower() == wallet.address.lower()
        assert "wants you to sign in with your Ethereum account" in message
        return wallet.sign_message(message)

    page.expose_function("ronrenderTestSign", sign_typed_data)
    page.expose_function("ronrenderTestSignMessage", sign_message)
    page.add_init_script(FAKE_WALLET % {"address": json.dumps(wallet.address)})
    return signed


def sign_in_with_wallet(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("#sign-in:not([hidden])")
    page.click("#connect-wallet")
    page.wait_for_selector("#account:not([hidden])")
    assert page.locator("#sign-in").is_hidden()


def sign_in_with_token(page, url: str, token: str) -> None:
    page.goto(url)
    page.fill("#api-token", token)
    page.click("#token-sign-in button")
    page.wait_for_selector("#account:not([hidden])")


def whoami(farm, token: str) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"}
    return requests.get(f"{farm.url}/api/v1/auth/me", headers=headers, timeout=30)


def whoami_until_refused(farm, token: str) -> requests.Response:
    """A revoked token is refused at once by the process that revoked it and within a
    second by the others (each asks Redis that often whether a token was revoked)."""
    deadline = time.monotonic() + TOKEN_REVOCATION_CHECK_S + 5
    while True:
        answer = whoami(farm, token)
        if answer.status_code != 200 or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


def node_wallet(farm, node: dict) -> Wallet:
    """The keystore the local farm's node signed in with (its payout wallet)."""
    for keystore in sorted((farm.data_dir / "nodes").glob("wallet-*.json")):
        wallet = Wallet.open(keystore, LOCAL_KEYSTORE_PASSWORD)
        if wallet.address.lower() == node["payout_address"].lower():
            return wallet
    raise AssertionError(f"no keystore for node {node['name']}")


def fail_frame(farm, job_id: str, number: int) -> None:
    """Make one frame FAILED, as three failed attempts would (the farm's SQLite database)."""
    with sqlite3.connect(farm.data_dir / "ronrender.db", timeout=30) as database:
        database.execute(
            "UPDATE frames SET state = 'FAILED', failures = 3"
            " WHERE job_id = ? AND number = ? AND state = 'PENDING'",
            (job_id, number),
        )


ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "dashboard"


def submit_in_browser(page, scene: Path, drop_first_chunk: bool = False) -> str:
    """Upload a scene on the New job page and accept the estimate; returns the job id.
    With ``drop_first_chunk`` the connection breaks during the first chunk: the page
    must ask where to resume and finish the upload."""
    chunks: list[str] = []

    def break_once(route) -> None:
        chunks.append(route.request.url)
        if len(chunks) == 1:
            route.abort("connectionreset")
        else:
            route.continue_()

    if drop_first_chunk:
        page.route("**/api/v1/scenes/uploads/*?offset=*", break_once)
    page.click("nav >> text=New job")
    page.set_input_files("#scene-file", str(scene))
    page.click("#upload-button")
    page.wait_for_selector("#estimate-card:not([hidden])", timeout=60_000)
    if drop_first_chunk:
        page.unroute("**/api/v1/scenes/uploads/*?offset=*")
        assert len(chunks) >= 2 and chunks[0] == chunks[1]  # the broken chunk was sent again
    return page.get_attribute("#estimate-card", "data-job-id")


def assert_fits(page, name: str) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the {name} page overflows a phone's width by {overflow} px"


def test_ron_amounts_are_exact_in_the_browser(page):
    """formatRon works on BigInt: amounts far past 2**53 wei keep every digit."""
    page.set_content("<!doctype html><html><body></body></html>")
    page.add_script_tag(path=str(STATIC / "common.js"))
    amounts = [
        "0",
        "1",
        "1000000000000",
        "1500000000000000000",
        str(123_456_789 * 10**18 + 1),
        str(2**256 - 1),
    ]
    shown = page.evaluate("(amounts) => amounts.map((wei) => RR.formatRon(wei))", amounts)
    assert shown == [ron_text(wei) for wei in amounts]
    assert shown[4] == "123,456,789.000000000000000001 RON"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_dashboard_on_a_live_farm(start_farm, open_page, tmp_path, monkeypatch):
    scene = make_scene(tmp_path / "dash.blend", "--frames", str(FRAMES), "--width", "64", "--height", "36",
                       "--samples", "4")  # fmt: skip
    admin_wallet = Wallet(secrets.token_bytes(32))
    monkeypatch.setenv("RONRENDER_ADMIN_ADDRESSES", admin_wallet.address)  # the farm passes it on
    # Nodes heartbeat every second; one silent for 8 s goes OFFLINE (the last check kills one).
    farm = start_farm(nodes=2, offline_after_s=8.0, sweep_interval_s=1.0)
    wallet = Wallet.open(farm.artist_keystore, LOCAL_KEYSTORE_PASSWORD)
    shots = ARTIFACTS  # git-ignored; kept after the run for a look at every page
    artist = open_page()
    signed = give_wallet(artist, wallet)

    # Sign in with the browser wallet, upload, see the estimate, accept it with the wallet.
    artist.goto(f"{farm.url}/")
    assert artist.url.endswith("/dashboard/")
    artist.screenshot(path=str(shots / "sign-in-laptop.png"), full_page=True)
    sign_in_with_wallet(artist, artist.url)
    assert artist.get_attribute("#account-address", "title") == wallet.address
    job_id = submit_in_browser(artist, scene, drop_first_chunk=True)
    job = api(farm, f"/jobs/{job_id}")
    assert job["state"] == "AWAITING_ACCEPTANCE" and job["frames_total"] == FRAMES
    assert artist.get_attribute("#estimate-total", "data-wei") == job["estimate_wei"]
    assert artist.inner_text("#estimate-total") == ron_text(job["estimate_wei"])
    artist.screenshot(path=str(shots / "new-job-laptop.png"), full_page=True)
    artist.click("#accept-button")
    artist.wait_for_url(f"**/dashboard/jobs/{job_id}")
    assert len(signed) == 1

    frames = watch_the_job(farm, artist, job_id, shots)
    node_id = frames[0]["node_id"]
    check_a_visitor_sees_only_the_sign_in(farm, open_page(), job_id)
    check_another_artist_sees_nothing_of_the_job(farm, open_page(), job_id)
    check_api_tokens(farm, artist, open_page(), job_id, wallet.address, shots)
    check_node_pages(farm, artist, open_page(), job_id, frames, shots)
    admin = open_page()
    check_the_admin_page(farm, admin, job_id, node_id, shots)
    check_an_admin_wallet_signs_in(farm, open_page(), admin_wallet)
    check_suspend_requeue_and_reinstate(farm, admin, artist, scene)

    # Every page at a phone's size without sideways scrolling (each with its identity).
    artist.set_viewport_size(PHONE)
    admin.set_viewport_size(PHONE)
    pages = {
        "jobs": (artist, "/dashboard/", f'#jobs-body tr[data-job-id="{job_id}"]'),
        "job": (artist, f"/dashboard/jobs/{job_id}", ".frame img"),
        "new-job": (artist, "/dashboard/new", "#upload-form"),
        "tokens": (artist, "/dashboard/tokens", "#tokens-body tr[data-token-id]"),
        "node": (admin, f"/dashboard/nodes/{node_id}", "#node-body:not([hidden])"),
        "admin": (admin, "/dashboard/admin", "#nodes-body tr[data-node-id]"),  # the token stays in the tab
    }
    for name, (tab, path, ready) in pages.items():
        tab.goto(farm.url + path)
        tab.wait_for_selector(ready)
        tab.wait_for_timeout(300)
        tab.screenshot(path=str(shots / f"{name}-phone.png"), full_page=True)
        assert_fits(tab, name)
    assert artist.viewport_size == PHONE and LAPTOP["width"] > PHONE["width"]

    check_a_node_going_offline(farm, admin, node_id)


def check_a_node_going_offline(farm, admin, node_id: str) -> None:
    """The node page follows a node that dies: ONLINE, then OFFLINE once it stops heartbeating."""
    name = api(farm, f"/nodes/{node_id}")["name"]
    admin.goto(f"{farm.url}/dashboard/nodes/{node_id}")
    admin.wait_for_selector("#node-state.state-online")
    os.killpg(farm.processes[name].pid, signal.SIGKILL)  # no goodbye: only the silence tells
    admin.wait_for_selector("#node-state.state-offline", timeout=60_000)
    assert admin.inner_text("#node-state").lower() == "offline"  # CSS capitalises the badge
    assert api(farm, f"/nodes/{node_id}")["state"] == "OFFLINE"


def watch_the_job(farm, page, job_id: str, shots: Path) -> list[dict]:
    """The frame grid fills in live, the money matches the chain, the zip holds every frame."""
    page.evaluate("window.notReloaded = true")
    page.wait_for_selector(f"#frame-grid .frame >> nth={FRAMES - 1}")
    first_seen = page.locator('.frame[data-state="VERIFIED"]').count()
    assert first_seen < FRAMES, "the frames were verified before the page could show them"
    page.wait_for_function(
        "(count) => document.querySelectorAll('.frame[data-state=\"VERIFIED\"]').length === count",
        arg=FRAMES,
        timeout=RENDER_TIMEOUT_MS,
    )
    assert page.evaluate("window.notReloaded === true")
    page.wait_for_function(
        "(count) => [...document.querySelectorAll('.frame img')]"
        ".filter((img) => img.complete && img.naturalWidth > 0).length === count",
        arg=FRAMES,
    )
    assert all(
        src.startswith("blob:")
        for src in page.eval_on_selector_all(".frame img", "(all) => all.map((i) => i.src)")
    )
    frames = api(farm, f"/jobs/{job_id}/frames")["frames"]
    assert all(frame["state"] == "VERIFIED" for frame in frames)

    # The money shown is the API's, once the job is completed and closed on chain.
    page.wait_for_function(
        "() => document.getElementById('job-root').dataset.state === 'COMPLETED'"
        " && document.getElementById('money-fee').dataset.wei !== '0'",
        timeout=60_000,
    )
    job = api(farm, f"/jobs/{job_id}")
    assert job["state"] == "COMPLETED" and job["money"]["fee_wei"] != "0"
    escrow = api(farm, f"/jobs/{job_id}/escrow")
    shown = {
        "estimate": job["estimate_wei"],
        "locked": job["money"]["lock_wei"],
        "released": job["money"]["release_wei"],
        "fee": job["money"]["fee_wei"],
        "refunded": job["money"]["refund_wei"],
    }
    for name, wei in shown.items():
        assert page.get_attribute(f"#money-{name}", "data-wei") == wei, name
        assert page.inner_text(f"#money-{name}").startswith(ron_text(wei)), name
    assert shown["locked"] == escrow["locked_wei"]
    page.wait_for_function(
        "(count) => document.querySelectorAll('.tx-hash').length === count", arg=len(escrow["tx_hashes"])
    )
    assert page.locator(".tx-hash").all_text_contents() == escrow["tx_hashes"]
    assert page.locator("#cancel-button").is_hidden()

    # The whole job as a zip, and one frame, through the links (fetched with the token).
    with page.expect_download() as download_info:
        page.click("#download-zip")
    archive = zipfile.ZipFile(io.BytesIO(Path(download_info.value.path()).read_bytes()))
    assert sorted(archive.namelist()) == [f"frame_{frame['number']:05d}.png" for frame in frames]
    with page.expect_download() as download_info:
        page.click(f'.frame[data-number="{frames[0]["number"]}"] .thumb a')
    frame_png = Path(download_info.value.path()).read_bytes()
    assert frame_png.startswith(b"\x89PNG")

    page.click("#tx-details summary")
    page.screenshot(path=str(shots / "job-laptop.png"), full_page=True)
    page.goto(f"{page.url.split('/dashboard/')[0]}/dashboard/")
    page.wait_for_selector(f'#jobs-body tr[data-job-id="{job_id}"]')
    page.screenshot(path=str(shots / "jobs-laptop.png"), full_page=True)
    return frames


def check_a_visitor_sees_only_the_sign_in(farm, visitor, job_id: str) -> None:
    """No token: every page shows the sign-in prompt instead of data (and no wallet here)."""
    for path in ["/dashboard/", f"/dashboard/jobs/{job_id}", "/dashboard/admin", "/dashboard/tokens"]:
        visitor.goto(farm.url + path)
        visitor.wait_for_selector("#sign-in:not([hidden])")
        assert visitor.locator("#page-content").is_hidden(), path
        assert visitor.locator("#account").is_hidden(), path
        assert visitor.locator("#no-wallet").is_visible() and visitor.locator("#connect-wallet").is_hidden()
        assert job_id not in visitor.inner_text("body"), path  # hidden content is not rendered text
    assert visitor.locator("#jobs-body tr[data-job-id]").count() == 0
    visitor.fill("#api-token", "rr_not-a-token")
    visitor.click("#token-sign-in button")
    visitor.wait_for_selector("#notice.error")
    assert visitor.locator("#page-content").is_hidden()


def check_another_artist_sees_nothing_of_the_job(farm, other, job_id: str) -> None:
    stranger = Wallet(secrets.token_bytes(32))
    give_wallet(other, stranger)
    sign_in_with_wallet(other, f"{farm.url}/dashboard/")
    other.wait_for_selector("#jobs-body >> text=No jobs yet.")
    assert other.locator("#jobs-body tr[data-job-id]").count() == 0
    other.goto(f"{farm.url}/dashboard/jobs/{job_id}")
    other.wait_for_selector("#notice.error")
    assert f"No job {job_id}" in other.inner_text("#notice")
    assert other.locator(".frame").count() == 0 and other.locator("#job-state").inner_text() == "…"
    other.goto(f"{farm.url}/dashboard/admin")
    other.wait_for_selector("#not-admin:not([hidden])")
    assert other.locator("#admin-root").is_hidden()
    other.click("#sign-out")
    other.wait_for_selector("#sign-in:not([hidden])")
    assert other.locator("#page-content").is_hidden()


def check_api_tokens(farm, artist, elsewhere, job_id: str, address: str, shots: Path) -> None:
    """A token made on the Tokens page is shown once, signs in elsewhere, and dies when revoked."""
    artist.click("nav >> text=Tokens")
    artist.wait_for_selector("#tokens-body >> text=No API tokens yet.")
    artist.fill("#token-name", "Blender add-on")
    artist.click("#create-token")
    artist.wait_for_selector("#new-token:not([hidden])")
    token = artist.inner_text("#new-token-secret").strip()
    assert token.startswith("rr_")
    me = whoami(farm, token)
    assert me.status_code == 200 and me.json()["address"] == address and me.json()["token_kind"] == "API"
    # The secret shows before the list reloads (it must show even if the reload fails): wait for the row.
    artist.wait_for_selector('#tokens-body tr[data-state="ACTIVE"]')
    row = artist.locator('#tokens-body tr[data-state="ACTIVE"]')
    assert row.count() == 1 and "Blender add-on" in row.inner_text()
    assert token not in artist.inner_text("#tokens-body")
    artist.screenshot(path=str(shots / "tokens-laptop.png"), full_page=True)

    sign_in_with_token(elsewhere, f"{farm.url}/dashboard/", token)
    elsewhere.wait_for_selector(f'#jobs-body tr[data-job-id="{job_id}"]')

    artist.once("dialog", lambda dialog: dialog.accept())
    row.locator("button", has_text="Revoke").click()
    artist.wait_for_selector('#tokens-body tr[data-state="REVOKED"]')
    refused = whoami_until_refused(farm, token)
    assert refused.status_code == 401 and set(refused.json()) >= {"message", "reason"}
    elsewhere.reload()  # the revoked token's tab is asked to sign in again
    elsewhere.wait_for_selector("#sign-in:not([hidden])")
    assert elsewhere.locator("#page-content").is_hidden()


def check_node_pages(farm, artist, provider, job_id: str, frames: list[dict], shots: Path) -> None:
    """A node's page is for its own wallet (and admins): the artist is asked to sign in with it."""
    node_id = frames[0]["node_id"]
    artist.goto(f"{farm.url}/dashboard/jobs/{job_id}")
    artist.click(f'.frame[data-number="{frames[0]["number"]}"] .frame-meta a')
    artist.wait_for_url(f"**/dashboard/nodes/{node_id}")
    node = api(farm, f"/nodes/{node_id}")
    artist.wait_for_selector("#notice.error")
    assert "sign in with the node's wallet" in artist.inner_text("#notice")
    assert artist.locator("#node-body").is_hidden()

    give_wallet(provider, node_wallet(farm, node))
    sign_in_with_wallet(provider, f"{farm.url}/dashboard/nodes/{node_id}")
    provider.wait_for_selector("#node-body:not([hidden])")
    assert provider.inner_text("#node-name") == node["name"]
    assert provider.inner_text("#count-verified") == str(node["frames_verified"])
    assert provider.inner_text("#reputation-text") == f"{node['reputation']:.3f}"
    assert "Idle" in provider.inner_text("#node-rendering")  # the job is done: no open lease
    provider.screenshot(path=str(shots / "node-laptop.png"), full_page=True)
    # Without a node id the page lists the wallet's own nodes.
    provider.goto(f"{farm.url}/dashboard/nodes/")
    provider.wait_for_selector(f'#my-nodes li[data-node-id="{node_id}"]')
    assert provider.locator("#my-nodes li[data-node-id]").count() == 1  # one node per local wallet


def check_the_admin_page(farm, admin, job_id: str, node_id: str, shots: Path) -> None:
    """A wrong token sees nothing; the admin token lists every node and job, and a node's earnings."""
    admin.goto(f"{farm.url}/dashboard/admin")
    admin.fill("#api-token", "not-the-token")
    admin.click("#token-sign-in button")
    admin.wait_for_selector("#notice.error")
    assert admin.locator("#admin-root").is_hidden()
    sign_in_with_token(admin, f"{farm.url}/dashboard/admin", farm.admin_token)
    admin.wait_for_selector("#nodes-body tr[data-node-id]")
    names = sorted(admin.locator("#nodes-body tr[data-node-id] td:first-child a").all_inner_texts())
    assert names == ["local-node-1", "local-node-2"]
    admin.wait_for_selector(f'#jobs-body tr[data-job-id="{job_id}"]')
    queues = admin.locator("#queues-body tr[data-queue]").count()
    assert queues == 3  # analysis, verification, escrow, with their depths
    admin.screenshot(path=str(shots / "admin-laptop.png"), full_page=True)

    job = api(farm, f"/jobs/{job_id}")
    frames = api(farm, f"/jobs/{job_id}/frames")["frames"]
    mine = sum(1 for frame in frames if frame["node_id"] == node_id and frame["state"] == "VERIFIED")
    admin.goto(f"{farm.url}/dashboard/nodes/{node_id}")
    admin.wait_for_selector("#node-earned")
    earned = int(admin.get_attribute("#node-earned", "data-wei"))
    pending = int(admin.get_attribute("#node-pending", "data-wei"))
    assert earned + pending == mine * int(job["price_per_frame_wei"])  # every verified frame, released or due


def check_an_admin_wallet_signs_in(farm, page, admin_wallet: Wallet) -> None:
    give_wallet(page, admin_wallet)
    sign_in_with_wallet(page, f"{farm.url}/dashboard/admin")
    page.wait_for_selector("#nodes-body tr[data-node-id]")
    assert page.locator("#not-admin").is_hidden()


def check_suspend_requeue_and_reinstate(farm, admin, artist, scene: Path) -> None:
    """Suspend both nodes (so a new job's frames wait), requeue a FAILED frame, reinstate."""
    admin.goto(f"{farm.url}/dashboard/admin")
    for name in ["local-node-1", "local-node-2"]:
        row = admin.locator("#nodes-body tr[data-node-id]", has_text=name)
        admin.once("dialog", lambda dialog: dialog.accept("flaky GPU"))
        row.locator("button", has_text="Suspend").click()
        admin.wait_for_selector(f'#nodes-body tr[data-state="SUSPENDED"] >> text={name}')
    nodes = api(farm, "/admin/nodes")["nodes"]
    assert all("flaky GPU" in (node["suspended_reason"] or "") for node in nodes)

    artist.goto(f"{farm.url}/dashboard/")
    job_id = submit_in_browser(artist, scene)
    artist.click("#accept-button")
    artist.wait_for_url(f"**/dashboard/jobs/{job_id}")
    artist.wait_for_selector('#job-root[data-state="RENDERING"]', timeout=60_000)
    number = api(farm, f"/jobs/{job_id}/frames")["frames"][0]["number"]
    fail_frame(farm, job_id, number)
    assert api(farm, f"/jobs/{job_id}")["frame_counts"]["FAILED"] == 1

    admin.locator(f'#failed-body tr[data-job-id="{job_id}"][data-number="{number}"] button').click()
    admin.wait_for_selector("#failed-body >> text=No failed frames.")
    frame = next(f for f in api(farm, f"/jobs/{job_id}/frames")["frames"] if f["number"] == number)
    assert (frame["state"], frame["failures"]) == ("PENDING", 0)

    for name in ["local-node-1", "local-node-2"]:
        row = admin.locator("#nodes-body tr[data-node-id]", has_text=name)
        row.locator("button", has_text="Reinstate").click()
        admin.wait_for_selector(f'#nodes-body tr:not([data-state="SUSPENDED"]) >> text={name}')
    assert all(node["suspended_reason"] is None for node in api(farm, "/admin/nodes")["nodes"])
