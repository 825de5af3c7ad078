// Passkeys in a real, headless Chromium — the machine's own (Debian `chromium`, or $CHROMIUM) —
// with a virtual authenticator (Chrome DevTools Protocol `WebAuthn`: CTAP2, resident keys, user
// verification), driven by playwright-core. The page code is what a front end writes: the
// options from `…/start` go through `PublicKeyCredential.parse…OptionsFromJSON` into
// `navigator.credentials`, and the credential's `toJSON()` goes to `…/finish`.
//
//   node passkeys.mjs <base url on localhost>
//
// The ceremony runs on http://localhost:<port> (the relying party `localhost`; an IP address
// cannot hold passkeys). Steps: sign up; register a passkey; sign out; sign in with it and no
// password; sign in with the password and give the passkey as the second factor; a clone of the
// authenticator (its signature counter behind) is refused; delete the passkey and see a passkey
// sign-in refused and the password sign in again in one step; then, on the hosted pages under
// their own policy, add a passkey and sign in with it.
//
// stdout gets one `ok <step>` line per step and `passkeys: ok (<n> steps)` at the end; on
// failure `passkeys: FAILED at <step>: <error>` and exit status 1.

import { chromium } from "playwright-core";

const [base] = process.argv.slice(2);
if (!base || !new URL(base).hostname.endsWith("localhost")) {
  console.error("usage: node passkeys.mjs http://localhost:<port>");
  process.exit(2);
}
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const email = `passkey-${Date.now()}@example.com`;
const password = "tuna lantern orbit clay";

let current = "starting the browser";
let steps = 0;

function check(condition, message) {
  if (!condition) throw new Error(message);
}

async function step(name, body) {
  current = name;
  await body();
  steps += 1;
  console.log(`ok ${name}`);
}

const browser = await chromium.launch({ executablePath, headless: true }).catch((e) => {
  console.log(`passkeys: FAILED at ${current}: ${e.message}`);
  process.exit(1);
});

try {
  // The hosted pages allow no script; the test's own script runs beside them.
  const context = await browser.newContext({ baseURL: base, bypassCSP: true });
  context.setDefaultTimeout(15000);
  const page = await context.newPage();
  await page.goto("/login");
  const cdp = await context.newCDPSession(page);
  await cdp.send("WebAuthn.enable", { enableUI: false });
  const authenticator = async () =>
    (
      await cdp.send("WebAuthn.addVirtualAuthenticator", {
        options: {
          protocol: "ctap2",
          ctap2Version: "ctap2_1",
          transport: "internal",
          hasResidentKey: true,
          hasUserVerification: true,
          isUserVerified: true,
          automaticPresenceSimulation: true,
        },
      })
    ).authenticatorId;
  let key = await authenticator();

  /** A same-origin JSON call from the page: `{ status, body }`. */
  const call = (method, path, body) =>
    page.evaluate(
      async ([method, path, body]) => {
        const resp = await fetch(path, {
          method,
          headers: body === undefined ? {} : { "content-type": "application/json" },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
        const text = await resp.text();
        return { status: resp.status, body: text ? JSON.parse(text) : null };
      },
      [method, path, body],
    );

  /** A passkey sign-in ceremony from the page: start, `navigator.credentials.get`, finish. */
  const passkeySignIn = () =>
    page.evaluate(async () => {
      const start = await fetch("/auth/passkeys/login/start", { method: "POST" });
      if (start.status !== 200) return { status: start.status, body: await start.json(), stage: "start" };
      const options = await start.json();
      let credential;
      try {
        credential = await navigator.credentials.get({
          publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options.publicKey),
        });
      } catch (e) {
        return { status: 0, body: { error: `${e.name}: ${e.message}` }, stage: "get" };
      }
      const finish = await fetch("/auth/passkeys/login/finish", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(credential.toJSON()),
      });
      return {
        status: finish.status,
        body: await finish.json(),
        allow: options.publicKey.allowCredentials?.length ?? 0,
      };
    });

  await step("sign up", async () => {
    const r = await call("POST", "/auth/signup", { email, password, fullName: "Passkey Person" });
    check(r.status === 201, `signup: ${r.status} ${JSON.stringify(r.body)}`);
  });

  await step("register a passkey", async () => {
    const r = await page.evaluate(async () => {
      const start = await fetch("/auth/passkeys/register/start", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name: "Virtual key" }),
      });
      const options = await start.json();
      if (start.status !== 200) return { status: start.status, body: options };
      const credential = await navigator.credentials.create({
        publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options.publicKey),
      });
      const finish = await fetch("/auth/passkeys/register/finish", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(credential.toJSON()),
      });
      return {
        status: finish.status,
        body: await finish.json(),
        residentKey: options.publicKey.authenticatorSelection?.residentKey,
        userVerification: options.publicKey.authenticatorSelection?.userVerification,
      };
    });
    check(r.status === 200, `register: ${r.status} ${JSON.stringify(r.body)}`);
    check(r.residentKey === "required", `residentKey: ${r.residentKey}`);
    check(r.userVerification === "required", `userVerification: ${r.userVerification}`);
    check(r.body.recoveryCodes?.length === 10, "the first factor comes with ten recovery codes");
    check(r.body.session.aal === 2, `aal after registering: ${r.body.session.aal}`);
    const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId: key });
    check(credentials.length === 1 && credentials[0].isResidentCredential, "a resident credential");
    const list = await call("GET", "/auth/passkeys");
    check(list.body.passkeys.length === 1 && list.body.passkeys[0].name === "Virtual key", JSON.stringify(list.body));
  });

  await step("sign out", async () => {
    check((await call("POST", "/auth/logout")).status === 204, "logout");
    check((await call("GET", "/auth/me")).status === 401, "signed out");
  });

  await step("sign in with the passkey and no password", async () => {
    const r = await passkeySignIn();
    check(r.status === 200, `passkey sign-in: ${r.status} ${JSON.stringify(r.body)}`);
    check(r.allow === 0, "no account named: allowCredentials is empty");
    check(JSON.stringify(r.body.session.amr) === '["hwk"]', `amr: ${JSON.stringify(r.body.session.amr)}`);
    check(r.body.session.aal === 2 && r.body.session.method === "passkey", JSON.stringify(r.body.session));
    const me = await call("GET", "/auth/me");
    check(me.status === 200 && me.body.user.email === email, `me: ${me.status}`);
  });

  await step("a password sign-in asks for the passkey as its second factor", async () => {
    await call("POST", "/auth/logout");
    const first = await call("POST", "/auth/login", { email, password });
    check(first.status === 202 && first.body.session.stage === "second_factor", `login: ${first.status}`);
    check((await call("GET", "/auth/me")).status === 403, "the half-finished sign-in opens nothing");
    const r = await passkeySignIn();
    check(r.status === 200, `second factor: ${r.status} ${JSON.stringify(r.body)}`);
    check(r.allow === 1, "the account's own passkey is asked for");
    check(JSON.stringify(r.body.session.amr) === '["pwd","hwk"]', `amr: ${JSON.stringify(r.body.session.amr)}`);
    check(r.body.session.id !== first.body.session.id, "a new session id");
    check((await call("GET", "/auth/me")).status === 200, "signed in");
  });

  let snapshot;
  await step("a cloned authenticator is refused", async () => {
    // Copy the credential as it is now, sign in once more with the original (its counter moves
    // on), then answer with the copy, whose counter is behind: what a clone would do.
    snapshot = (await cdp.send("WebAuthn.getCredentials", { authenticatorId: key })).credentials[0];
    await call("POST", "/auth/logout");
    const again = await passkeySignIn();
    check(again.status === 200, `the original still signs in: ${again.status}`);
    await call("POST", "/auth/logout");
    await cdp.send("WebAuthn.removeVirtualAuthenticator", { authenticatorId: key });
    key = await authenticator();
    await cdp.send("WebAuthn.addCredential", { authenticatorId: key, credential: snapshot });
    const r = await passkeySignIn();
    check(r.status === 400 && r.body.error === "passkey_refused", `clone: ${r.status} ${JSON.stringify(r.body)}`);
    check((await call("GET", "/auth/me")).status === 401, "not signed in");
  });

  await step("delete the passkey: it no longer signs in, and the password alone does", async () => {
    // The genuine authenticator back (its counter ahead of the stored one).
    await cdp.send("WebAuthn.removeVirtualAuthenticator", { authenticatorId: key });
    key = await authenticator();
    await cdp.send("WebAuthn.addCredential", {
      authenticatorId: key,
      credential: { ...snapshot, signCount: snapshot.signCount + 1000 },
    });
    const r = await passkeySignIn();
    check(r.status === 200, `sign-in before deleting: ${r.status} ${JSON.stringify(r.body)}`);
    const list = await call("GET", "/auth/passkeys");
    const id = list.body.passkeys[0].id;
    check((await call("DELETE", `/auth/passkeys/${id}`)).status === 204, "deleted");
    await call("POST", "/auth/logout");
    const refused = await passkeySignIn();
    check(refused.status === 400 && refused.body.error === "passkey_refused", `after deleting: ${refused.status}`);
    const login = await call("POST", "/auth/login", { email, password });
    check(login.status === 200, `one-step password sign-in: ${login.status}`);
  });

  await step("on the hosted pages: add a passkey, sign out, sign in with it", async () => {
    // A browser of its own, under the pages' own Content-Security-Policy (no bypass): the one
    // script and its calls must be allowed by it, and nothing may be reported.
    const ctx = await browser.newContext({ baseURL: base });
    ctx.setDefaultTimeout(15000);
    const p = await ctx.newPage();
    const errors = [];
    p.on("console", (m) => {
      if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) errors.push(m.text());
    });
    p.on("pageerror", (e) => errors.push(e.message));
    const pcdp = await ctx.newCDPSession(p);
    await pcdp.send("WebAuthn.enable", { enableUI: false });
    await pcdp.send("WebAuthn.addVirtualAuthenticator", {
      options: {
        protocol: "ctap2",
        ctap2Version: "ctap2_1",
        transport: "internal",
        hasResidentKey: true,
        hasUserVerification: true,
        isUserVerified: true,
        automaticPresenceSimulation: true,
      },
    });
    await p.goto("/login");
    await p.getByLabel("E-mail address").fill(email);
    await p.getByLabel("Password").fill(password);
    await p.getByRole("button", { name: "Sign in", exact: true }).click();
    await p.waitForURL("**/account");
    await p.goto("/account/two-factor");
    await p.getByLabel("Name for a new passkey").fill("Page key");
    await p.getByRole("button", { name: "Add a passkey" }).click();
    // The account's only second factor: its recovery codes are shown once, in place.
    await p.locator("#passkey-codes").waitFor();
    check((await p.locator("#passkey-codes-list li").count()) === 10, "ten recovery codes on the page");
    await p.goto("/account/two-factor");
    await p.getByText("Page key").waitFor();
    await p.goto("/account");
    await p.getByRole("button", { name: "Sign out", exact: true }).click();
    await p.waitForURL("**/login?notice=signed-out");
    await p.getByRole("button", { name: "Sign in with a passkey" }).click();
    await p.waitForURL("**/account");
    check(errors.length === 0, `the pages reported: ${errors.join("; ")}`);
    await ctx.close();
  });

  console.log(`passkeys: ok (${steps} steps)`);
  await browser.close();
} catch (e) {
  console.log(`passkeys: FAILED at ${current}: ${e.stack || e.message}`);
  await browser.close();
  process.exit(1);
}
