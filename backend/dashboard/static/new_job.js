/* Upload a .blend from the browser (with upload progress), wait for Blender to read it,
 * create the job, show its estimate and accept it with the artist's browser wallet. */
"use strict";

(() => {
  const { el, api, formatRon } = RR;
  const base = document.body.dataset.dashboard;
  const form = document.getElementById("upload-form");
  const fileInput = document.getElementById("scene-file");
  const fileLabel = document.getElementById("file-label");
  const button = document.getElementById("upload-button");
  const progressBlock = document.getElementById("upload-progress");
  const stage = document.getElementById("upload-stage");
  const percentText = document.getElementById("upload-percent");
  const bar = document.getElementById("upload-bar");
  const estimateCard = document.getElementById("estimate-card");
  const acceptButton = document.getElementById("accept-button");
  const SCENE_POLL_MS = 1000;

  fileInput.addEventListener("change", () => {
    const file = fileInput.files[0];
    fileLabel.textContent = file ? `${file.name} · ${RR.bytes(file.size)}` : "Choose a .blend file";
  });

  function showProgress(label, fraction) {
    progressBlock.hidden = false;
    stage.textContent = label;
    const percent = Math.floor(fraction * 100);
    percentText.textContent = `${percent} %`;
    bar.style.width = `${percent}%`;
  }

  const RETRIES_PER_CHUNK = 5;
  const RETRY_PAUSE_MS = 1000;

  /** PUT one chunk with XMLHttpRequest (fetch() cannot report upload progress). Resolves
   * with the upload's state; rejects with .retryable set when the connection dropped. */
  function putChunk(upload, offset, blob, onSent) {
    return new Promise((resolve, reject) => {
      const request = new XMLHttpRequest();
      request.open("PUT", `${RR.API}/scenes/uploads/${upload.id}?offset=${offset}`);
      request.setRequestHeader("Content-Type", "application/octet-stream");
      request.setRequestHeader("Accept", "application/json");
      for (const [name, value] of Object.entries(RR.authHeaders())) request.setRequestHeader(name, value);
      request.upload.addEventListener("progress", (event) => onSent(event.loaded));
      request.addEventListener("load", () => {
        let data = null;
        try {
          data = JSON.parse(request.responseText);
        } catch (_) {
          /* not JSON: reported below */
        }
        if (request.status >= 200 && request.status < 300 && data) return resolve(data);
        const message = (data && data.message) || `upload failed: HTTP ${request.status}`;
        if (request.status === 401) RR.signedOut(`Sign in again: ${message}`);
        const error = new RR.ApiError(message, request.status);
        error.retryable = request.status === 409 || request.status >= 500; // ask where to go on
        reject(error);
      });
      const dropped = () => {
        const error = new Error("the connection dropped");
        error.retryable = true;
        reject(error);
      };
      request.addEventListener("error", dropped);
      request.addEventListener("abort", dropped);
      request.send(blob);
    });
  }

  /** The same file picked again (even after a reload) continues its unfinished upload. */
  function resumeKey(file) {
    return `ronrender.upload:${file.name}:${file.size}:${file.lastModified}`;
  }

  async function startOrResume(file) {
    const known = localStorage.getItem(resumeKey(file));
    if (known) {
      try {
        return await api(`/scenes/uploads/${known}`);
      } catch (error) {
        if (error.status !== 404) throw error; // finished or expired: start anew
      }
    }
    const upload = await api("/scenes/uploads", { method: "POST", json: { size_bytes: file.size } });
    localStorage.setItem(resumeKey(file), upload.id);
    return upload;
  }

  /** Upload in chunks; after a dropped connection ask the backend where to go on. */
  async function uploadScene(file) {
    let upload = await startOrResume(file);
    let failures = 0;
    while (upload.received_bytes < file.size) {
      const offset = upload.received_bytes;
      const chunk = file.slice(offset, Math.min(offset + upload.chunk_bytes, file.size));
      try {
        upload = await putChunk(upload, offset, chunk, (sent) => showProgress("Uploading…", (offset + sent) / file.size));
        failures = 0;
      } catch (error) {
        if (!error.retryable || ++failures > RETRIES_PER_CHUNK) throw error;
        showProgress(`Connection lost; resuming (try ${failures} of ${RETRIES_PER_CHUNK})…`, offset / file.size);
        await new Promise((resolve) => setTimeout(resolve, RETRY_PAUSE_MS * failures));
        upload = await api(`/scenes/uploads/${upload.id}`);
      }
    }
    const scene = await api(`/scenes/uploads/${upload.id}/complete`, { method: "POST" });
    localStorage.removeItem(resumeKey(file));
    return scene;
  }

  async function waitForScene(sha256) {
    showProgress("Blender is reading the scene…", 1);
    for (;;) {
      const scene = await api(`/scenes/${sha256}`);
      if (scene.state === "READY") return scene;
      if (scene.state === "INVALID") throw new Error(`Blender could not use this file: ${scene.error}`);
      await new Promise((resolve) => setTimeout(resolve, SCENE_POLL_MS));
    }
  }

  function overrides() {
    const request = {};
    for (const field of form.querySelectorAll("[name]")) {
      if (field.value === "") continue;
      request[field.name] = field.type === "number" ? Number(field.value) : field.value;
    }
    return request;
  }

  function showEstimate(job) {
    estimateCard.hidden = false;
    estimateCard.dataset.jobId = job.id;
    RR.facts(document.getElementById("estimate-facts"), [
      ["Frames", `${job.frames_total} (${job.frame_start}–${job.frame_end})`],
      ["Output", `${job.width}×${job.height} ${job.output_format}, ${job.engine}, ${job.samples ?? "–"} samples`],
      ["Price per frame", formatRon(job.price_per_frame_wei), { wei: job.price_per_frame_wei }],
      ["Total", formatRon(job.estimate_wei), { wei: job.estimate_wei, id: "estimate-total" }],
      ["Platform fee", `${job.fee_bps / 100} % of paid frames, included`],
      ["Safety margin", `${job.safety_margin_percent} %, refunded if unused`],
    ]);
    document.getElementById("job-link").href = `${base}jobs/${job.id}`;
    if (RR.hasWallet()) {
      acceptButton.hidden = false;
    } else {
      document.getElementById("cli-accept").hidden = false;
      document.getElementById("cli-command").textContent = `ronrender accept ${job.id}`;
    }
  }

  acceptButton.addEventListener("click", async () => {
    acceptButton.disabled = true;
    try {
      const job = await RR.acceptWithWallet(estimateCard.dataset.jobId);
      location.assign(`${base}jobs/${job.id}`);
    } catch (error) {
      RR.notice(`Not accepted: ${error.message}`, "error");
      acceptButton.disabled = false;
    }
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = fileInput.files[0];
    if (!file) return;
    button.disabled = true;
    estimateCard.hidden = true;
    RR.clearNotice();
    try {
      showProgress("Uploading…", 0);
      const scene = await uploadScene(file);
      await waitForScene(scene.sha256);
      showProgress("Pricing…", 1);
      const job = await api("/jobs", { method: "POST", json: { scene_sha256: scene.sha256, ...overrides() } });
      showProgress("Estimate ready", 1);
      showEstimate(job);
    } catch (error) {
      if (error.status !== 401) RR.notice(error.message, "error");
      progressBlock.hidden = true;
    } finally {
      button.disabled = false;
    }
  });
})();
