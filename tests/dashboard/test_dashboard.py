"""The dashboard in a real browser against a real farm: upload and accept a job with a
browser wallet, watch its frames fill in live, check the money and the zip; a node's
page; the admin page behind its token; every page fits a phone."""

from __future__ import annotations

import io
import json
import secrets
import zipfile
from pathlib import Path

import pytest
import requests
from local_farm import LOCAL_KEYSTORE_PASSWORD

from artist_cli.wallet import Wallet
from tests.conftest import make_scene
from tests.dashboard.conftest import LAPTOP, PHONE

pytestmark = pytest.mark.dashboard

STATIC = Path(__file__).resolve().parents[2] / "backend" / "dashboard" / "static"
FRAMES = 4
RENDER_TIMEOUT_MS = 120_000

# A stand-in for an injected wallet (window.ethereum): it hands the typed data, as the
# page passed it, to the test, which signs it with the artist's keystore.
FAKE_WALLET = """
window.ethereum = {
  async request({ method, params }) {
    if (method === "eth_requestAccounts" || method === "eth_accounts") return [%(address)s];
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
    response = requests.get(f"{farm.url}/api/v1{path}", timeout=30)
    response.raise_for_status()
    return response.json()


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
def test_artist_admin_and_node_pages_on_a_live_farm(start_farm, page, tmp_path, monkeypatch):
    admin_token = secrets.token_hex(16)
    monkeypatch.setenv("RONRENDER_ADMIN_TOKEN", admin_token)
    scene = make_scene(tmp_path / "dash.blend", "--frames", str(FRAMES), "--width", "64", "--height", "36",
                       "--samples", "4")  # fmt: skip
    farm = start_farm(nodes=2)
    wallet = Wallet.open(farm.artist_keystore, LOCAL_KEYSTORE_PASSWORD)
    signed: list[str] = []

    def sign(address: str, typed_data: str) -> str:
        assert address.lower() == wallet.address.lower()
        signed.append(typed_data)
        return wallet.sign_typed_data(json.loads(typed_data))

    page.expose_function("ronrenderTestSign", sign)
    page.add_init_script(FAKE_WALLET % {"address": json.dumps(wallet.address)})
    shots = tmp_path / "screenshots"

    # Upload from the browser, see the estimate, accept it with the (browser) wallet.
    page.goto(f"{farm.url}/")
    assert page.url.endswith("/dashboard/")
    page.click("nav >> text=New job")
    page.set_input_files("#scene-file", str(scene))
    page.click("#upload-button")
    page.wait_for_selector("#estimate-card:not([hidden])", timeout=60_000)
    job_id = page.get_attribute("#estimate-card", "data-job-id")
    job = api(farm, f"/jobs/{job_id}")
    assert job["state"] == "AWAITING_ACCEPTANCE" and job["frames_total"] == FRAMES
    assert page.get_attribute("#estimate-total", "data-wei") == job["estimate_wei"]
    assert page.inner_text("#estimate-total") == ron_text(job["estimate_wei"])
    page.screenshot(path=str(shots / "new-job-laptop.png"), full_page=True)
    page.click("#accept-button")
    page.wait_for_url(f"**/dashboard/jobs/{job_id}")
    assert len(signed) == 1

    # The frame grid fills in live, without a reload, until every frame is VERIFIED.
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
    frames = api(farm, f"/jobs/{job_id}/frames")["frames"]
    assert all(frame["state"] == "VERIFIED" for frame in frames)

    # The money shown is the API's, once the job is completed and closed on chain.
    def settled() -> dict | None:
        latest = api(farm, f"/jobs/{job_id}")
        return latest if latest["state"] == "COMPLETED" and latest["money"]["fee_wei"] != "0" else None

    page.wait_for_function(
        "() => document.getElementById('job-root').dataset.state === 'COMPLETED'"
        " && document.getElementById('money-fee').dataset.wei !== '0'",
        timeout=60_000,
    )
    job = settled()
    assert job is not None
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

    # The whole job as a zip, through the link.
    with page.expect_download() as download_info:
        page.click("#download-zip")
    archive = zipfile.ZipFile(io.BytesIO(Path(download_info.value.path()).read_bytes()))
    assert sorted(archive.namelist()) == [f"frame_{frame['number']:05d}.png" for frame in frames]

    page.click("#tx-details summary")
    page.screenshot(path=str(shots / "job-laptop.png"), full_page=True)

    # A node provider's page, reached from a frame.
    node_id = frames[0]["node_id"]
    page.click(f'.frame[data-number="{frames[0]["number"]}"] .frame-meta a')
    page.wait_for_url(f"**/dashboard/nodes/{node_id}")
    node = api(farm, f"/nodes/{node_id}")
    page.wait_for_selector("#node-body:not([hidden])")
    assert page.inner_text("#node-name") == node["name"]
    assert page.inner_text("#count-verified") == str(node["frames_verified"])
    assert page.inner_text("#reputation-text") == f"{node['reputation']:.3f}"
    page.screenshot(path=str(shots / "node-laptop.png"), full_page=True)

    # The admin page: a wrong token sees nothing; the right one lists every node.
    page.goto(f"{farm.url}/dashboard/admin")
    page.fill("#admin-token", "not-the-token")
    page.click("#token-form button")
    page.wait_for_selector("#notice.error")
    assert page.locator("#admin-nodes").is_hidden()
    page.fill("#admin-token", admin_token)
    page.click("#token-form button")
    page.wait_for_selector("#nodes-body tr[data-node-id]")
    names = sorted(page.locator("#nodes-body tr[data-node-id] td:first-child a").all_inner_texts())
    assert names == ["local-node-1", "local-node-2"]
    page.screenshot(path=str(shots / "admin-laptop.png"), full_page=True)

    # The job list, and every page at a phone's size without sideways scrolling.
    page.goto(f"{farm.url}/dashboard/?artist={wallet.address}")
    page.wait_for_selector(f'#jobs-body tr[data-job-id="{job_id}"]')
    page.screenshot(path=str(shots / "jobs-laptop.png"), full_page=True)
    page.set_viewport_size(PHONE)
    pages = {
        "jobs": (f"/dashboard/?artist={wallet.address}", f'#jobs-body tr[data-job-id="{job_id}"]'),
        "job": (f"/dashboard/jobs/{job_id}", ".frame img"),
        "new-job": ("/dashboard/new", "#upload-form"),
        "node": (f"/dashboard/nodes/{node_id}", "#node-body:not([hidden])"),
        "admin": ("/dashboard/admin", "#nodes-body tr[data-node-id]"),  # the token stays in the tab
    }
    for name, (path, ready) in pages.items():
        page.goto(farm.url + path)
        page.wait_for_selector(ready)
        page.wait_for_timeout(300)
        page.screenshot(path=str(shots / f"{name}-phone.png"), full_page=True)
        assert_fits(page, name)
    assert page.viewport_size == PHONE and LAPTOP["width"] > PHONE["width"]
