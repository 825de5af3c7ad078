// Passkeys on authauth's hosted pages: the same JSON operations any front end calls
// (docs/mfa.md). Only the pages that offer a passkey load this file, under a policy that allows
// this one script from authauth itself and nothing inline. Without script (or without the
// browser's JSON helpers for WebAuthn) the passkey controls stay hidden and the forms work.
(() => {
  "use strict";
  const supported =
    window.PublicKeyCredential &&
    typeof PublicKeyCredential.parseRequestOptionsFromJSON === "function" &&
    typeof PublicKeyCredential.parseCreationOptionsFromJSON === "function";
  if (!supported) return;

  const problem = (text) => {
    const el = document.getElementById("passkey-error");
    if (el) {
      el.textContent = text;
      el.hidden = false;
    }
  };

  async function post(path, body) {
    const resp = await fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await resp.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch (_) {
      json = null;
    }
    return { status: resp.status, body: json };
  }

  const message = (r, fallback) => (r.body && r.body.message) || fallback;

  async function signIn(button) {
    const start = await post("/auth/passkeys/login/start");
    if (start.status !== 200) return problem(message(start, "Passkeys are not available here."));
    let credential;
    try {
      credential = await navigator.credentials.get({
        publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(start.body.publicKey),
      });
    } catch (_) {
      return problem("No passkey was used.");
    }
    const finish = await post("/auth/passkeys/login/finish", credential.toJSON());
    if (finish.status === 200) return location.assign(button.dataset.next || "/account");
    problem(message(finish, "The passkey was not accepted."));
  }

  async function register() {
    const field = document.getElementById("passkey-name");
    const name = (field && field.value.trim()) || "Passkey";
    const start = await post("/auth/passkeys/register/start", { name });
    if (start.status === 403 && start.body && start.body.error === "reauthentication_required") {
      return location.assign("/account/confirm?returnTo=/account/two-factor");
    }
    if (start.status !== 200) return problem(message(start, "A passkey cannot be added now."));
    let credential;
    try {
      credential = await navigator.credentials.create({
        publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(start.body.publicKey),
      });
    } catch (_) {
      return problem("No passkey was made.");
    }
    const finish = await post("/auth/passkeys/register/finish", credential.toJSON());
    if (finish.status !== 200) return problem(message(finish, "The passkey was not accepted."));
    const codes = finish.body.recoveryCodes;
    if (!codes) return location.assign("/account/two-factor?notice=passkey-added");
    // The account's first second factor: its recovery codes, shown this once.
    const list = document.getElementById("passkey-codes-list");
    for (const code of codes) {
      const li = document.createElement("li");
      li.textContent = code;
      list.appendChild(li);
    }
    document.getElementById("passkey-codes").hidden = false;
  }

  for (const el of document.querySelectorAll("[data-passkey]")) {
    el.hidden = false;
    const button = el.querySelector("button");
    const action = el.dataset.passkey === "register" ? register : () => signIn(button);
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        await action();
      } catch (e) {
        problem(`Something went wrong: ${e.message}`);
      } finally {
        button.disabled = false;
      }
    });
  }
})();
