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
      ["Slots", slotsText(node.slots)],
      ["Sandboxed renders", node.sandboxed ? "yes" : "no"],
      ["Payout address", el("code", { class: "wrap" }, node.payout_address || "–")],
      ["Node id", el("code", { class: "wrap" }, node.id)],
    ]);
  }

  /** What the node earned: verified frames × each job's price per frame (paid to its payout
   * address as frames are released). Only an admin can read every job's frames; a provider
   * sees the frame count until the API offers per-node earnings. */
  async function earnedWei() {
    const { jobs } = await api("/jobs?limit=500");
    let total = 0n;
    for (const job of jobs.filter((candidate) => (candidate.frame_counts.VERIFIED || 0) > 0)) {
      const { frames } = await api(`/jobs/${job.id}/frames`);
      const mine = frames.filter((frame) => frame.node_id === nodeId && frame.state === "VERIFIED").length;
      total += BigInt(mine) * BigInt(job.price_per_frame_wei);
    }
    return total.toString();
  }

  async function renderEarnings(node) {
    const note = document.getElementById("earnings-note");
    if (!RR.isAdmin()) {
      note.textContent = `Each verified frame (${node.frames_verified} so far) is paid its job's price, straight to the payout address below.`;
      return;
    }
    const wei = await earnedWei();
    RR.facts(document.getElementById("node-earnings"), [
      ["Verified frames", node.frames_verified],
      ["Earned", formatRon(wei), { wei, id: "node-earned" }],
    ]);
    note.textContent = "Verified frames × each job's price per frame, released to the payout address.";
  }

  async function refresh() {
    try {
      const node = await api(`/nodes/${encodeURIComponent(nodeId)}`);
      localStorage.setItem("ronrender.node", nodeId);
      render(node);
      if (polls++ % EARNINGS_EVERY_POLLS === 0) await renderEarnings(node);
    } catch (error) {
      if (error.status !== 404) throw error;
      poller.stop();
      RR.notice(
        `Node ${nodeId} is not visible to ${RR.session().address}: sign out, then sign in with the node's wallet or as an admin.`,
        "error",
      );
    }
  }

  const EARNINGS_EVERY_POLLS = 10; // earnings read every job's frames: ask less often
  let polls = 0;
  const poller = nodeId && RR.signedIn() ? RR.poll(refresh) : null;
})();
