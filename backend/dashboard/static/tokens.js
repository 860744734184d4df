/* The artist's API tokens (for the Blender add-on and scripts): create one, shown once;
 * list them; revoke one, which stops working at once. */
"use strict";

(() => {
  const { el, api } = RR;
  const form = document.getElementById("token-form");
  const createButton = document.getElementById("create-token");
  const tbody = document.getElementById("tokens-body");
  const secretBox = document.getElementById("new-token");
  const secretText = document.getElementById("new-token-secret");

  function tokenState(token) {
    if (token.revoked_at) return "REVOKED";
    if (token.expires_at && Date.parse(token.expires_at) <= Date.now()) return "EXPIRED";
    return "ACTIVE";
  }

  function tokenRow(token) {
    const state = tokenState(token);
    let revoke = null;
    if (state === "ACTIVE") {
      revoke = el("button", { class: "small danger", type: "button" }, "Revoke");
      revoke.addEventListener("click", () => revokeToken(token, revoke));
    }
    return el(
      "tr",
      { dataset: { tokenId: token.id, state } },
      el("td", {}, token.name),
      el("td", {}, RR.badge(state)),
      el("td", { class: "muted" }, RR.dateTime(token.created_at)),
      el("td", { class: "muted" }, token.expires_at ? RR.dateTime(token.expires_at) : "never"),
      el("td", {}, revoke),
    );
  }

  async function loadTokens() {
    const { tokens } = await api("/auth/tokens");
    document.getElementById("token-count").textContent = `(${tokens.length})`;
    tbody.replaceChildren(
      ...(tokens.length ? tokens.map(tokenRow) : [el("tr", {}, el("td", { colspan: 5, class: "muted" }, "No API tokens yet."))]),
    );
  }

  async function revokeToken(token, button) {
    if (!window.confirm(`Revoke "${token.name}"? Whatever uses it stops working at once.`)) return;
    button.disabled = true;
    try {
      await api(`/auth/tokens/${token.id}`, { method: "DELETE" });
      RR.notice(`"${token.name}" is revoked.`);
      await loadTokens();
    } catch (error) {
      RR.notice(`Not revoked: ${error.message}`, "error");
      button.disabled = false;
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = document.getElementById("token-name").value.trim();
    const days = document.getElementById("token-expiry").value;
    createButton.disabled = true;
    try {
      const request = days ? { name, expires_in_days: Number(days) } : { name };
      const issued = await api("/auth/tokens", { method: "POST", json: request });
      secretText.textContent = issued.token;
      secretBox.hidden = false;
      form.reset();
      await loadTokens();
    } catch (error) {
      RR.notice(`Not created: ${error.message}`, "error");
    } finally {
      createButton.disabled = false;
    }
  });

  document.getElementById("copy-token").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(secretText.textContent);
      RR.notice("Copied.");
    } catch (_) {
      RR.notice("Select the token and copy it by hand: this browser refused the clipboard.", "error");
    }
  });

  const walletSignedIn = RR.signedIn() && /^0x[0-9a-fA-F]{40}$/.test(RR.session().address);
  if (RR.signedIn() && !walletSignedIn) {
    createButton.disabled = true;
    RR.notice("API tokens belong to a wallet: sign in with one to create them.", "error");
  }
  if (walletSignedIn) {
    loadTokens().catch((error) => {
      if (error.status !== 401) RR.notice(error.message, "error");
    });
  }
})();
