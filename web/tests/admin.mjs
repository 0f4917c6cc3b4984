// The admin suite (issue 13): the platform admin screens with 2FA, run by
// browser.mjs; see harness.mjs. A platform admin (keelctl admin grant, TOTP
// on, logged in through the page with a code) and an ordinary customer.
export default async function admin(h) {
  const { base, api, password, expectText } = h;
  const suite = await h.suite("admin");
  const { page, context, test } = suite;
  let adm, customer, customerId, secret, adminToken, stats;

  // A TOTP code works once (the API keeps the last step used) and is
  // accepted for the previous, current and next 30-second step. Each call
  // takes the next unused step the API will still accept when the request
  // lands (not the previous step in the last 5 s of a step), waiting for
  // the clock when three codes were already used in this window.
  let lastStep = 0;
  async function nextCode() {
    for (;;) {
      const now = Date.now();
      const step = Math.floor(now / 30000);
      const lowest = now % 30000 < 25000 ? step - 1 : step;
      const want = Math.max(lastStep + 1, lowest);
      if (want <= step + 1) {
        lastStep = want;
        return h.totp(secret, want * 30000);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /** A raw API call: its status and problem code, without throwing. */
  async function status(method, path, token, body) {
    const r = await fetch(base + "/api/v1" + path, {
      method,
      headers: { "Content-Type": "application/json", ...(token ? { Authorization: "Bearer " + token } : {}) },
      body: body && JSON.stringify(body),
    });
    const json = r.status === 204 ? null : await r.json().catch(() => null);
    return { status: r.status, code: json?.code ?? "", json };
  }

  const nav = () => page.getByRole("navigation", { name: "Main" });
  const sub = (name) => page.getByRole("navigation", { name: "Platform admin" }).getByRole("link", { name, exact: true });

  await test("a platform admin with 2FA logs in and gets the Admin link", async () => {
    adm = await h.newAccount("platform", "Admin Co");
    h.keelctl("admin", "grant", adm.email);
    const setup = await api("POST", "/auth/2fa/setup", adm.token);
    secret = setup.secret;
    for (let i = 0; ; i++) {
      try {
        await api("POST", "/auth/2fa/enable", adm.token, { code: await nextCode(), password });
        break;
      } catch (e) {
        if (i === 3) throw e;
      }
    }
    customer = await h.newAccount("customer", "Customer Co");
    customerId = (await api("GET", "/me", customer.token)).id;
    await api("POST", "/resources", customer.token, { name: "Customer widget" }, { "Idempotency-Key": crypto.randomUUID() });
    adminToken = (await api("POST", "/auth/login", null, { email: adm.email, password, totp_code: await nextCode() })).access_token;
    await h.logIn(page, adm.email, password, await nextCode());
    await nav().getByRole("link", { name: "Admin" }).waitFor();
  });

  await test("stats with a chart whose figures match the API", async () => {
    await nav().getByRole("link", { name: "Admin" }).click();
    await page.getByRole("heading", { name: "Platform admin" }).waitFor();
    const chart = page.getByRole("img", { name: "Sign-ups per day" });
    await chart.waitFor();
    stats = await api("GET", "/admin/stats", adminToken);
    const bars = chart.locator("rect");
    if ((await bars.count()) !== 30) throw new Error(`${await bars.count()} bars, want 30`);
    const values = await bars.evaluateAll((rs) => rs.map((r) => [Number(r.dataset.value), Number(r.getAttribute("height"))]));
    const want = stats.signups_per_day.map((d) => d.count);
    if (JSON.stringify(values.map((v) => v[0])) !== JSON.stringify(want)) throw new Error(`bars ${values.map((v) => v[0])} != API ${want}`);
    // Today has this suite's own sign-ups at least: its bar has a height.
    if (want[29] < 2 || !(values[29][1] > 0)) throw new Error(`today's bar ${values[29]} for ${want[29]} sign-ups`);
    const fig = async (name) => Number(await page.locator(`[data-figure=${name}]`).innerText());
    const expect = {
      signups: want.reduce((a, b) => a + b, 0), active: stats.active_organizations, trialing: stats.trialing_organizations,
      paying: stats.paying_organizations.total, churned: stats.churned_this_month, failed: stats.failed_payments_open,
    };
    for (const [k, v] of Object.entries(expect)) if ((await fig(k)) !== v) throw new Error(`${k}: page ${await fig(k)}, API ${v}`);
    // The same figures as a table for screen readers.
    const rows = await page.locator("[data-table=signups] tbody tr").evaluateAll((trs) => trs.map((tr) => tr.textContent));
    if (JSON.stringify(rows) !== JSON.stringify(stats.signups_per_day.map((d) => d.date + d.count))) throw new Error("table " + rows);
  });

  async function openUser(email) {
    await sub("Users").click();
    await page.getByLabel("Search users").fill(email);
    await page.getByRole("button", { name: "Search" }).click();
    await page.getByRole("link", { name: email }).click();
    await page.getByRole("heading", { name: email }).waitFor();
  }

  await test("find the customer, suspend their organization, lift it", async () => {
    await openUser(customer.email);
    await page.getByRole("link", { name: "Customer Co" }).click();
    await page.getByRole("heading", { name: "Customer Co" }).waitFor();
    await page.getByLabel("Reason for suspending").fill("Browser test: abuse report 17");
    await page.getByRole("button", { name: "Suspend organization" }).click();
    await expectText(page, "The organization is suspended.");
    await expectText(page, "Browser test: abuse report 17");
    // As documented: every member's token is refused, reads and writes alike.
    const read = await status("GET", "/me", customer.token);
    const list = await status("GET", "/resources", customer.token);
    const write = await status("POST", "/resources", customer.token, { name: "During suspension" });
    for (const [what, r] of Object.entries({ read, list, write }))
      if (r.status !== 403 || r.code !== "organization_suspended") throw new Error(`${what} while suspended: ${r.status} ${r.code}`);
    const detail = await api("GET", "/admin/organizations/" + customer.orgId, adminToken);
    if (!detail.suspended_at || detail.suspended_reason !== "Browser test: abuse report 17") throw new Error("not suspended: " + JSON.stringify(detail));

    await page.getByRole("button", { name: "Lift suspension" }).click();
    await expectText(page, "The suspension is lifted.");
    if ((await status("GET", "/me", customer.token)).status !== 200) throw new Error("the customer is still refused");
    if ((await status("GET", "/resources", customer.token)).status !== 200) throw new Error("the customer's list is still refused");
  });

  await test("disable an account and enable it again", async () => {
    const other = await h.newAccount("disabled", "Other Co");
    await openUser(other.email);
    await page.getByLabel("Reason for disabling").fill("Browser test: stolen password");
    await page.getByRole("button", { name: "Disable account" }).click();
    await expectText(page, "The account is disabled.");
    await expectText(page, "Browser test: stolen password");
    // As documented: the token stops at once, a login is refused.
    const me = await status("GET", "/me", other.token);
    if (me.status !== 401 || me.code !== "account_disabled") throw new Error(`GET /me of a disabled user: ${me.status} ${me.code}`);
    const login = await status("POST", "/auth/login", "", { email: other.email, password });
    if (login.status !== 403 || login.code !== "account_disabled") throw new Error(`login of a disabled user: ${login.status} ${login.code}`);
    // Support access is not offered for a disabled account.
    if (await page.getByRole("button", { name: "Start support access" }).count()) throw new Error("support access offered for a disabled user");
    await page.getByRole("button", { name: "Enable account" }).click();
    await expectText(page, "The account is enabled.");
    if ((await status("POST", "/auth/login", "", { email: other.email, password })).status !== 200) throw new Error("login refused after enabling");
  });

  await test("support access: the banner, the customer's data, and back to the admin", async () => {
    await openUser(customer.email);
    await page.getByLabel("Reason for support access").fill("Ticket 4521: cannot find the widget");
    // Registering made the customer an organization of their own too; act in Customer Co.
    await page.getByLabel("Organization to act in").selectOption({ label: "Customer Co" });
    await page.getByRole("button", { name: "Start support access" }).click();
    const banner = page.getByRole("region", { name: "Support access" });
    await banner.getByText(customer.email).waitFor();
    // The customer's own data, in the customer's organization.
    await page.getByRole("link", { name: "Customer widget" }).waitFor();
    // The switcher lists the customer's organizations once GET /organizations answers for the customer.
    await page.getByLabel("Organization", { exact: true }).locator("option:checked", { hasText: "Customer Co" }).waitFor({ state: "attached" });
    if (await nav().getByRole("link", { name: "Admin" }).count()) throw new Error("the Admin link shows under support access");
    // Every screen says so.
    await nav().getByRole("link", { name: "Team" }).click();
    await page.getByRole("main").getByText(customer.email).first().waitFor();
    await banner.waitFor();
    // The customer's organization's own log names both (owners read it).
    const log = await api("GET", "/organizations/current/audit-log?limit=50", customer.token);
    const started = log.data.find((e) => e.action === "support_access.started");
    if (!started || started.acting_for_user_id !== customerId || started.details?.reason !== "Ticket 4521: cannot find the widget")
      throw new Error("no support_access.started for the customer: " + JSON.stringify(log.data.map((e) => e.action)));
    if (!log.data.some((e) => e.action === "support_access.read")) throw new Error("no support_access.read row");

    await banner.getByRole("button", { name: "End support access" }).click();
    await page.getByRole("heading", { name: customer.email }).waitFor(); // the admin's view of the user again
    if (await banner.count()) throw new Error("the banner stayed");
    await nav().getByRole("link", { name: "Admin" }).waitFor();
    // The admin's own session survived (the refresh cookie was never replaced).
    await page.reload();
    await page.getByRole("heading", { name: customer.email }).waitFor();
    const current2 = await page.getByLabel("Organization", { exact: true }).locator("option:checked").innerText();
    if (current2.includes("Customer Co")) throw new Error("after support access the organization is " + current2);
  });

  await test("the admin audit log shows these actions", async () => {
    await sub("Audit log").click();
    await page.getByLabel("Action", { exact: true }).fill("admin.");
    await page.getByRole("button", { name: "Filter" }).click();
    for (const a of ["admin.organization_suspended", "admin.organization_unsuspended", "admin.support_access_started"])
      await page.locator("code.action", { hasText: a }).first().waitFor();
    await page.getByLabel("Action", { exact: true }).fill("support_access.started");
    await page.getByLabel("Organization ID", { exact: true }).fill(customer.orgId);
    await page.getByRole("button", { name: "Filter" }).click();
    await page.locator("li", { has: page.locator("code.action", { hasText: "support_access.started" }) })
      .getByText("Ticket 4521: cannot find the widget").first().waitFor();
    // The same through the API.
    const log = await api("GET", `/admin/audit-log?organization_id=${customer.orgId}&action=admin.&limit=50`, adminToken);
    const actions = log.data.map((e) => e.action);
    for (const a of ["admin.organization_suspended", "admin.organization_unsuspended"])
      if (!actions.includes(a)) throw new Error(`${a} missing from ${actions}`);
  });

  await test("the jobs page, and the queue monitor opens", async () => {
    await sub("Jobs").click();
    await page.getByRole("heading", { name: "Dead tasks" }).waitFor();
    const jobs = await api("GET", "/admin/jobs", adminToken);
    const dead = page.getByRole("button", { name: "Replay" });
    if (jobs.dead_tasks.length === 0) await expectText(page, "No dead task");
    else if ((await dead.count()) !== jobs.dead_tasks.length) throw new Error(`${await dead.count()} dead tasks shown, API ${jobs.dead_tasks.length}`);
    const [popup] = await Promise.all([
      context.waitForEvent("page"),
      page.getByRole("button", { name: "Open the queue monitor" }).click(),
    ]);
    await popup.waitForLoadState();
    await popup.waitForFunction(() => document.title === "Asynq - Monitoring");
    if (!popup.url().startsWith(base + "/admin/queues")) throw new Error("opened " + popup.url());
    await expectText(page, "Its session lasts until");
    suite.shot = popup; // the suite's screenshot is of the monitor
  });

  await test("an admin without 2FA is told to turn it on", async () => {
    const plain = await h.newAccount("admin-no2fa", "Plain Admin Co");
    h.keelctl("admin", "grant", plain.email);
    await page.getByRole("button", { name: "Log out", exact: true }).click();
    await page.getByLabel("Email", { exact: true }).waitFor();
    await h.logIn(page, plain.email);
    await nav().getByRole("link", { name: "Admin" }).click();
    const alert = page.getByRole("alert");
    await alert.getByRole("heading", { name: "Two-factor authentication required" }).waitFor();
    await alert.getByText("Platform admins must use two-factor authentication").waitFor();
  });

  await test("an ordinary user gets no Admin link and is refused /platform in words", async () => {
    await page.getByRole("button", { name: "Log out", exact: true }).click();
    await page.getByLabel("Email", { exact: true }).waitFor();
    const me = page.waitForResponse((r) => r.url().endsWith("/api/v1/me") && r.request().method() === "GET");
    await h.logIn(page, customer.email);
    const body = await (await me).json();
    if (body.platform_admin !== false) throw new Error("/me: " + JSON.stringify(body));
    await nav().getByRole("link", { name: "Account" }).waitFor();
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => r())));
    if (await nav().getByRole("link", { name: "Admin" }).count()) throw new Error("an ordinary user sees the Admin link");
    await page.goto(base + "/platform");
    const alert = page.getByRole("alert");
    await alert.getByRole("heading", { name: "Not a platform admin" }).waitFor();
    await alert.getByText("This needs a platform admin").waitFor();
  });
}
