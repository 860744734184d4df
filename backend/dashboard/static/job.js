/* One job, live: state and progress, the frame grid (thumbnails of verified frames),
 * the money and its transactions; accept with the browser wallet, cancel. */
"use strict";

(() => {
  const { el, api, formatRon } = RR;
  const base = document.body.dataset.dashboard;
  const root = document.getElementById("job-root");
  const jobId = root.dataset.jobId;
  const grid = document.getElementById("frame-grid");
  const acceptButton = document.getElementById("accept-button");
  const cancelButton = document.getElementById("cancel-button");
  const cells = new Map(); // frame number -> {cell, ...parts}
  const SETTLED_POLL_MS = 5000; // a finished job changes only while its close settles
  const ESCROW_EVERY_POLLS = 3; // the escrow view reads chain events: ask less often
  let job = null;
  let polls = 0;
  let lastMoneyKey = "";
  let thumbnailEndpoint = true; // until the /thumbnail endpoint answers 404 once

  const framePath = (number, what) => `/jobs/${jobId}/frames/${number}/${what}`;
  const frameUrl = (number, what) => RR.API + framePath(number, what);

  function renderJob() {
    RR.setBadge(document.getElementById("job-state"), job.state);
    document.getElementById("job-summary").textContent =
      `${job.width}×${job.height} ${job.output_format} · ${job.engine} · ${job.samples ?? "–"} samples · ` +
      `frames ${job.frame_start}–${job.frame_end}` + (job.frame_step > 1 ? ` step ${job.frame_step}` : "");
    const counts = job.frame_counts || {};
    const verified = counts.VERIFIED || 0;
    const percent = job.frames_total ? Math.floor((verified * 100) / job.frames_total) : 0;
    document.getElementById("job-progress").style.width = `${percent}%`;
    document.getElementById("progress-text").textContent = `${verified} of ${job.frames_total} frames verified`;
    document.getElementById("progress-percent").textContent = `${percent} %`;
    document.getElementById("frame-counts").replaceChildren(
      ...Object.entries(counts)
        .filter(([, count]) => count > 0)
        .map(([state, count]) => el("span", { class: `chip state-${state.toLowerCase()}` }, `${RR.humanState(state)} ${count}`)),
    );
    const lockError = document.getElementById("lock-error");
    lockError.hidden = !job.lock_error;
    lockError.textContent = job.lock_error ? `The escrow refused the lock: ${job.lock_error}` : "";

    const awaiting = job.state === "AWAITING_ACCEPTANCE" || job.state === "AWAITING_PAYMENT";
    acceptButton.hidden = !(awaiting && RR.hasWallet());
    document.getElementById("cli-accept").hidden = !(awaiting && !RR.hasWallet());
    cancelButton.hidden = RR.TERMINAL_JOB_STATES.has(job.state);
    document.getElementById("download-zip").classList.toggle("disabled", verified === 0);
    root.dataset.state = job.state;
  }

  function renderMoney(escrow) {
    const money = job.money || {};
    const released = money.release_wei || "0";
    const pending = money.release_pending_wei || "0";
    RR.facts(document.getElementById("money"), [
      ["Estimate", formatRon(job.estimate_wei), { wei: job.estimate_wei, id: "money-estimate" }],
      ["Locked", formatRon(money.lock_wei), { wei: money.lock_wei, id: "money-locked" }],
      [
        "Released to nodes",
        el("span", {}, formatRon(released), pending !== "0" ? el("span", { class: "muted" }, ` + ${formatRon(pending)} pending`) : null),
        { wei: released, id: "money-released" },
      ],
      ["Platform fee", formatRon(money.fee_wei), { wei: money.fee_wei, id: "money-fee" }],
      ["Refunded", formatRon(money.refund_wei), { wei: money.refund_wei, id: "money-refunded" }],
    ]);
    if (!escrow) return;
    const hashes = escrow.tx_hashes || [];
    document.getElementById("tx-count").textContent = `(${hashes.length})`;
    const paid = Object.entries(escrow.paid_wei_by_node || {}).map(([address, wei]) =>
      el("li", {}, "paid ", el("strong", {}, formatRon(wei)), " to ", el("code", { title: address }, RR.shortHash(address))),
    );
    document.getElementById("tx-hashes").replaceChildren(
      ...paid,
      ...hashes.map((hash) => el("li", {}, el("code", { class: "tx-hash", title: hash }, hash))),
    );
  }

  function frameCell(frame) {
    const number = el("span", { class: "frame-number" }, `#${frame.number}`);
    const state = RR.badge(frame.state);
    const thumb = el("div", { class: "thumb" });
    if (job && job.width && job.height) thumb.style.aspectRatio = `${job.width} / ${job.height}`;
    const bar = el("div", { class: "progress-bar" });
    const progress = el("div", { class: "progress tiny" }, bar);
    const meta = el("div", { class: "frame-meta" });
    const cell = el("article", { class: "frame", dataset: { number: frame.number } },
      el("header", {}, number, state), thumb, progress, meta);
    return { cell, state, thumb, bar, progress, meta, shownState: null };
  }

  function showThumbnail(parts, number) {
    if (job.output_format !== "PNG") {
      parts.thumb.replaceChildren(el("span", { class: "muted small" }, job.output_format.replace("OPEN_", "")));
      return;
    }
    const image = el("img", { alt: `frame ${number}`, decoding: "async" });
    const link = el("a", { href: frameUrl(number, "output"), download: "", title: `Download frame ${number}` }, image);
    RR.downloadOnClick(link, framePath(number, "output"), `frame_${String(number).padStart(5, "0")}.png`);
    parts.thumb.replaceChildren(link);
    loadThumbnail(image, number).catch(() => {
      /* the cell stays blank; the next state change tries again */
    });
  }

  /** The frame's thumbnail, fetched with the token; the full image where there is none. */
  async function loadThumbnail(image, number) {
    if (thumbnailEndpoint) {
      try {
        image.src = await RR.objectUrl(framePath(number, "thumbnail"));
        return;
      } catch (error) {
        if (error.status !== 404) throw error;
        thumbnailEndpoint = false;
      }
    }
    image.src = await RR.objectUrl(framePath(number, "output"));
  }

  function updateFrame(frame) {
    let parts = cells.get(frame.number);
    if (!parts) {
      parts = frameCell(frame);
      cells.set(frame.number, parts);
      grid.append(parts.cell);
    }
    if (parts.shownState !== frame.state) {
      parts.cell.dataset.state = frame.state;
      const replacement = RR.badge(frame.state);
      parts.state.replaceWith(replacement);
      parts.state = replacement;
      if (frame.state === "VERIFIED") showThumbnail(parts, frame.number);
      else parts.thumb.replaceChildren();
      parts.shownState = frame.state;
    }
    const rendering = frame.state === "ASSIGNED" || frame.state === "RENDERING";
    parts.progress.hidden = !rendering;
    parts.bar.style.width = `${Math.round((frame.progress || 0) * 100)}%`;
    const meta = [];
    if (frame.node_id) {
      meta.push(el("a", { href: `${base}nodes/${frame.node_id}`, class: "id", title: frame.node_id }, `node ${RR.shortId(frame.node_id, 6)}`));
    }
    if (frame.failures) meta.push(el("span", { class: "failures" }, `${frame.failures} failed`));
    if (frame.last_rejection) {
      meta.push(el("span", { class: "rejection", title: frame.last_rejection }, frame.last_rejection));
    }
    parts.meta.replaceChildren(...meta);
  }

  async function refresh() {
    let latest, frames;
    try {
      [latest, { frames }] = await Promise.all([api(`/jobs/${jobId}`), api(`/jobs/${jobId}/frames`)]);
    } catch (error) {
      if (error.status !== 404) throw error;
      poller.stop();
      RR.notice(`No job ${jobId} for ${RR.session().address}: sign in with the wallet that submitted it.`, "error");
      return;
    }
    job = latest;
    renderJob();
    for (const frame of frames) updateFrame(frame);
    const moneyKey = JSON.stringify([job.state, job.money]);
    let escrow = null;
    if (moneyKey !== lastMoneyKey || polls % ESCROW_EVERY_POLLS === 0) {
      try {
        escrow = await api(`/jobs/${jobId}/escrow`);
        lastMoneyKey = moneyKey;
      } catch (_) {
        escrow = null; // the chain may be briefly unreachable: the database's figures still show
      }
    }
    renderMoney(escrow);
    polls += 1;
  }

  acceptButton.addEventListener("click", async () => {
    acceptButton.disabled = true;
    try {
      await RR.acceptWithWallet(jobId);
      RR.notice("Accepted: the lock is being taken on chain.");
      poller.now();
    } catch (error) {
      RR.notice(`Not accepted: ${error.message}`, "error");
    } finally {
      acceptButton.disabled = false;
    }
  });

  cancelButton.addEventListener("click", async () => {
    if (!window.confirm("Cancel this job? Frames not yet paid are refunded.")) return;
    cancelButton.disabled = true;
    try {
      await api(`/jobs/${jobId}/cancel`, { method: "POST" });
      RR.notice("Cancelled: what was not paid is being refunded.");
      poller.now();
    } catch (error) {
      RR.notice(`Not cancelled: ${error.message}`, "error");
    } finally {
      cancelButton.disabled = false;
    }
  });

  RR.downloadOnClick(document.getElementById("download-zip"), `/jobs/${jobId}/output.zip`, `${jobId}.zip`);

  const poller = RR.signedIn()
    ? RR.poll(refresh, () => (job && RR.TERMINAL_JOB_STATES.has(job.state) ? SETTLED_POLL_MS : RR.POLL_MS))
    : null;
})();
