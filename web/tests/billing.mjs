// The billing suite (issue 13): usage, the trial banner, Checkout completed
// by signed webhooks, past due, read-only and recovery. Run by browser.mjs;
// see harness.mjs. The events are built as Stripe delivers them (API
// version 2023-10-16, the shapes of internal/billing/stripeevent), with
// the organization's real Stripe customer (from the billing.checkout_started
// audit row) and Keel's metadata.org_id, and posted signed to the api's
// webhook; the real worker applies them.
import assert from "node:assert/strict";

// Stand-ins for Stripe's hosted pages: stripe-mock's URLs lead nowhere.
const stripePage = (title) =>
  `<!doctype html><html><head><title>${title}</title></head><body><h1>${title}</h1><p>Test stand-in.</p></body></html>`;

export default async function billing(h) {
  const s = await h.suite("billing");
  const { test, page } = s;
  const acct = await h.newAccount("billing", "Billing Org");
  const get = (path) => h.api("GET", path, acct.token);

  /** Polls GET /billing until ok(state) holds; returns the state. */
  async function billingUntil(what, ok, timeoutMs = 20000) {
    const deadline = Date.now() + timeoutMs;
    let b;
    while (Date.now() < deadline) {
      b = await get("/billing");
      if (ok(b)) return b;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`GET /billing never showed ${what}; last: ${JSON.stringify(b)}`);
  }
  const usageOf = async (metric) => (await get("/organizations/current/usage")).metrics.find((m) => m.metric === metric);

  // --- Stripe events, as Stripe sends them.
  let clock = Math.floor(Date.now() / 1000); // event times: one new second each, so they apply in order
  const tick = () => (clock = Math.max(clock + 1, Math.floor(Date.now() / 1000)));
  const ids = { customer: "", session: "", subscription: "", subCreated: 0, n: 0 };
  const short = acct.orgId.replace(/-/g, "");
  const invoiceID = (n) => `in_kw${short}${n}`;
  const meta = () => ({ org_id: acct.orgId });
  let plan = { price: "price_keel_pro_monthly", amount: 2900 }; // what the subscription charges
  const price = () => ({
    id: plan.price, object: "price", active: true, currency: "usd", product: "prod_keel",
    recurring: { interval: "month", interval_count: 1, usage_type: "licensed" }, type: "recurring",
    unit_amount: plan.amount, livemode: false,
  });
  const subscription = (f) => ({
    id: ids.subscription, object: "subscription", customer: ids.customer, status: f.status,
    created: ids.subCreated, start_date: ids.subCreated,
    current_period_start: f.periodStart, current_period_end: f.periodEnd,
    trial_start: f.trialEnd ? ids.subCreated : null, trial_end: f.trialEnd ?? null,
    cancel_at_period_end: false, canceled_at: null, ended_at: null, cancel_at: null,
    collection_method: "charge_automatically", currency: "usd", livemode: false, metadata: meta(), quantity: 1,
    discount: null,
    items: {
      object: "list", has_more: false, url: "/v1/subscription_items?subscription=" + ids.subscription,
      data: [{ id: "si_" + ids.subscription.slice(4), object: "subscription_item", price: price(), quantity: 1,
        subscription: ids.subscription, created: ids.subCreated }],
    },
  });
  const invoice = (f, paid) => ({
    id: f.id, object: "invoice", customer: ids.customer, subscription: ids.subscription, number: f.number,
    status: paid ? "paid" : "open", paid, currency: "usd", amount_due: f.amount, amount_paid: paid ? f.amount : 0,
    amount_remaining: paid ? 0 : f.amount, total: f.amount, subtotal: f.amount, attempt_count: f.attempts,
    attempted: true, billing_reason: f.amount === 0 ? "subscription_create" : "subscription_cycle",
    collection_method: "charge_automatically", created: f.created, period_start: f.periodStart, period_end: f.periodEnd,
    hosted_invoice_url: "https://invoice.stripe.com/i/acct_keel/test_" + f.id,
    invoice_pdf: "https://pay.stripe.com/invoice/acct_keel/test_" + f.id + "/pdf",
    livemode: false, metadata: {},
    status_transitions: { finalized_at: f.created, paid_at: paid ? clock : null, marked_uncollectible_at: null, voided_at: null },
    subscription_details: { metadata: meta() },
    next_payment_attempt: paid || f.final ? null : clock + 3 * 86400,
    lines: { object: "list", has_more: false, data: [{ id: "il_" + f.id.slice(3), object: "line_item", amount: f.amount,
      currency: "usd", price: price(), quantity: 1, type: "subscription",
      period: { start: f.periodStart, end: f.periodEnd } }] },
  });
  async function send(type, object) {
    const created = tick();
    const id = `evt_keelweb${acct.orgId.replace(/-/g, "").slice(0, 12)}${String(++ids.n).padStart(3, "0")}`;
    const status = await h.stripeWebhook({
      id, object: "event", api_version: "2023-10-16", created, livemode: false, pending_webhooks: 1, type,
      request: { id: null, idempotency_key: null }, data: { object: typeof object === "function" ? object() : object },
    });
    assert.equal(status, 200, `${type} ${id}: webhook answered ${status}`);
  }

  // Every page outside the app is Stripe's (Checkout, the portal): a stand-in.
  await page.route((url) => url.origin !== new URL(h.base).origin,
    (route) => route.fulfill({ contentType: "text/html", body: stripePage(s.stripeTitle || "Elsewhere") }));
  /** The JSON the API answers the page's next request to path (read on its way to the page). */
  async function answerOf(path) {
    let done;
    const got = new Promise((r) => (done = r));
    const handler = async (route) => {
      const res = await route.fetch();
      const body = await res.text();
      await route.fulfill({ response: res, body });
      done(JSON.parse(body));
    };
    await page.route(h.base + path, handler, { times: 1 });
    return { json: got };
  }
  await h.logIn(page, acct.email);
  // Registration made an organization of its own: work in newAccount's.
  const switcher = page.getByLabel("Organization", { exact: true });
  await switcher.selectOption(acct.orgId);
  await page.waitForFunction((id) => document.getElementById("org-switch")?.value === id, acct.orgId);
  await page.waitForURL(h.base + "/resources");

  await test("usage shows the organization's real figures", async () => {
    await page.goto(h.base + "/resources/new");
    await page.getByLabel("Name", { exact: true }).fill("First billed thing");
    await page.getByRole("button", { name: "Create" }).click();
    await page.waitForURL(/\/resources\/[0-9a-f-]{36}$/);
    assert.equal((await usageOf("resources")).used, 1);
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Usage" }).click();
    await page.getByRole("heading", { name: "Usage" }).waitFor();
    await h.expectText(page, "Pro");
    const resources = page.locator('[data-metric="resources"]');
    await resources.getByText(/^1 of 10[,.\u202f\u00a0 ]?000 \(<1%\)$/).waitFor();
    // Accessible: a meter with its figures, not only a coloured bar.
    const meter = resources.getByRole("meter", { name: "Resources" });
    assert.equal(await meter.getAttribute("aria-valuenow"), "1");
    assert.equal(await meter.getAttribute("aria-valuemax"), "10000");
    await page.locator('[data-metric="seats"]').getByText(/^1 of 20 \(5%\)$/).waitFor();
    await page.locator('[data-metric="storage_bytes"]').getByText(/^0 bytes of 10 GiB \(0%\)$/).waitFor();
    const api = await get("/organizations/current/usage");
    assert.equal(api.plan.id, "pro");
    assert.equal(api.metrics.find((m) => m.metric === "seats").used, 1);
  });

  await test("the trial banner counts the days and leads to billing", async () => {
    const b = await get("/billing");
    assert.equal(b.status, "trialing");
    assert.equal(b.interval, null);
    const days = Math.ceil((Date.parse(b.trial_end) - Date.now()) / 86400000);
    assert.equal(days, 14);
    await page.goto(h.base + "/resources");
    const banner = page.getByRole("status", { name: "Billing notice" });
    await banner.getByText(`Your Pro trial ends in ${days} days`).waitFor();
    await banner.getByRole("link", { name: "Choose a plan" }).click();
    await page.waitForURL(h.base + "/billing");
    await page.getByTestId("billing-status").getByText("Trial").waitFor();
    await page.getByText("No invoices yet").waitFor();
    // Leaving Checkout without paying (its cancel_url) says so and changes nothing.
    await page.goto(h.base + "/billing?checkout=canceled");
    await h.expectText(page, "Checkout was canceled: nothing was charged and your plan is unchanged.");
    assert.equal((await get("/billing")).status, "trialing");
  });

  await test("checkout completed by signed webhooks makes the organization active", async () => {
    // Stripe's pages are stood in for: the test sees where the app sends the browser.
    s.stripeTitle = "Stripe Checkout";
    const answer = await answerOf("/api/v1/billing/subscribe");
    await page.getByRole("listitem", { name: "Pro plan" }).getByRole("button", { name: "Subscribe to Pro" }).click();
    const { checkout_url: checkoutURL } = await answer.json;
    await page.getByRole("heading", { name: "Stripe Checkout" }).waitFor();
    assert.match(checkoutURL, /^https:\/\/checkout\.stripe\.com\//);
    assert.equal(page.url(), checkoutURL);
    const started = (await get("/organizations/current/audit-log?limit=50")).data.find((e) => e.action === "billing.checkout_started");
    assert.ok(started, "no billing.checkout_started in the audit log");
    assert.equal(started.details.plan, "pro");
    assert.equal(started.details.trial_days, 14); // the rest of the signup trial carries over
    ids.customer = started.details.customer;
    ids.session = started.details.session;
    assert.match(ids.customer, /^cus_/);
    ids.subscription = "sub_keelweb" + acct.orgId.replace(/-/g, "").slice(0, 16);

    // Stripe sends the browser back before Keel has heard from it: the page waits.
    await page.goto(h.base + "/billing?checkout=success");
    await h.expectText(page, "Waiting for Stripe to confirm the subscription");
    assert.equal(new URL(page.url()).search, "");

    ids.subCreated = tick();
    const trialEnd = ids.subCreated + 14 * 86400;
    const trialing = { status: "trialing", trialEnd, periodStart: ids.subCreated, periodEnd: trialEnd };
    await send("checkout.session.completed", {
      id: ids.session, object: "checkout.session", mode: "subscription", status: "complete", payment_status: "paid",
      customer: ids.customer, subscription: ids.subscription, client_reference_id: acct.orgId, metadata: meta(),
      livemode: false, created: ids.subCreated - 60, currency: "usd", amount_total: 0, allow_promotion_codes: true, url: null,
    });
    await send("customer.subscription.created", subscription(trialing));
    const trialInvoice = { id: invoiceID(0), number: "KEELWEB-0001", amount: 0, attempts: 0,
      created: ids.subCreated, periodStart: ids.subCreated, periodEnd: ids.subCreated };
    await send("invoice.paid", () => invoice(trialInvoice, true));
    await page.getByText("You are subscribed to Pro. The trial runs until").waitFor();
    let b = await billingUntil("the Stripe trial", (x) => x.status === "trialing" && x.interval === "month");
    assert.equal(b.plan.id, "pro");
    assert.equal(Math.round(Date.parse(b.trial_end) / 1000), trialEnd);
    // The signup trial's banner is gone: the trial is Stripe's now.
    await page.reload();
    await page.getByTestId("billing-status").getByText("Trial").waitFor();
    await page.locator('[data-billing-state="trialing"]').waitFor({ state: "attached" });
    assert.equal(await page.locator(".billing-banner").count(), 0);

    // The trial ends: Stripe charges the first invoice and the subscription turns active.
    const periodStart = tick();
    const active = { status: "active", periodStart, periodEnd: periodStart + 30 * 86400 };
    const first = { id: invoiceID(1), number: "KEELWEB-0002", amount: 2900, attempts: 1,
      created: periodStart, periodStart, periodEnd: active.periodEnd };
    await send("customer.subscription.updated", subscription(active));
    await send("invoice.paid", () => invoice(first, true));
    await send("invoice.payment_succeeded", () => invoice(first, true));
    b = await billingUntil("active", (x) => x.status === "active" && x.invoices.some((i) => i.id === first.id));
    assert.equal(b.grace_until, null);
    // Back on /billing (polling the page, as a user reloading it would).
    await page.goto(h.base + "/billing");
    await page.getByTestId("billing-status").getByText("Active").waitFor();
    await h.expectText(page, "Pro, billed monthly");
    const row = page.locator(`[data-invoice="${first.id}"]`);
    await row.getByText("$29.00").waitFor();
    await row.getByText("Paid").waitFor();
    assert.equal(await row.getByRole("link", { name: "View invoice KEELWEB-0002" }).getAttribute("href"),
      "https://invoice.stripe.com/i/acct_keel/test_" + first.id);
    // The current plan offers no "Change to Pro"; another plan is a change.
    await page.getByRole("listitem", { name: "Business plan" }).getByRole("button", { name: "Change to Business" }).waitFor();
    assert.equal(await page.getByRole("button", { name: /to Pro$/ }).count(), 0);
    await page.locator('[data-billing-state="active"]').waitFor({ state: "attached" });
    assert.equal(await page.locator(".billing-banner").count(), 0);
    s.renewal = { ...active, periodStart: active.periodEnd, periodEnd: active.periodEnd + 30 * 86400 };
  });

  let failed;
  await test("a failed payment shows the past-due banner and opens the portal", async () => {
    const r = s.renewal;
    failed = { id: invoiceID(2), number: "KEELWEB-0003", amount: 2900, attempts: 1,
      created: tick(), periodStart: r.periodStart, periodEnd: r.periodEnd };
    await send("invoice.payment_failed", () => invoice(failed, false));
    await send("customer.subscription.updated", subscription({ ...r, status: "past_due" }));
    // The worker may apply the two in either order; once both are, the grace
    // period (10 days in plans.yaml) runs from the invoice's first attempt.
    const graceEnd = (failed.created + 10 * 86400) * 1000;
    const b = await billingUntil("past_due with 10 days of grace from the failed invoice",
      (x) => x.status === "past_due" && Date.parse(x.grace_until) === graceEnd && x.invoices.some((i) => i.id === failed.id));
    await page.goto(h.base + "/resources");
    const banner = page.getByRole("alert", { name: "Billing notice" });
    await banner.getByText("A payment failed.").waitFor();
    // The date as the browser words it (its locale, not Node's).
    const graceDate = await page.evaluate((iso) => new Date(iso).toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" }), b.grace_until);
    await banner.getByText(graceDate).waitFor();
    // Past due still writes.
    await page.goto(h.base + "/resources/new");
    await page.getByLabel("Name", { exact: true }).fill("Written while past due");
    await page.getByRole("button", { name: "Create" }).click();
    await page.waitForURL(/\/resources\/[0-9a-f-]{36}$/);
    assert.equal((await usageOf("resources")).used, 2);
    // The banner's button opens Stripe's Billing Portal (stood in for;
    // stripe-mock's portal URL is on a host that does not resolve).
    s.stripeTitle = "Stripe Billing Portal";
    const answer = await answerOf("/api/v1/billing/portal");
    await page.getByRole("alert", { name: "Billing notice" }).getByRole("button", { name: "Fix payment in the billing portal" }).click();
    const { portal_url: portalURL } = await answer.json;
    await page.getByRole("heading", { name: "Stripe Billing Portal" }).waitFor();
    assert.match(portalURL, /^https:\/\//);
    assert.equal(page.url(), new URL(portalURL).href); // the browser percent-encodes stripe-mock's {SESSION_SECRET}
    await page.goBack();
    await page.getByRole("alert", { name: "Billing notice" }).getByText("A payment failed.").waitFor();
    await page.goto(h.base + "/billing");
    await page.getByTestId("billing-status").getByText("Payment failed (past due)").waitFor();
    await page.locator(`[data-invoice="${failed.id}"]`).getByText("Open (not paid), payment failed (1 attempt)").waitFor();
  });

  await test("unpaid after the last retry: read-only, and a write shows why", async () => {
    // Stripe's last retry fails and (with "mark the subscription unpaid")
    // the subscription turns unpaid: Keel makes the organization read-only.
    const r = s.renewal;
    await send("invoice.payment_failed", () => invoice({ ...failed, attempts: 4, final: true }, false));
    await send("customer.subscription.updated", subscription({ ...r, status: "unpaid" }));
    await billingUntil("read_only", (x) => x.status === "read_only");
    await page.goto(h.base + "/resources/new");
    const banner = page.getByRole("alert", { name: "Billing notice" });
    await banner.getByText("This organization is read-only: its payment is overdue.").waitFor();
    await page.getByLabel("Name", { exact: true }).fill("Refused while read-only");
    await page.getByRole("button", { name: "Create" }).click();
    await page.getByRole("alert").filter({ hasText: "This organization's payment is overdue, so it is read-only until the invoice is paid." }).waitFor();
    assert.match(page.url(), /\/resources\/new$/);
    assert.equal((await usageOf("resources")).used, 2); // nothing was written
    const list = await get("/resources?q=Refused");
    assert.equal(list.data.length, 0);
  });

  await test("paying the invoice brings the organization back", async () => {
    const r = s.renewal;
    await send("invoice.paid", () => invoice({ ...failed, attempts: 5 }, true));
    await send("customer.subscription.updated", subscription({ ...r, status: "active" }));
    const b = await billingUntil("active again", (x) => x.status === "active");
    assert.equal(b.grace_until, null);
    assert.equal(b.invoices.find((i) => i.id === failed.id).status, "paid");
    await page.goto(h.base + "/resources/new");
    await page.getByLabel("Name", { exact: true }).fill("Written after paying");
    await page.getByRole("button", { name: "Create" }).click();
    await page.waitForURL(/\/resources\/[0-9a-f-]{36}$/);
    await page.locator('[data-billing-state="active"]').waitFor({ state: "attached" });
    assert.equal(await page.locator(".billing-banner").count(), 0);
    assert.equal((await usageOf("resources")).used, 3);
    await page.goto(h.base + "/billing");
    await page.getByTestId("billing-status").getByText("Active").waitFor();
    await page.locator(`[data-invoice="${failed.id}"]`).getByText("Paid").waitFor();
    await page.locator('[data-billing-state="active"]').waitFor({ state: "attached" });
    assert.equal(await page.locator(".billing-banner").count(), 0);
  });

  await test("an upgrade is requested in the page and applied by Stripe's events", async () => {
    await page.goto(h.base + "/billing");
    const answer = await answerOf("/api/v1/billing/subscribe");
    await page.getByRole("listitem", { name: "Business plan" }).getByRole("button", { name: "Change to Business" }).click();
    assert.deepEqual((await answer.json).change, { plan: "business", interval: "month", effective: "now" });
    await h.expectText(page, "Changing to Business (monthly) now. Waiting for Stripe to confirm");
    const requested = (await get("/organizations/current/audit-log?limit=50")).data.find((e) => e.action === "billing.plan_change_requested");
    assert.ok(requested, "no billing.plan_change_requested in the audit log");
    // Stripe applies it (the worker's billing:change-plan call, stripe-mock
    // here) and reports the subscription and the proration invoice.
    plan = { price: "price_keel_business_monthly", amount: 4900 };
    const r = s.renewal;
    const proration = { id: invoiceID(3), number: "KEELWEB-0004", amount: 2000, attempts: 1, created: tick(),
      periodStart: r.periodStart, periodEnd: r.periodEnd };
    await send("customer.subscription.updated", subscription({ ...r, status: "active" }));
    await send("invoice.paid", () => invoice(proration, true));
    await h.expectText(page, "You are subscribed to Business, billed monthly.");
    const b = await billingUntil("business", (x) => x.plan.id === "business" && x.invoices.some((i) => i.id === proration.id));
    assert.equal(b.status, "active");
    await page.getByTestId("billing-plan").getByText("Business, billed monthly").waitFor();
    await page.locator(`[data-invoice="${proration.id}"]`).getByText("$20.00").waitFor();
  });

  await test("a canceled subscription falls back to the free plan, with its banner", async () => {
    const r = s.renewal;
    await send("customer.subscription.deleted", () => ({ ...subscription({ ...r, status: "canceled" }), canceled_at: clock, ended_at: clock }));
    const b = await billingUntil("canceled", (x) => x.status === "canceled");
    assert.equal(b.plan.id, "free");
    await page.goto(h.base + "/usage");
    const banner = page.getByRole("status", { name: "Billing notice" });
    await banner.getByText("The subscription was canceled.").waitFor();
    await banner.getByText("on the Free plan").waitFor();
    await page.getByTestId("usage-plan").getByText("Free").waitFor();
    await page.locator('[data-metric="resources"]').getByText(/^3 of 100 \(3%\)$/).waitFor();
    const usage = await get("/organizations/current/usage");
    assert.equal(usage.plan.id, "free");
    assert.equal(usage.metrics.find((m) => m.metric === "resources").limit, 100);
  });

  await test("a member sees the billing state, not the owners' buttons", async () => {
    const email = h.uniqueEmail("billing-member");
    await h.api("POST", "/organizations/current/invitations", acct.token, { email, role: "member" });
    const token = await h.mailedLink(email, /accept-invitation\?token=([A-Za-z0-9_-]+)/);
    let joined;
    for (let i = 0; ; i++) {
      try {
        joined = await h.api("POST", "/invitations/accept", null, { token, name: "Billing Member", password: h.password });
        break;
      } catch (e) {
        if (i === 50) throw e; // the token's hash commits just after the mail
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    assert.equal(joined.role, "member");
    // The API refuses a member the portal (the page offers no button for it).
    const refused = await fetch(h.base + "/api/v1/billing/portal", {
      method: "POST", headers: { Authorization: "Bearer " + joined.session.access_token } });
    assert.equal(refused.status, 403);
    const context = await h.launch();
    const p = context.pages()[0] ?? (await context.newPage());
    s.shot = p;
    await h.logIn(p, email);
    await p.goto(h.base + "/billing");
    await p.getByTestId("billing-status").getByText("Canceled").waitFor();
    await p.getByText("Only an owner of the organization can choose a plan or manage payment").first().waitFor();
    await p.getByRole("heading", { name: "Invoices" }).waitFor();
    assert.equal(await p.getByRole("button", { name: /Subscribe|Change to|Manage payment|billing portal/ }).count(), 0);
    await p.getByRole("status", { name: "Billing notice" }).getByText("The subscription was canceled.").waitFor();
  });
}
