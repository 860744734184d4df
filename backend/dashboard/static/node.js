/* A node provider's node: state, reputation, counters, earnings and machine, refreshed live.
 * Only the node's own wallet and admins may read it. */
"use strict";

(() => {
  const { el, api, formatRon } = RR;
  const base = document.body.dataset.dashboard;
  const root = document.getElementById("node-root");
  const form = document.getElementById("node-form");
  const input = document.getElementById("node-id");
  let nodeId = root.dataset.nodeId || localStorage.getItem("ronrender.node") || "";
  input.value = nodeId;

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const id = input.value.trim();
    if (id) location.assign(`${base}nodes/${encodeURIComponent(id)}`);
  });

  function slotsText(slots) {
    if (!slots || !slots.length) return "one (the whole machine)";
    return slots.map((slot) => [slot.name, slot.device_type].filter(Boolean).join(" ")).join(", ");
  }

  /** The node's open leases: which frame of which job, and how far the node says it is. */
  function renderRendering(rendering) {
    const box = document.getElementById("node-rendering");
    if (!rendering.length) {
      box.replaceChildren(el("p", { class: "muted small" }, "Idle: no frame right now."));
      return;
    }
    box.replaceChildren(
      ...rendering.map((work) => {
        const percent = Math.round(work.progress * 100);
        return el(
          "div",
          { class: "rendering-row", "data-attempt-id": work.attempt_id },
          el(
            "div",
            { class: "progress-label" },
            el("span", {}, `job ${work.job_id.slice(0, 8)} · frame ${work.frame}`),
            el("span", {}, `${percent} %`),
          ),
          el("div", { class: "progress" }, el("div", { class: "progress-bar", style: { width: `${percent}%` } })),
        );
      }),
    );
  }

  /** Without a node id: the signed-in wallet's nodes, as links. */
  async function listMyNodes() {
    const { nodes } = await api("/nodes");
    const list = document.getElementById("my-nodes");
    list.hidden = false;
    list.replaceChildren(
      ...(nodes.length
        ? nodes.map((node) =>
            el(
              "li",
              { "data-node-id": node.id },
              el("a", { href: `${base}nodes/${node.id}` }, node.name),
              " ",
              el("span", { class: "muted small" }, node.state.toLowerCase()),
            ),
          )
        : [el("li", { class: "muted" }, "This wallet has registered no node yet.")]),
    );
  }

  function render(node) {
    document.getElementById("node-body").hidden = false;
    document.getElementById("node-name").textContent = node.name;
    renderRendering(node.rendering || []);
    RR.setBadge(document.getElementById("node-state"), node.suspended_reason ? "SUSPENDED" : node.state);
    const percent = Math.round(node.reputation * 100);
    document.getElementById("reputation-text").textContent = node.reputation.toFixed(3);
    const bar = document.getElementById("reputation-bar");
    bar.style.width = `${percent}%`;
    bar.classList.toggle("low", node.reputation < 0.8);
    const suspended = document.getElementById("suspended");
    suspended.hidden = !node.suspended_reason;
    suspended.textContent = node.suspended_reason ? `Suspended: ${node.suspended_reason}. An admin must reinstate it.` : "";
    RR.facts(document.getElementById("node-counters"), [
      ["Frames verified", node.frames_verified, { id: "count-verified" }],
      ["Rejected", node.frames_rejected],
      ["Failed", node.frames_failed],
      ["Timed out", node.frames_timed_out],
      ["Dropped", node.frames_dropped],
      ["Last heard", el("span", { title: RR.dateTime(node.last_heartbeat_at) }, RR.timeAgo(node.last_heartbeat_at))],
    ]);
    const gpus = (node.gpus || []).map((gpu) => `${gpu.name} (${gpu.backend}${gpu.memory_bytes ? ", " + RR.bytes(gpu.memory_bytes) : ""})`);
    RR.facts(document.getElementById("node-hardware"), [
      ["CPU cores", node.cpu_cores],
      ["Memory", RR.bytes(node.memory_bytes)],
      ["GPUs", gpus.length ? gpus.join(", ") : "none"],
      ["Blender", node.blender_version],
      ["Slots", slotsText(node.slots)],
      ["Sandboxed renders", node.sandboxed ? "yes" : "no"],
      ["Payout address", el("code", { class: "wrap" }, node.payout_address || "–")],
      ["Node id", el("code", { class: "wrap" }, node.id)],
    ]);
  }

  /** Released RON per day as bars: the height is exact wei scaled to the best day. */
  function earningsChart(days) {
    const chart = document.getElementById("earnings-chart");
    chart.replaceChildren();
    if (!days.length) return;
    const best = days.reduce((most, day) => (BigInt(day.wei) > most ? BigInt(day.wei) : most), 1n);
    for (const day of days) {
      const percent = Number((BigInt(day.wei) * 100n) / best);
      chart.append(
        el(
          "div",
          { class: "bar", title: `${day.date}: ${formatRon(day.wei)} for ${day.frames} frames` },
          el("span", { class: "fill", style: { height: `${Math.max(percent, 2)}%` } }),
          el("small", {}, day.date.slice(5)),
        ),
      );
    }
  }

  async function renderEarnings() {
    const earned = await api(`/nodes/${encodeURIComponent(nodeId)}/earnings`);
    RR.facts(document.getElementById("node-earnings"), [
      ["Earned (confirmed on chain)", formatRon(earned.released_wei), { wei: earned.released_wei, id: "node-earned" }],
      ["Pending release", formatRon(earned.pending_wei), { wei: earned.pending_wei, id: "node-pending" }],
      ["Frames paid", earned.frames_paid],
    ]);
    earningsChart(earned.by_day);
    document.getElementById("earnings-note").textContent =
      "Each verified frame is paid its job's price, straight to the payout address below.";
  }

  async function refresh() {
    try {
      const node = await api(`/nodes/${encodeURIComponent(nodeId)}`);
      localStorage.setItem("ronrender.node", nodeId);
      render(node);
      if (polls++ % EARNINGS_EVERY_POLLS === 0) await renderEarnings();
    } catch (error) {
      if (error.status !== 404) throw error;
      poller.stop();
      RR.notice(
        `Node ${nodeId} is not visible to ${RR.session().address}: sign out, then sign in with the node's wallet or as an admin.`,
        "error",
      );
    }
  }

  const EARNINGS_EVERY_POLLS = 5; // earnings change only as releases confirm
  let polls = 0;
  const poller = nodeId && RR.signedIn() ? RR.poll(refresh) : null;
  if (!root.dataset.nodeId && RR.signedIn()) listMyNodes(); // no id in the address: the wallet's nodes
})();
