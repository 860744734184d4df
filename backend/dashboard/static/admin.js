/* Admin: every node (suspend with a reason, reinstate), every job (cancel), and the FAILED
 * frames of rendering jobs (requeue). Signed in as an admin wallet or with the admin token. */
"use strict";

(() => {
  const { el, api, formatRon } = RR;
  const base = document.body.dataset.dashboard;
  const root = document.getElementById("admin-root");
  const nodesBody = document.getElementById("nodes-body");
  const jobsBody = document.getElementById("jobs-body");
  const failedBody = document.getElementById("failed-body");
  let poller = null;

  /** Run one admin action from a button: disabled meanwhile, the outcome as a notice. */
  async function act(button, action, done) {
    button.disabled = true;
    try {
      await action();
      RR.notice(done);
      poller.now();
    } catch (error) {
      RR.notice(`Refused: ${error.message}`, "error");
      button.disabled = false;
    }
  }

  function suspend(node, button) {
    const reason = window.prompt(`Why suspend ${node.name}? The node provider sees the reason.`);
    if (!reason || !reason.trim()) return;
    act(
      button,
      () => api(`/admin/nodes/${node.id}/suspend`, { method: "POST", json: { reason: reason.trim() } }),
      `${node.name} is suspended: it gets no more work until reinstated.`,
    );
  }

  function reinstate(node, button) {
    act(button, () => api(`/admin/nodes/${node.id}/reinstate`, { method: "POST" }), `${node.name} is reinstated.`);
  }

  function nodeAction(node) {
    const suspended = Boolean(node.suspended_reason);
    const button = el("button", { class: suspended ? "small" : "small danger", type: "button" }, suspended ? "Reinstate" : "Suspend");
    button.addEventListener("click", () => (suspended ? reinstate(node, button) : suspend(node, button)));
    return button;
  }

  function nodeRow(node) {
    const misses = node.frames_rejected + node.frames_failed + node.frames_timed_out + node.frames_dropped;
    const state = node.suspended_reason ? "SUSPENDED" : node.state;
    return el(
      "tr",
      { dataset: { nodeId: node.id, state } },
      el("td", {}, el("a", { href: `${base}nodes/${node.id}` }, node.name), el("div", { class: "muted small id" }, RR.shortId(node.id))),
      el("td", {}, RR.badge(state), node.suspended_reason ? el("div", { class: "small warning-text" }, node.suspended_reason) : null),
      el("td", { class: "num" }, node.reputation.toFixed(3)),
      el("td", { class: "num" }, node.frames_verified),
      el("td", { class: "num" }, misses),
      el("td", { class: "muted", title: RR.dateTime(node.last_heartbeat_at) }, RR.timeAgo(node.last_heartbeat_at)),
      el("td", {}, nodeAction(node)),
    );
  }

  function cancelJob(job, button) {
    if (!window.confirm(`Cancel job ${RR.shortId(job.id)}? Frames not yet paid are refunded to the artist.`)) return;
    act(button, () => api(`/jobs/${job.id}/cancel`, { method: "POST" }), `Job ${RR.shortId(job.id)} is cancelled.`);
  }

  function jobRow(job) {
    let cancel = null;
    if (!RR.TERMINAL_JOB_STATES.has(job.state)) {
      cancel = el("button", { class: "small danger", type: "button" }, "Cancel");
      cancel.addEventListener("click", () => cancelJob(job, cancel));
    }
    return el(
      "tr",
      { dataset: { jobId: job.id } },
      el("td", {}, el("a", { href: `${base}jobs/${job.id}`, class: "id" }, RR.shortId(job.id))),
      el("td", {}, RR.badge(job.state)),
      RR.jobProgressCell(job),
      el("td", {}, el("code", { title: job.artist_address || "" }, RR.shortHash(job.artist_address) || "–")),
      el("td", { class: "num" }, formatRon(job.estimate_wei)),
      el("td", { class: "muted" }, RR.dateTime(job.created_at)),
      el("td", {}, cancel),
    );
  }

  function failedFrameRow(job, frame) {
    const requeue = el("button", { class: "small", type: "button", disabled: job.state !== "RENDERING" }, "Requeue");
    requeue.addEventListener("click", () =>
      act(
        requeue,
        () => api(`/admin/jobs/${job.id}/frames/${frame.number}/requeue`, { method: "POST" }),
        `Frame ${frame.number} of job ${RR.shortId(job.id)} is back in the queue.`,
      ),
    );
    return el(
      "tr",
      { dataset: { jobId: job.id, number: frame.number } },
      el("td", {}, el("a", { href: `${base}jobs/${job.id}`, class: "id" }, RR.shortId(job.id))),
      el("td", { class: "num" }, frame.number),
      el("td", { class: "num" }, frame.failures),
      el("td", { class: "small warning-text" }, frame.last_rejection || ""),
      el("td", {}, requeue),
    );
  }

  /** The FAILED frames of every job that has some. */
  async function failedFrames(jobs) {
    const rows = [];
    for (const job of jobs.filter((candidate) => (candidate.frame_counts.FAILED || 0) > 0)) {
      const { frames } = await api(`/jobs/${job.id}/frames`);
      for (const frame of frames.filter((candidate) => candidate.state === "FAILED")) rows.push(failedFrameRow(job, frame));
    }
    return rows;
  }

  function fill(tbody, countId, rows, columns, empty) {
    document.getElementById(countId).textContent = `(${rows.length})`;
    tbody.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: columns, class: "muted" }, empty))]));
  }

  function queueRow(queue) {
    const counts = [queue.queued, queue.started, queue.scheduled, queue.failed];
    return el("tr", { "data-queue": queue.name }, el("td", {}, queue.name), ...counts.map((count) => el("td", { class: "num" }, count)));
  }

  async function refresh() {
    const [{ nodes }, { jobs }, queues] = await Promise.all([
      api("/admin/nodes"),
      api("/jobs?limit=200"),
      api("/admin/queues"),
    ]);
    root.hidden = false;
    document.getElementById("queues-body").replaceChildren(...queues.queues.map(queueRow));
    document.getElementById("worker-count").textContent = `(${queues.workers} workers)`;
    fill(nodesBody, "node-count", nodes.map(nodeRow), 7, "No nodes registered.");
    fill(jobsBody, "job-count", jobs.map(jobRow), 7, "No jobs yet.");
    fill(failedBody, "failed-count", await failedFrames(jobs), 5, "No failed frames.");
  }

  if (RR.signedIn() && !RR.isAdmin()) document.getElementById("not-admin").hidden = false;
  else if (RR.signedIn()) poller = RR.poll(refresh);
})();
