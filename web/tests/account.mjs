// The account suite (issue 13): account settings (name, password, 2FA with
// its QR code and recovery codes, email change through the mailed link)
// and the organization's audit log, on one account of its own. The tests
// build on each other. Run by browser.mjs; see harness.mjs.
import { readFileSync } from "node:fs";
import { join } from "node:path";

export default async function account(h) {
  const { base, api, expectText, totp } = h;
  const { page, context, test } = await h.suite("account");
  const acct = await h.newAccount("acct", "Account Org");
  const newPassword = "a brand new browser passphrase";
  const newEmail = h.uniqueEmail("acct-moved");
  let secret = "";
  let codes = [];
  let tok2 = ""; // a login made after the password change, before 2FA

  /** A fresh access token for the account, through the API. */
  async function token(email = acct.email, pass = newPassword, org = acct.orgId) {
    const s = await api("POST", "/auth/login", null, { email, password: pass });
    return (await api("POST", "/auth/switch-org", s.access_token, { organization_id: org })).access_token;
  }
  const form = (name) => page.getByRole("form", { name });
  const fieldError = (f, label) => f.locator(".field", { has: page.getByLabel(label, { exact: true }) }).locator(".field-error");

  await test("account: change the name", async () => {
    await h.logIn(page, acct.email, acct.password);
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Account" }).click();
    await page.getByRole("heading", { name: "Account", level: 1 }).waitFor();
    const profile = form("Profile");
    if ((await profile.getByLabel("Name", { exact: true }).inputValue()) !== "Test acct") throw new Error("the name field does not show the name");
    await profile.getByLabel("Name", { exact: true }).fill("Ada Account");
    await profile.getByRole("button", { name: "Save name" }).click();
    await expectText(page, "Your name is saved.");
    const me = await api("GET", "/me", acct.token);
    if (me.name !== "Ada Account") throw new Error("GET /me says the name is " + me.name);
    await page.reload();
    await form("Profile").getByLabel("Name", { exact: true }).waitFor();
    if ((await form("Profile").getByLabel("Name", { exact: true }).inputValue()) !== "Ada Account") throw new Error("the name is not shown after a reload");
  });

  await test("account: change the password", async () => {
    const f = form("Change password");
    // A wrong current password: the API's 403 next to the field it is about.
    await f.getByLabel("Current password", { exact: true }).fill("not my password at all");
    await f.getByLabel("New password", { exact: true }).fill(newPassword);
    await f.getByRole("button", { name: "Change password" }).click();
    await fieldError(f, "Current password").waitFor();
    // A new password too short: the API's field error next to it.
    await f.getByLabel("Current password", { exact: true }).fill(acct.password);
    await f.getByLabel("New password", { exact: true }).fill("short");
    await f.getByRole("button", { name: "Change password" }).click();
    await fieldError(f, "New password").waitFor();
    await f.getByLabel("New password", { exact: true }).fill(newPassword);
    await f.getByRole("button", { name: "Change password" }).click();
    await expectText(page, "Your password is changed.");
    // The old password no longer logs in; the new one does; this page stays signed in.
    await api("POST", "/auth/login", null, { email: acct.email, password: acct.password }).then(
      () => { throw new Error("the old password still logs in"); },
      (e) => { if (!String(e).includes("401")) throw e; },
    );
    tok2 = await token();
    await page.reload();
    await form("Profile").waitFor();
  });

  await test("account: set up two-factor authentication", async () => {
    await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: base });
    await page.getByRole("button", { name: "Set up two-factor authentication" }).click();
    // The QR code (an SVG drawn from the otpauth URI, its library loaded on demand) is drawn.
    const qr = page.getByRole("img", { name: "QR code for your authenticator app" });
    await qr.waitFor();
    const box = await qr.boundingBox();
    const modules = (await qr.locator("path").getAttribute("d")).split("M").length - 1;
    if (!box || box.width < 100 || box.height < 100 || modules < 200) throw new Error(`QR code ${JSON.stringify(box)} with ${modules} dark modules`);
    secret = (await page.getByTestId("totp-secret").innerText()).trim();
    if (!/^[A-Z2-7]{16,}=*$/.test(secret)) throw new Error("the secret on the page is " + secret);

    await page.screenshot({ path: join(h.artifacts, "account-2fa-qr-code.png"), fullPage: true });
    const f = form("Turn on two-factor authentication");
    // A wrong code: the API's refusal next to the code field.
    await f.getByLabel("Code from the app", { exact: true }).fill("000000");
    await f.getByLabel("Your password", { exact: true }).fill(newPassword);
    await f.getByRole("button", { name: "Turn on" }).click();
    await fieldError(f, "Code from the app").waitFor();
    await f.getByLabel("Code from the app", { exact: true }).fill(totp(secret));
    await f.getByRole("button", { name: "Turn on" }).click();

    const list = page.getByRole("list", { name: "Recovery codes" });
    await list.waitFor();
    codes = (await list.locator("li").allInnerTexts()).map((c) => c.trim());
    if (codes.length !== 10 || new Set(codes).size !== 10) throw new Error("recovery codes: " + codes.join(", "));
    await page.screenshot({ path: join(h.artifacts, "account-2fa-recovery-codes.png"), fullPage: true });
    // Copy puts exactly them on the clipboard; the download holds them too.
    await page.getByRole("button", { name: "Copy" }).click();
    await expectText(page, "Copied to the clipboard.");
    const clip = await page.evaluate(() => navigator.clipboard.readText());
    if (clip.trim().split("\n").join(",") !== codes.join(",")) throw new Error("the clipboard holds " + clip);
    const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Download as .txt" }).click()]);
    if (download.suggestedFilename() !== "keel-recovery-codes.txt") throw new Error("downloaded " + download.suggestedFilename());
    const file = readFileSync(await download.path(), "utf8");
    if (file.trim().split("\n").join(",") !== codes.join(",")) throw new Error("the downloaded file holds " + file);
    await page.getByRole("button", { name: "I have stored them" }).click();
    await expectText(page, "Two-factor authentication is on. Log-ins now ask for a code");
    if ((await list.count()) !== 0) throw new Error("the recovery codes are still shown");
    const me = await api("GET", "/me", tok2);
    if (!me.totp_enabled) throw new Error("GET /me says 2FA is off");
    // The API now asks for a code.
    await api("POST", "/auth/login", null, { email: acct.email, password: newPassword }).then(
      () => { throw new Error("logged in without a code"); },
      (e) => { if (!String(e).includes("totp_required")) throw e; },
    );
  });

  const logOut = async () => {
    await page.getByRole("button", { name: "Log out", exact: true }).click();
    await page.getByRole("heading", { name: "Log in" }).waitFor();
  };
  /** Logs in through the page up to the code, and submits code. */
  async function logInWithCode(code) {
    await page.goto(base + "/login");
    await page.getByLabel("Email", { exact: true }).fill(acct.email);
    await page.getByLabel("Password", { exact: true }).fill(newPassword);
    await page.getByRole("button", { name: "Log in" }).click();
    await page.getByLabel("Authentication code", { exact: true }).fill(code);
    await page.getByRole("button", { name: "Log in" }).click();
  }

  await test("account: log in with a TOTP code, then with a recovery code once", async () => {
    await logOut();
    // The code that turned 2FA on is spent for its 30-second step; the API
    // accepts the next step's code (±1 step for clock drift).
    await logInWithCode(totp(secret, Date.now() + 30000));
    await page.getByLabel("Organization", { exact: true }).waitFor();
    await logOut();
    await logInWithCode(codes[0].toLowerCase()); // case and dashes do not matter
    await page.getByLabel("Organization", { exact: true }).waitFor();
    await logOut();
    // The same recovery code is refused a second time, in words.
    await logInWithCode(codes[0]);
    await page.getByRole("alert").waitFor();
    if (await page.getByLabel("Organization", { exact: true }).isVisible()) throw new Error("a used recovery code logged in");
    await page.getByLabel("Authentication code", { exact: true }).fill(codes[1]);
    await page.getByRole("button", { name: "Log in" }).click();
    await page.getByLabel("Organization", { exact: true }).waitFor();
  });

  await test("account: change the email through the mailed link", async () => {
    await page.goto(base + "/account");
    const f = form("Change email");
    await f.getByLabel("New email", { exact: true }).fill(newEmail);
    await f.getByLabel("Current password", { exact: true }).fill(newPassword);
    await f.getByRole("button", { name: "Send confirmation link" }).click();
    await expectText(page, `We sent a confirmation link to ${newEmail}`);
    // The tab remembers the pending change over a reload.
    await page.reload();
    await expectText(page, `We sent a confirmation link to ${newEmail}`);
    // Not changed until the link is followed.
    if ((await api("GET", "/me", tok2)).email !== acct.email) throw new Error("the email changed before the link was followed");
    const link = await h.mailedLink(newEmail, /(http:\/\/\S+\/verify-email\?token=[A-Za-z0-9_-]+)/);
    if (!link.startsWith(base + "/")) throw new Error("the link does not open the app: " + link);
    await h.openMailedLink(page, link, "Your email address is verified.");
    await page.goto(base + "/account");
    await page.getByTestId("current-email").getByText(newEmail).waitFor();
    if (await page.getByText("We sent a confirmation link").isVisible()) throw new Error("the change still shows as pending");
    if ((await api("GET", "/me", tok2)).email !== newEmail) throw new Error("GET /me does not have the new email");
    // Log-ins now take the new address.
    await api("POST", "/auth/login", null, { email: newEmail, password: newPassword, totp_code: codes[2] });
  });

  await test("account: turn two-factor authentication off", async () => {
    const f = form("Turn off two-factor authentication");
    await f.getByLabel("Your password", { exact: true }).fill(newPassword);
    await f.getByLabel("Code from the app or a recovery code", { exact: true }).fill(codes[0]); // used already
    await f.getByRole("button", { name: "Turn off two-factor authentication" }).click();
    await fieldError(f, "Code from the app or a recovery code").waitFor();
    await f.getByLabel("Code from the app or a recovery code", { exact: true }).fill(codes[3]);
    await f.getByRole("button", { name: "Turn off two-factor authentication" }).click();
    await expectText(page, "Two-factor authentication is off.");
    await page.getByRole("button", { name: "Set up two-factor authentication" }).waitFor();
    if ((await api("GET", "/me", tok2)).totp_enabled) throw new Error("GET /me says 2FA is still on");
  });

  await test("audit log: the account's actions in words, filters and Load more", async () => {
    // The organization the page is in (the login starts in the oldest one).
    const org = await page.getByLabel("Organization", { exact: true }).inputValue();
    const tok = await token(newEmail, newPassword, org);
    // More than a page (20): resources made through the API.
    for (let i = 0; i < 20; i++) await api("POST", "/resources", tok, { name: `Audit filler ${i}` });
    // Every entry the API holds, through its own paging.
    const all = [];
    for (let cursor = ""; ;) {
      const p = await api("GET", "/organizations/current/audit-log?limit=100" + (cursor ? "&cursor=" + cursor : ""), tok);
      all.push(...p.data);
      if (!p.next_cursor) break;
      cursor = p.next_cursor;
    }
    if (all.length <= 20) throw new Error(`only ${all.length} entries`);

    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Audit log" }).click();
    const list = page.getByRole("list", { name: "Audit entries" });
    await list.waitFor();
    const items = list.locator("li");
    const who = `Ada Account (${newEmail})`;
    await list.getByText(`${who} created the resource “Audit filler 19”.`).waitFor();
    await list.getByText(/IP (127\.0\.0\.1|::1)/).first().waitFor();
    if ((await items.count()) !== 20) throw new Error(`first page shows ${await items.count()} entries`);

    // Load more until the end: the page then holds exactly the API's entries, in order.
    // (rows and the loading flag change in one render, so once the count
    // grew, "Load more" is there exactly when the API gave a next cursor)
    while (await page.getByRole("button", { name: "Load more" }).isVisible()) {
      const n = await items.count();
      await page.getByRole("button", { name: "Load more" }).click();
      await page.waitForFunction((n) => document.querySelectorAll('[aria-label="Audit entries"] li').length > n, n);
    }
    // The account's own events, older than the resources, came with the later pages.
    for (const what of [
      "changed their password",
      "turned on two-factor authentication",
      "turned off two-factor authentication",
      "asked to change their email address",
      "changed their email address (confirmed through the link)",
      "logged in",
    ]) {
      await list.getByText(`${who} ${what}.`).first().waitFor();
    }
    const shown = await items.evaluateAll((lis) => lis.map((li) => li.getAttribute("data-action")));
    const want = all.map((e) => e.action);
    if (shown.join(",") !== want.join(",")) throw new Error(`the page shows ${shown.length} entries, the API holds ${want.length}`);

    // Filter by action: exactly the API's one password change.
    await page.getByLabel("Action", { exact: true }).selectOption("user.password_changed");
    await page.getByRole("button", { name: "Filter", exact: true }).click();
    await page.getByRole("button", { name: "Clear filters" }).waitFor();
    await page.waitForFunction(() => [...document.querySelectorAll('[aria-label="Audit entries"] li')].every((li) => li.getAttribute("data-action") === "user.password_changed"));
    if ((await items.count()) !== 1) throw new Error(`${await items.count()} password changes shown`);
    // Action and actor combined: the user's own logins, as many as the API holds.
    const me = await api("GET", "/me", tok);
    const logins = all.filter((e) => e.action === "user.login" && e.actor_user_id === me.id).length;
    await page.getByLabel("Action", { exact: true }).selectOption("user.login");
    await page.getByLabel("Done by", { exact: true }).selectOption({ label: who });
    await page.getByRole("button", { name: "Filter", exact: true }).click();
    await page.waitForFunction(() => [...document.querySelectorAll('[aria-label="Audit entries"] li')].every((li) => li.getAttribute("data-action") === "user.login"));
    if (logins < 3 || (await items.count()) !== logins) throw new Error(`${await items.count()} logins shown, the API holds ${logins}`);
    await page.getByLabel("Done by", { exact: true }).selectOption("");
    // A day range with nothing in it: the empty state.
    await page.getByLabel("Action", { exact: true }).selectOption("");
    await page.getByLabel("From (day)", { exact: true }).fill("2020-01-01");
    await page.getByLabel("To (day, included)", { exact: true }).fill("2020-01-02");
    await page.getByRole("button", { name: "Filter", exact: true }).click();
    await expectText(page, "No entry matches these filters.");
    await page.getByRole("button", { name: "Clear filters" }).click();
    await list.getByText(`${who} created the resource “Audit filler 19”.`).waitFor();
  });

  await test("audit log: a member is told why it is not for them", async () => {
    // A member of "Account Org": invited by the owner, accepted through the API.
    const owner = await token(newEmail, newPassword, acct.orgId);
    const mate = await h.newAccount("acct-mate", "Mate Org");
    await api("POST", "/organizations/current/invitations", owner, { email: mate.email, role: "member" });
    const inv = await h.mailedLink(mate.email, /accept-invitation\?token=([A-Za-z0-9_-]+)/);
    for (let i = 0; ; i++) {
      try {
        await api("POST", "/invitations/accept", mate.token, { token: inv });
        break;
      } catch (e) {
        if (i === 50) throw e; // the token's hash commits just after the mail
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    // The API refuses the member.
    const s = await api("POST", "/auth/login", null, { email: mate.email, password: mate.password });
    const mateTok = (await api("POST", "/auth/switch-org", s.access_token, { organization_id: acct.orgId })).access_token;
    await api("GET", "/organizations/current/audit-log", mateTok).then(
      () => { throw new Error("a member read the audit log"); },
      (e) => { if (!String(e).includes("403")) throw e; },
    );
    // The page says why, and shows no entries.
    await logOut();
    await h.logIn(page, mate.email, mate.password);
    await page.getByLabel("Organization", { exact: true }).selectOption(acct.orgId);
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Audit log" }).click();
    await expectText(page, "The audit log is for the organization's admins and owners");
    if (await page.getByRole("list", { name: "Audit entries" }).isVisible()) throw new Error("a member is shown entries");
  });
}
