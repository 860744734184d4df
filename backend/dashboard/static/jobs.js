/* The signed-in artist's jobs (an admin's: every job), newest first, refreshed live. */
"use strict";

(() => {
  const { el, api, poll, formatRon, badge, dateTime, shortId } = RR;
  const base = document.body.dataset.dashboard;
  const tbody = document.getElementById("jobs-body");

  if (RR.isAdmin()) document.getElementById("jobs-scope").textContent = "Every artist's jobs (you are an admin), newest first.";

  async function refresh() {
    const { jobs } = await api("/jobs?limit=50");
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
          RR.jobProgressCell(job),
          el("td", { class: "num" }, job.frames_total),
          el("td", { class: "num" }, formatRon(job.estimate_wei)),
          el("td", { class: "muted" }, dateTime(job.created_at)),
        ),
      ),
    );
  }

  if (RR.signedIn()) poll(refresh);
})();
