// The browser tests' harness: Debian's Chromium driven by playwright-core
// against a running stack (e2e/web_test.go starts api + worker with
// WEB_DIR, a private Mailpit, database, Redis, S3 server and stripe-mock,
// then runs browser.mjs with node). Suites (core.mjs, files.mjs, ...) get
// this module and call suite() for their own browser profile.
import { createHmac } from "node:crypto";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

export function must(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`${name} is not set (run through e2e/web_test.go: go test ./e2e -run TestWebApp)`);
    process.exit(2);
  }
  return v;
}

export const base = must("KEEL_URL");
export const mailpit = must("MAILPIT_URL");
export const artifacts = process.env.ARTIFACTS || new URL("../test-results/", import.meta.url).pathname;
mkdirSync(artifacts, { recursive: true });
export const password = "a long enough browser passphrase";
/** The names of the failed tests, "suite: test". */
export const failures = [];

let seq = 0;
/** An address no other test or run uses. */
export function uniqueEmail(prefix) {
  return `${prefix}-${Date.now().toString(36)}${(seq++).toString(36)}@example.com`;
}

// The Set-Cookie headers of a fetch response. Headers.getSetCookie is not in
// the fetch of Debian 12's Node 18; there the joined header is split at each
// comma that starts a new cookie (an Expires date's comma is followed by a
// day, not by name=).
export function setCookies(r) {
  if (typeof r.headers.getSetCookie === "function") return r.headers.getSetCookie();
  return (r.headers.get("set-cookie") || "").split(/,\s*(?=[A-Za-z0-9_-]+=)/);
}

const opened = []; // [context, profile dir we made or null]
/**
 * A Chromium with the profile in dir (persistent: its own cookies), phone
 * sized. Without dir, a fresh profile removed by closeAll. The flags keep
 * Chromium from reaching out to Google's services from a test machine.
 */
export async function launch(dir) {
  const own = dir ? null : mkdtempSync(join(tmpdir(), "keel-chromium-"));
  const c = await chromium.launchPersistentContext(dir || own, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
    viewport: { width: 390, height: 844 }, // a phone-sized screen
  });
  c.setDefaultTimeout(15000);
  opened.push([c, own]);
  return c;
}

export async function closeAll() {
  for (const [c, own] of opened.splice(0)) {
    await c.close().catch(() => {});
    if (own) rmSync(own, { recursive: true, force: true });
  }
}

/**
 * A suite: its own browser (fresh profile) and a test function. The tests of
 * a suite build on each other, so after a failure the rest of that suite is
 * not run; other suites still are. Each test saves a screenshot of its final
 * screen (s.page, or the page s.shot names) in artifacts, pass or fail.
 */
export async function suite(name) {
  const context = await launch();
  const page = context.pages()[0] ?? (await context.newPage());
  const s = { name, context, page, shot: null, failed: false };
  s.test = async (title, fn) => {
    if (s.failed) {
      failures.push(`${name}: ${title}`);
      console.log(`FAIL ${name}: ${title}: not run, an earlier test of the suite failed`);
      return;
    }
    const started = Date.now();
    s.shot = null;
    try {
      await fn();
      console.log(`ok   ${name}: ${title} (${Date.now() - started} ms)`);
    } catch (e) {
      s.failed = true;
      failures.push(`${name}: ${title}`);
      console.log(`FAIL ${name}: ${title}: ${e.stack || e}`);
    } finally {
      const file = join(artifacts, title.replace(/[^a-z0-9]+/gi, "-").toLowerCase() + ".png");
      await (s.shot || page).screenshot({ path: file, fullPage: true }).catch(() => {});
      console.log(`     screenshot ${file}`);
    }
  };
  return s;
}

export async function expectText(p, text) {
  await p.getByText(text).first().waitFor({ state: "visible" });
}

// The link of the newest email to an address whose text holds a link
// matching re, read from Mailpit's API.
// With count, waits until that many such emails arrived (newest first).
export async function mailedLink(to, re, timeoutMs = 20000, count = 1) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const list = await (await fetch(`${mailpit}/api/v1/search?query=${encodeURIComponent("to:" + to)}&limit=50`)).json();
    const links = [];
    for (const m of list.messages || []) {
      if (!(m.To || []).some((a) => a.Address === to)) continue;
      const msg = await (await fetch(`${mailpit}/api/v1/message/${m.ID}`)).json();
      const link = re.exec(msg.Text)?.[1];
      if (link) links.push(link);
    }
    if (links.length >= count) return links[0];
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no email to ${to} with a link like ${re} within ${timeoutMs} ms`);
}

// Opens a mailed link in page and waits for the screen's verdict. The worker
// commits the token's hash just after SMTP accepted the message, so a link
// can arrive a few milliseconds before it works: an error is retried.
export async function openMailedLink(page, link, okText, act = async () => {}) {
  for (let i = 0; ; i++) {
    await page.goto(link);
    await act();
    const ok = page.getByText(okText);
    await ok.or(page.getByRole("alert")).first().waitFor();
    if (await ok.isVisible()) return;
    if (i === 20) throw new Error("the link failed: " + (await page.getByRole("alert").innerText()));
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A JSON call to the API outside the browser; throws on a non-2xx answer. */
export async function api(method, path, token, body, headers = {}) {
  const res = await fetch(base + "/api/v1" + path, {
    method,
    headers: { "Content-Type": "application/json", ...(token ? { Authorization: "Bearer " + token } : {}), ...headers },
    body: body && JSON.stringify(body),
  });
  const json = res.status === 204 ? null : await res.json();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

// RFC 6238 code (SHA-1, 6 digits, 30 s) of a base32 secret.
export function totp(secret, at = Date.now()) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const c of secret.replace(/=+$/, "").toUpperCase()) bits += alphabet.indexOf(c).toString(2).padStart(5, "0");
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(at / 30000)));
  const h = createHmac("sha1", key).update(counter).digest();
  const o = h[h.length - 1] & 15;
  return String((h.readUInt32BE(o) & 0x7fffffff) % 1000000).padStart(6, "0");
}

/**
 * Posts a Stripe event to the api's webhook, signed as Stripe signs
 * (Stripe-Signature: t=<unix>,v1=HMAC-SHA256(secret, "<t>.<payload>")) with
 * the STRIPE_WEBHOOK_SECRET the api was started with. Returns the status.
 */
export async function stripeWebhook(event) {
  const payload = JSON.stringify(event);
  const t = Math.floor(Date.now() / 1000);
  const sig = createHmac("sha256", must("STRIPE_WEBHOOK_SECRET")).update(`${t}.${payload}`).digest("hex");
  const res = await fetch(base + "/api/v1/stripe/webhook", {
    method: "POST",
    headers: { "Content-Type": "application/json", "Stripe-Signature": `t=${t},v1=${sig}` },
    body: payload,
  });
  return res.status;
}

/**
 * Runs keelctl with the stack's owner settings (KEELCTL and the environment
 * e2e/web_test.go gives this process); returns its output, throws on a
 * non-zero exit.
 */
export function keelctl(...args) {
  return execFileSync(must("KEELCTL"), args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

/**
 * A verified user with an organization of their own, made through the API
 * (register, the mailed link, login, create, switch): { email, password,
 * token, orgId }. The token is for the new organization.
 */
export async function newAccount(prefix = "user", orgName = "Test Org") {
  const email = uniqueEmail(prefix);
  await api("POST", "/auth/register", null, { name: "Test " + prefix, email, password });
  const link = await mailedLink(email, /\/verify-email\?token=([A-Za-z0-9_-]+)/);
  for (let i = 0; ; i++) {
    try {
      await api("POST", "/auth/verify-email", null, { token: link });
      break;
    } catch (e) {
      if (i === 50) throw e; // the token's hash commits just after the mail
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  let s = await api("POST", "/auth/login", null, { email, password });
  const org = await api("POST", "/organizations", s.access_token, { name: orgName });
  s = await api("POST", "/auth/switch-org", s.access_token, { organization_id: org.id });
  return { email, password, token: s.access_token, orgId: org.id };
}

/** Logs in through the page (the 2FA step when code is given). */
export async function logIn(page, email, pass = password, code) {
  await page.goto(base + "/login");
  await page.getByLabel("Email", { exact: true }).fill(email);
  await page.getByLabel("Password", { exact: true }).fill(pass);
  await page.getByRole("button", { name: "Log in" }).click();
  if (code) {
    const field = page.getByLabel(/code/i).first();
    await field.fill(typeof code === "function" ? code() : code);
    await page.getByRole("button", { name: /verify|log in/i }).first().click();
  }
  await page.getByLabel("Organization", { exact: true }).waitFor();
}
