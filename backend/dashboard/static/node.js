/* A node provider's node: state, reputation, counters and machine, refreshed live. */
"use strict";

(() => {
  const { el, api } = RR;
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

  function render(node) {
    document.getElementById("node-body").hidden = false;
    document.getElementById("node-name").textContent = node.name;
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
      ["Payout address", el("code", { class: "wrap" }, node.payout_address || "–")],
      ["Node id", el("code", { class: "wrap" }, node.id)],
    ]);
  }

  if (nodeId) {
    const poller = RR.poll(async () => {
      try {
        const node = await api(`/nodes/${encodeURIComponent(nodeId)}`);
        localStorage.setItem("ronrender.node", nodeId);
        render(node);
      } catch (error) {
        if (error.status === 404) {
          poller.stop();
          RR.notice(`No node ${nodeId} on this farm.`, "error");
          return;
        }
        throw error;
      }
    });
  }
})();
