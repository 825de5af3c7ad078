// Walks authauth's hosted pages in a real, headless Chromium — the machine's own (Debian
// `chromium`, /usr/bin/chromium, or $CHROMIUM), never a downloaded one — driven by
// playwright-core, with JavaScript turned off in every page: the pages must work as plain forms.
//
//   node walk.mjs <base url> <screenshot dir>
//
// The walk: sign up, sign out, a wrong password, sign in, open /account, sign in from a second
// browser context and see two devices, sign the other one out and see it refused, change the
// password, sign in with the new one, open the two-step set-up and its QR code. Also: the keyboard reaches every field in order, and no
// page logs an error (a Content-Security-Policy violation would). Screenshots of each page go to
// the screenshot directory.
//
// stdout gets one `ok <step>` line per step and `walk: ok (<n> steps)` at the end; on failure,
// `walk: FAILED at <step>: <error>` and exit status 1.

import { mkdirSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [base, shots] = process.argv.slice(2);
if (!base || !shots) {
  console.error("usage: node walk.mjs <base url> <screenshot dir>");
  process.exit(2);
}
mkdirSync(shots, { recursive: true });

const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const email = `walker-${Date.now()}@example.com`;
const password = "tuna lantern orbit clay";
const newPassword = "quiet harbor maple seven";
const resetPassword = "amber quarry violin tide";
// The second device announces itself as a phone, so the two devices read differently.
const phoneAgent =
  "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36";

let current = "starting the browser";
let steps = 0;
const problems = [];

/** The reset link of the newest message in the app's outbox (OUTBOX): quoted-printable undone. */
async function resetLink() {
  const dir = process.env.OUTBOX;
  for (let i = 0; i < 100; i++) {
    const files = readdirSync(dir).filter((f) => f.endsWith(".eml"));
    for (const f of files) {
      const raw = readFileSync(join(dir, f), "utf8").replace(/=\r?\n/g, "").replace(/=3D/g, "=");
      const m = raw.match(/https?:\/\/[^\s"<>]*\/reset-password\?token=[A-Za-z0-9_-]+/);
      if (m && raw.includes(email)) return m[0];
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no reset link in ${dir}`);
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

async function step(name, body) {
  current = name;
  await body();
  steps += 1;
  console.log(`ok ${name}`);
}

/** A browser context without JavaScript, whose pages report every console error. */
async function context(browser, options = {}) {
  const ctx = await browser.newContext({
    baseURL: base,
    javaScriptEnabled: false,
    viewport: { width: 820, height: 720 },
    ...options,
  });
  ctx.setDefaultTimeout(15000);
  ctx.on("page", (page) => watch(page));
  return ctx;
}

function watch(page) {
  page.on("console", (msg) => {
    // A page answered with an error status (a refused sign-in is a 401 page) is logged as
    // "Failed to load resource"; failed subresources are caught below instead.
    if (msg.type() === "error" && !msg.text().startsWith("Failed to load resource")) {
      problems.push(`${page.url()}: ${msg.text()}`);
    }
  });
  page.on("response", (resp) => {
    const req = resp.request();
    // The browser's own /favicon.ico request is not the pages' doing.
    if (req.resourceType() !== "document" && resp.status() >= 400 && !req.url().endsWith("/favicon.ico")) {
      problems.push(`${page.url()}: ${req.url()} answered ${resp.status()}`);
    }
  });
  page.on("pageerror", (err) => problems.push(`${page.url()}: ${err.message}`));
}

function path(page) {
  const url = new URL(page.url());
  return url.pathname + url.search;
}

async function shot(page, name) {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

async function signIn(page, pass) {
  await page.getByLabel("E-mail address").fill(email);
  await page.getByLabel("Password").fill(pass);
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
}

async function status(ctx) {
  const resp = await ctx.request.get("/auth/me");
  return { status: resp.status(), body: await resp.json() };
}

const browser = await chromium.launch({ executablePath, headless: true }).catch((e) => {
  console.log(`walk: FAILED at ${current}: ${e.message}`);
  process.exit(1);
});

try {
  const laptop = await context(browser);
  const a = await laptop.newPage();

  await step("the sign-up page", async () => {
    await a.goto("/signup");
    check((await a.title()) === "Create an account · authauth", `title: ${await a.title()}`);
    await shot(a, "signup");
  });

  await step("sign up", async () => {
    await a.getByLabel("Name").fill("Ada Lovelace");
    await a.getByLabel("E-mail address").fill(email);
    await a.getByLabel("Password").fill(password);
    await a.getByRole("button", { name: "Create account" }).click();
    await a.waitForURL("**/account");
    check((await a.locator("#account-email").textContent()) === email, "the account page shows the address");
    check((await a.locator("li.device.current").count()) === 1, "this device is marked");
  });

  await step("sign out", async () => {
    await a.getByRole("button", { name: "Sign out", exact: true }).click();
    await a.waitForURL("**/login?notice=signed-out");
    await a.getByText("You are signed out.").waitFor();
    check((await status(laptop)).status === 401, "signed out: /auth/me refuses");
    await shot(a, "login");
  });

  await step("the keyboard reaches every field in order", async () => {
    const order = [];
    for (let i = 0; i < 5; i++) {
      await a.keyboard.press("Tab");
      order.push(await a.evaluate(() => document.activeElement?.id || document.activeElement?.textContent?.trim()));
    }
    const want = ["Skip to the content", "authauth", "email", "password", "Sign in"];
    check(JSON.stringify(order) === JSON.stringify(want), `tab order ${JSON.stringify(order)}`);
  });

  await step("a wrong password is refused with the generic message, in place", async () => {
    await signIn(a, "not the password");
    await a.getByRole("alert").filter({ hasText: "The e-mail address or password is incorrect." }).waitFor();
    check(path(a) === "/login", `still on the sign-in page: ${path(a)}`);
    check((await a.getByLabel("E-mail address").inputValue()) === email, "the address is kept");
    check((await a.getByLabel("Password").inputValue()) === "", "the password is not");
    await shot(a, "login-error");
  });

  await step("sign in", async () => {
    await signIn(a, password);
    await a.waitForURL("**/account");
    check((await status(laptop)).status === 200, "signed in: /auth/me answers");
  });

  const phone = await context(browser, { userAgent: phoneAgent, viewport: { width: 412, height: 860 } });
  const b = await phone.newPage();

  await step("a second browser signs in, coming back to the page it asked for", async () => {
    await b.goto("/account");
    await b.waitForURL("**/login");
    await signIn(b, password);
    await b.waitForURL("**/account");
    check((await b.locator("li.device").count()) === 2, "the phone sees two devices");
  });

  await step("the account page lists two devices, this one marked", async () => {
    await a.goto("/account");
    check((await a.locator("li.device").count()) === 2, "two devices");
    const mine = await a.locator("li.device.current .device-name").textContent();
    const other = await a.locator("li.device:not(.current) .device-name").textContent();
    check(mine.includes("This device"), `this device: ${mine}`);
    check(other.includes("Chrome on Android"), `the other device: ${other}`);
    await shot(a, "account");
  });

  await step("sign the other device out; it is refused", async () => {
    await a.locator("li.device:not(.current)").getByRole("button", { name: /^Sign out/ }).click();
    await a.waitForURL("**/account?notice=device-ended");
    check((await a.locator("li.device").count()) === 1, "one device left");
    const { status: code, body } = await status(phone);
    check(code === 401 && body.reason === "revoked_by_user", `the phone: ${code} ${JSON.stringify(body)}`);
    await b.goto("/account");
    await b.waitForURL("**/login");
  });

  await step("change the password", async () => {
    await a.getByLabel("Current password").fill(password);
    await a.getByLabel("New password", { exact: true }).fill(newPassword);
    await a.getByLabel("New password, again").fill(newPassword);
    await a.getByRole("button", { name: "Change password" }).click();
    await a.waitForURL("**/account?notice=password-changed");
    await a.getByText("Your password has changed.").waitFor();
    check((await status(laptop)).status === 200, "this browser holds the new session");
  });

  await step("only the new password signs in", async () => {
    await a.getByRole("button", { name: "Sign out", exact: true }).click();
    await a.waitForURL("**/login?notice=signed-out");
    await signIn(a, password);
    await a.getByRole("alert").waitFor();
    await signIn(a, newPassword);
    await a.waitForURL("**/account");
  });

  await step("forgot the password: ask for a link", async () => {
    await a.getByRole("button", { name: "Sign out", exact: true }).click();
    await a.waitForURL("**/login?notice=signed-out");
    await a.getByRole("link", { name: "Forgot your password?" }).click();
    await a.waitForURL("**/forgot-password");
    await a.getByLabel("E-mail address").fill(email);
    await a.getByRole("button", { name: "Send me a link" }).click();
    await a.getByText("If an account has this address").waitFor();
    await shot(a, "forgot-password");
  });

  await step("follow the e-mailed link and set a new password", async () => {
    const link = await resetLink();
    await a.goto(link);
    check((await a.title()) === "Choose a new password · authauth", `title: ${await a.title()}`);
    await shot(a, "reset-password");
    await a.getByLabel("New password").fill(resetPassword);
    await a.getByRole("button", { name: "Set the new password" }).click();
    await a.waitForURL("**/account?notice=password-reset");
    await a.getByText("Your new password is set.").waitFor();
    check((await status(laptop)).status === 200, "signed in with the new session");
    await a.goto(link);
    await a.getByText("This link does not work").waitFor();
  });

  await step("the two-step set-up page shows its QR code", async () => {
    await a.goto("/account");
    await a.getByRole("link", { name: "Turn on two-step sign-in" }).click();
    await a.waitForURL("**/account/two-factor");
    await a.getByRole("button", { name: "Set up an authenticator app" }).click();
    await a.locator(".qr svg").waitFor();
    const box = await a.locator(".qr svg").boundingBox();
    check(box && box.width >= 150 && box.height >= 150, `the QR code is drawn: ${JSON.stringify(box)}`);
    check(/^[A-Z2-7]{32}$/.test((await a.locator("#totp-secret").textContent()) || ""), "the key to type");
    await shot(a, "two-factor-setup");
  });

  await step("dark mode", async () => {
    const dark = await context(browser, { colorScheme: "dark" });
    const d = await dark.newPage();
    await d.goto("/login");
    const bg = await d.evaluate(() => getComputedStyle(document.body).backgroundColor);
    check(bg === "rgb(18, 21, 26)", `dark background: ${bg}`);
    await shot(d, "login-dark");
    await dark.close();
  });

  await step("no page logged an error", async () => {
    check(problems.length === 0, problems.join("\n"));
  });

  console.log(`walk: ok (${steps} steps)`);
  await browser.close();
} catch (e) {
  console.log(`walk: FAILED at ${current}: ${e.message.split("\n")[0]}`);
  console.error(e);
  await browser.close().catch(() => {});
  process.exit(1);
}
