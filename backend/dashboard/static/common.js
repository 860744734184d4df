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

  /** Call the JSON API; resolves to the parsed body, rejects with an ApiError. */
  async function api(path, { method = "GET", json, headers = {}, raw = false } = {}) {
    const init = { method, headers: { Accept: "application/json", ...headers } };
    if (json !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(json);
    }
    const response = await fetch(API + path, init);
    if (!response.ok) throw new ApiError(await errorText(response), response.status);
    if (raw) return response.text();
    return response.status === 204 ? null : response.json();
  }

  /** Run ``task`` now and again ``interval()`` ms after each run ends; never overlaps. */
  function poll(task, interval = () => POLL_MS) {
    let timer = null;
    let stopped = false;
    async function tick() {
      try {
        await task();
      } catch (error) {
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
    rememberArtist(address);
    return api(`/jobs/${jobId}/accept`, { method: "POST", json: { artist_address: address, signature } });
  }

  function rememberArtist(address) {
    try {
      localStorage.setItem("ronrender.artist", address);
    } catch (_) {
      /* storage may be off; the address is only a convenience */
    }
  }
  function rememberedArtist() {
    try {
      return localStorage.getItem("ronrender.artist") || "";
    } catch (_) {
      return "";
    }
  }

  return {
    API, POLL_MS, TERMINAL_JOB_STATES, ApiError,
    formatRon, api, poll, notice, clearNotice, el, badge, setBadge, humanState, shortId, shortHash,
    timeAgo, dateTime, bytes, facts, hasWallet, walletAddress, acceptWithWallet, rememberArtist,
    rememberedArtist,
  };
})();
