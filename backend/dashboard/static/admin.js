/* Admin: every node with its state and reputation; reinstate a suspended node.
 * The admin token is pasted once and kept in this tab's sessionStorage. */
"use strict";

(() => {
  const { el, api } = RR;
  const base = document.body.dataset.dashboard;
  const TOKEN_KEY = "ronrender.adminToken";
  const form = document.getElementById("token-form");
  const input = document.getElementById("admin-token");
  const forget = document.getElementById("forget-token");
  const section = document.getElementById("admin-nodes");
  const tbody = document.getElementById("nodes-body");
  let poller = null;

  const token = () => sessionStorage.getItem(TOKEN_KEY) || "";
  const auth = () => ({ Authorization: `Bearer ${token()}` });

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    input.value = "";
    start();
  });
  forget.addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    if (poller) poller.stop();
    section.hidden = true;
    forget.hidden = true;
    form.hidden = false;
  });

  async function reinstate(node, button) {
    button.disabled = true;
    try {
      await api(`/admin/nodes/${node.id}/reinstate`, { method: "POST", headers: auth() });
      RR.notice(`${node.name} is reinstated.`);
      poller.now();
    } catch (error) {
      RR.notice(`Not reinstated: ${error.message}`, "error");
      button.disabled = false;
    }
  }

  function row(node) {
    const misses = node.frames_rejected + node.frames_failed + node.frames_timed_out + node.frames_dropped;
    const state = node.suspended_reason ? "SUSPENDED" : node.state;
    let action = null;
    if (node.suspended_reason) {
      action = el("button", { class: "small", type: "button" }, "Reinstate");
      action.addEventListener("click", () => reinstate(node, action));
    }
    return el(
      "tr",
      { dataset: { nodeId: node.id } },
      el("td", {}, el("a", { href: `${base}nodes/${node.id}` }, node.name), el("div", { class: "muted small id" }, RR.shortId(node.id))),
      el("td", {}, RR.badge(state), node.suspended_reason ? el("div", { class: "small warning-text" }, node.suspended_reason) : null),
      el("td", { class: "num" }, node.reputation.toFixed(3)),
      el("td", { class: "num" }, node.frames_verified),
      el("td", { class: "num" }, misses),
      el("td", { class: "muted", title: RR.dateTime(node.last_heartbeat_at) }, RR.timeAgo(node.last_heartbeat_at)),
      el("td", {}, action),
    );
  }

  async function refresh() {
    try {
      const { nodes } = await api("/admin/nodes", { headers: auth() });
      section.hidden = false;
      form.hidden = true;
      forget.hidden = false;
      document.getElementById("node-count").textContent = `(${nodes.length})`;
      tbody.replaceChildren(
        ...(nodes.length ? nodes.map(row) : [el("tr", {}, el("td", { colspan: 7, class: "muted" }, "No nodes registered."))]),
      );
    } catch (error) {
      if (error.status === 401 || error.status === 403) {
        poller.stop();
        sessionStorage.removeItem(TOKEN_KEY);
        section.hidden = true;
        form.hidden = false;
        forget.hidden = true;
        RR.notice(`Refused: ${error.message}`, "error");
        return;
      }
      throw error;
    }
  }

  function start() {
    if (poller) poller.stop();
    RR.clearNotice();
    poller = RR.poll(refresh);
  }

  if (token()) start();
})();
