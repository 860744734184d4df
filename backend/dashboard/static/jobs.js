/* The artist's job list: newest first, optionally of one wallet, refreshed live. */
"use strict";

(() => {
  const { el, api, poll, formatRon, badge, dateTime, shortId } = RR;
  const base = document.body.dataset.dashboard;
  const form = document.getElementById("artist-form");
  const input = document.getElementById("artist-address");
  const tbody = document.getElementById("jobs-body");
  const connect = document.getElementById("connect-wallet");

  const fromQuery = new URLSearchParams(location.search).get("artist");
  input.value = fromQuery !== null ? fromQuery : RR.rememberedArtist();

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!input.checkValidity()) return;
    RR.rememberArtist(input.value.trim());
    history.replaceState(null, "", input.value.trim() ? `?artist=${input.value.trim()}` : location.pathname);
    poller.now();
  });
  if (RR.hasWallet()) {
    connect.hidden = false;
    connect.addEventListener("click", async () => {
      try {
        input.value = await RR.walletAddress();
        form.requestSubmit();
      } catch (error) {
        RR.notice(error.message, "error");
      }
    });
  }

  function progressCell(job) {
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

  async function refresh() {
    const address = input.value.trim();
    const query = new URLSearchParams({ limit: "50" });
    if (/^0x[0-9a-fA-F]{40}$/.test(address)) query.set("artist_address", address);
    const { jobs } = await api(`/jobs?${query}`);
    if (!jobs.length) {
      tbody.replaceChildren(el("tr", {}, el("td", { colspan: 6, class: "muted" }, "No jobs yet.")));
      return;
    }
    tbody.replaceChildren(
      ...jobs.map((job) =>
        el(
          "tr",
          { dataset: { jobId: job.id } },
          el("td", {}, el("a", { href: `${base}jobs/${job.id}`, class: "id" }, shortId(job.id))),
          el("td", {}, badge(job.state)),
          progressCell(job),
          el("td", { class: "num" }, job.frames_total),
          el("td", { class: "num" }, formatRon(job.estimate_wei)),
          el("td", { class: "muted" }, dateTime(job.created_at)),
        ),
      ),
    );
  }

  const poller = poll(refresh);
})();
