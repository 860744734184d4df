/* RonRender dashboard: helpers every page uses. Plain browser JavaScript, no build step.
 * Amounts are wei as decimal strings; they become RON text with BigInt, never floats. */
"use strict";

const RR = (() => {
  const body = document.body;
  const API = body ? body.dataset.api : "/api/v1";
  const POLL_MS = body ? Number(body.dataset.pollMs) || 1500 : 1500;
  const WEI_PER_RON = 10n ** 18n;
  const TERMINAL_JOB_STATES = new Set(["COMPLETED", "CANCELLED"]);

  /** "1234500000000000000" -> "1.2345 RON": exact, trailing zeros dropped, thousands grouped. */
  function formatRon(wei, unit = " RON") {
    if (wei === null || wei === undefined || wei === "") return "–";
    let value = BigInt(String(wei));
    const negative = value < 0n;
    if (negative) value = -value;
    const whole = (value / WEI_PER_RON).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    const fraction = (value % WEI_PER_RON).toString().padStart(18, "0").replace(/0+$/, "");
    return (negative ? "−" : "") + whole + (fraction ? "." + fraction : "") + unit;
  }

  /** The error text of an API answer: {"message", "reason", "detail"}, or the status line. */
  async function errorText(response) {
    try {
      const data = await response.json();
      const detail = data.detail && data.detail.json ? " " + JSON.stringify(data.detail.json) : "";
      return (data.message || response.statusText) + detail;
    } catch (_) {
      return `${response.status} ${response.statusText}`;
    }
  }

  class ApiError extends Error {
    constructor(message, status) {
      super(message);
      this.status = status;
    }
  }

  /** Call the JSON API with this tab's bearer token; resolves to the parsed body, rejects
   * with an ApiError. A 401 signs the tab out and shows the sign-in prompt. */
  async function api(path, { method = "GET", json, headers = {}, raw = false } = {}) {
    const init = { method, headers: { Accept: "application/json", ...authHeaders(), ...headers } };
    if (json !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(json);
    }
    const response = await fetch(API + path, init);
    if (!response.ok) throw await refusal(response);
    if (raw) return response.text();
    return response.status === 204 ? null : response.json();
  }

  /** The ApiError of a failed answer; a 401 also signs the tab out. */
  async function refusal(response) {
    const error = new ApiError(await errorText(response), response.status);
    if (response.status === 401) signedOut(`Sign in again: ${error.message}`);
    return error;
  }

  /** Fetch an API file (an image, a zip) with the bearer token. */
  async function fetchBlob(path) {
    const response = await fetch(API + path, { headers: authHeaders() });
    if (!response.ok) throw await refusal(response);
    return { blob: await response.blob(), filename: attachmentName(response) };
  }
  function attachmentName(response) {
    const disposition = response.headers.get("Content-Disposition") || "";
    const match = /filename="?([^";]+)"?/i.exec(disposition);
    return match ? match[1] : "";
  }

  /** An object URL of an API image: an <img> cannot send the bearer token itself. */
  async function objectUrl(path) {
    return URL.createObjectURL((await fetchBlob(path)).blob);
  }

  /** Save an API file as a download link would: fetched with the token, saved by its name. */
  async function download(path, fallbackName) {
    const { blob, filename } = await fetchBlob(path);
    const url = URL.createObjectURL(blob);
    const link = el("a", { href: url, download: filename || fallbackName, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  }

  /** Make a download link (<a href="/api/…" download>) send the token when clicked. */
  function downloadOnClick(link, path, fallbackName) {
    link.addEventListener("click", async (event) => {
      event.preventDefault();
      try {
        await download(path, fallbackName);
      } catch (error) {
        notice(`Not downloaded: ${error.message}`, "error");
      }
    });
  }

  /** Run ``task`` now and again ``interval()`` ms after each run ends; never overlaps.
   * A 401 ends it (the sign-in prompt shows; signing in reloads the page). */
  function poll(task, interval = () => POLL_MS) {
    let timer = null;
    let stopped = false;
    async function tick() {
      try {
        await task();
      } catch (error) {
        if (error.status === 401) return;
        notice(error.message, "error");
      }
      if (!stopped) timer = setTimeout(tick, interval());
    }
    tick();
    return {
      stop() {
        stopped = true;
        clearTimeout(timer);
      },
      now() {
        clearTimeout(timer);
        tick();
      },
    };
  }

  let noticeTimer = null;
  function notice(message, kind = "info") {
    const box = document.getElementById("notice");
    if (!box) return;
    box.textContent = message;
    box.className = `notice ${kind}`;
    box.hidden = !message;
    clearTimeout(noticeTimer);
    if (message && kind !== "error") noticeTimer = setTimeout(() => (box.hidden = true), 6000);
  }
  function clearNotice() {
    notice("");
  }

  /** A new element: el("td", {class: "num", title: "…"}, "text", childNode, …). */
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key === "style") Object.assign(node.style, value); // CSSOM: allowed by the CSP
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function badge(state) {
    return el("span", { class: `badge state-${String(state).toLowerCase()}` }, humanState(state));
  }
  function setBadge(node, state) {
    node.className = `badge state-${String(state).toLowerCase()}`;
    node.textContent = humanState(state);
    node.hidden = false;
  }
  function humanState(state) {
    return String(state || "").replaceAll("_", " ").toLowerCase();
  }

  function shortId(id, length = 8) {
    return id ? String(id).slice(0, length) : "–";
  }
  function shortHash(hash) {
    return hash && hash.length > 18 ? `${hash.slice(0, 10)}…${hash.slice(-6)}` : hash || "";
  }

  function timeAgo(iso) {
    if (!iso) return "–";
    const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    if (seconds < 60) return `${seconds} s ago`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
    if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
    return new Date(iso).toLocaleDateString();
  }
  function dateTime(iso) {
    return iso ? new Date(iso).toLocaleString() : "–";
  }
  function bytes(count) {
    if (!count) return "0 B";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let value = Number(count);
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
  }

  /** A table cell with a job's verified frames as a bar and a count. */
  function jobProgressCell(job) {
    const verified = job.frame_counts.VERIFIED || 0;
    const percent = job.frames_total ? Math.floor((verified * 100) / job.frames_total) : 0;
    return el(
      "td",
      {},
      el(
        "div",
        { class: "progress-cell" },
        el("div", { class: "progress small" }, el("div", { class: "progress-bar", style: { width: `${percent}%` } })),
        el("span", { class: "muted small" }, `${verified}/${job.frames_total}`),
      ),
    );
  }

  /** The fact list of a <dl>: [[term, value, {wei, id}], …]. Values may be nodes. */
  function facts(dl, rows) {
    dl.replaceChildren(
      ...rows.flatMap(([term, value, extra = {}]) => [
        el("dt", {}, term),
        el("dd", { id: extra.id, dataset: extra.wei !== undefined ? { wei: extra.wei } : undefined }, value),
      ]),
    );
  }

  // --- The artist's wallet: an injected EIP-1193 provider (window.ethereum), if any. ---
  function hasWallet() {
    return typeof window.ethereum !== "undefined" && window.ethereum !== null;
  }
  async function walletAddress() {
    const accounts = await window.ethereum.request({ method: "eth_requestAccounts" });
    if (!accounts || !accounts.length) throw new Error("the wallet shared no account");
    return accounts[0];
  }

  /** Sign the job's EIP-712 acceptance with the injected wallet and accept the job.
   * The typed data goes to the wallet as the very text the API sent: parsing it would
   * round its uint256 amount through a float. */
  async function acceptWithWallet(jobId) {
    const address = await walletAddress();
    const query = `?artist_address=${encodeURIComponent(address)}`;
    const typedData = await api(`/jobs/${jobId}/acceptance${query}`, { raw: true });
    const signature = await window.ethereum.request({
      method: "eth_signTypedData_v4",
      params: [address, typedData],
    });
    return api(`/jobs/${jobId}/accept`, { method: "POST", json: { artist_address: address, signature } });
  }

  // --- Sign-in: one bearer token per tab (sessionStorage), sent with every API call. ---
  const SESSION_KEY = "ronrender.session";

  /** {token, address, is_admin, token_kind} of this tab, or null when signed out. */
  function session() {
    try {
      return JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
    } catch (_) {
      return null;
    }
  }
  function signedIn() {
    return Boolean(session());
  }
  function isAdmin() {
    const current = session();
    return Boolean(current && current.is_admin);
  }
  function authHeaders() {
    const current = session();
    return current ? { Authorization: `Bearer ${current.token}` } : {};
  }

  /** Keep ``token`` for this tab once the API says whose it is, then load the page afresh. */
  async function adoptToken(token) {
    sessionStorage.setItem(SESSION_KEY, JSON.stringify({ token }));
    try {
      const me = await api("/auth/me");
      sessionStorage.setItem(SESSION_KEY, JSON.stringify({ token, ...me }));
    } catch (error) {
      sessionStorage.removeItem(SESSION_KEY);
      throw error;
    }
    location.reload();
  }

  /** Sign-In with Ethereum: the wallet signs the backend's one-time challenge (EIP-191). */
  async function signInWithWallet() {
    const address = await walletAddress();
    const challenge = await api("/auth/challenge", { method: "POST", json: { address } });
    const signature = await window.ethereum.request({
      method: "personal_sign",
      params: [challenge.message, address],
    });
    const issued = await api("/auth/login", { method: "POST", json: { message: challenge.message, signature } });
    await adoptToken(issued.token);
  }

  function signOut() {
    sessionStorage.removeItem(SESSION_KEY);
    location.reload();
  }

  /** Forget the token and show the sign-in prompt instead of the page. */
  function signedOut(reason) {
    sessionStorage.removeItem(SESSION_KEY);
    showSignIn(reason);
  }

  function showSignIn(reason) {
    const prompt = document.getElementById("sign-in");
    if (!prompt) return;
    if (reason) document.getElementById("sign-in-reason").textContent = reason;
    prompt.hidden = false;
    document.getElementById("page-content").hidden = true;
    document.getElementById("account").hidden = true;
    document.getElementById("connect-wallet").hidden = !hasWallet();
    document.getElementById("no-wallet").hidden = hasWallet();
  }

  /** "0x1234…abcd" for a wallet; the bootstrap admin token has no wallet behind it. */
  function accountName(current) {
    return /^0x[0-9a-fA-F]{40}$/.test(current.address) ? shortHash(current.address) : `${current.address} (token)`;
  }

  function showAccount() {
    const current = session();
    if (!current) {
      showSignIn();
      return;
    }
    const name = document.getElementById("account-address");
    name.textContent = accountName(current);
    name.title = current.address;
    document.getElementById("account").hidden = false;
  }

  async function signingIn(button, attempt) {
    button.disabled = true;
    clearNotice();
    try {
      await attempt();
    } catch (error) {
      notice(`Not signed in: ${error.message}`, "error");
      button.disabled = false;
    }
  }

  /** The sign-in prompt and the account in the top bar, on every dashboard page. */
  function wireSignIn() {
    if (!document.getElementById("sign-in")) return; // a bare page (the tests' formatRon check)
    const connect = document.getElementById("connect-wallet");
    connect.addEventListener("click", () => signingIn(connect, signInWithWallet));
    const form = document.getElementById("token-sign-in");
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const pasted = document.getElementById("api-token").value.trim();
      signingIn(form.querySelector("button"), () => adoptToken(pasted));
    });
    document.getElementById("sign-out").addEventListener("click", signOut);
    showAccount();
  }

  wireSignIn();

  return {
    API, POLL_MS, TERMINAL_JOB_STATES, ApiError,
    formatRon, api, poll, notice, clearNotice, el, badge, setBadge, humanState, shortId, shortHash,
    timeAgo, dateTime, bytes, facts, hasWallet, walletAddress, acceptWithWallet,
    jobProgressCell, session, signedIn, isAdmin, authHeaders, signedOut, objectUrl, download, downloadOnClick,
  };
})();
