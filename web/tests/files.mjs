// The files suite: a resource's files uploaded from the page straight to
// S3 (presigned PUT, bucket CORS, the app's CSP), the worker's verdict,
// thumbnails and downloads, refused uploads, deletes, and the plan's
// storage and resource limits. One account throughout; run by browser.mjs.
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deflateSync } from "node:zlib";

// CRC-32 (PNG's chunk checksum); zlib.crc32 is missing from Node 18.
const crcTable = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** A real RGB PNG of w×h noisy pixels (noise does not compress: a few hundred KB). */
function png(w, h) {
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, "ascii"), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(td));
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // truecolour
  const noise = randomBytes(w * h * 3);
  const raw = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++) {
    raw[y * (w * 3 + 1)] = 0; // filter: none
    for (let x = 0; x < w * 3; x++) {
      // A diagonal gradient under the noise, so the thumbnail shows something.
      raw[y * (w * 3 + 1) + 1 + x] = (((x / 3 + y) * 255) / (w + h) + (noise[y * w * 3 + x] & 63)) & 255;
    }
  }
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk("IHDR", ihdr), chunk("IDAT", deflateSync(raw)),
    chunk("IEND", Buffer.alloc(0))]);
}

const sha256 = (b) => createHash("sha256").update(b).digest("hex");

export default async function files(h) {
  const { api, expectText } = h;
  const { page, context, test } = await h.suite("files");
  const dir = mkdtempSync(join(tmpdir(), "keel-files-"));
  const acct = await h.newAccount("files", "Files Co");
  const image = png(420, 300);
  let resourceId = "";
  let imageFile = null;
  const fileInput = () => page.getByLabel("File to upload", { exact: true });
  const uploadButton = () => page.getByRole("button", { name: "Upload", exact: true });
  const listed = async () => (await api("GET", `/resources/${resourceId}/files?limit=100`, acct.token)).data;
  const usage = async (metric) =>
    (await api("GET", "/organizations/current/usage", acct.token)).metrics.find((m) => m.metric === metric);
  // The upload is slowed to 256 KiB/s so the progress bar has time to move
  // on loopback (Chromium's network emulation throttles request bodies).
  const cdp = await context.newCDPSession(page);
  await cdp.send("Network.enable");
  const throttle = (bytesPerSecond) =>
    cdp.send("Network.emulateNetworkConditions", { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: bytesPerSecond });

  /** Samples the progress bar until it goes away; returns the [value, max] pairs seen. */
  async function watchProgress() {
    const bar = page.locator("progress#upload-progress");
    await bar.waitFor();
    const seen = [];
    while (await bar.isVisible().catch(() => false)) {
      const v = await bar.evaluate((p) => [p.value, p.max]).catch(() => null);
      if (v) seen.push(v);
      await new Promise((r) => setTimeout(r, 40));
    }
    return seen;
  }

  await test("upload an image with a progress bar, see its thumbnail and download it", async () => {
    const resource = await api("POST", "/resources", acct.token, { name: "Widget with files" });
    resourceId = resource.id;
    await h.logIn(page, acct.email);
    // Registering made a personal organization too: switch to acct's,
    // whose list (shown once the switch is done) has the resource.
    await page.getByLabel("Organization", { exact: true }).selectOption(acct.orgId);
    await page.getByRole("link", { name: "Widget with files" }).click();
    await expectText(page, "Edit Widget with files");
    await expectText(page, "No files yet");
    // One billing notice after the switch: the banner and the screen were
    // once keyed alike, which left the first organization's banner behind.
    await page.locator("[data-billing-state]").first().waitFor({ state: "attached" });
    const notices = await page.locator("[data-billing-state]").count();
    if (notices !== 1) throw new Error(`${notices} billing notices after switching organizations`);

    await fileInput().setInputFiles({ name: "photo.png", mimeType: "image/png", buffer: image });
    await throttle(256 * 1024);
    await uploadButton().click();
    const seen = await watchProgress();
    await throttle(-1);
    const max = seen[0]?.[1];
    if (max !== image.length) throw new Error(`progress max ${max}, want the file's ${image.length} bytes`);
    if (!seen.some(([v]) => v > 0 && v < max)) throw new Error("the progress bar never showed a part: " + JSON.stringify(seen));
    await expectText(page, "photo.png is uploaded and ready.");

    // The API holds exactly the bytes sent, checked by the worker.
    const [f] = await listed();
    imageFile = await api("GET", `/files/${f.id}`, acct.token);
    if (imageFile.status !== "ready" || imageFile.sha256 !== sha256(image) || imageFile.size !== image.length ||
      imageFile.detected_content_type !== "image/png" || !imageFile.thumbnail)
      throw new Error("stored file: " + JSON.stringify(imageFile));

    // The thumbnail, from the bucket's origin (CSP img-src), really loaded.
    const thumb = page.getByRole("img", { name: "Thumbnail of photo.png" });
    await thumb.waitFor();
    const size = await page.waitForFunction((img) => img.complete && img.naturalWidth > 0 && [img.naturalWidth, img.naturalHeight],
      await thumb.elementHandle()).then((r) => r.jsonValue());
    if (Math.max(...size) > 256 || size[0] !== 256) throw new Error("thumbnail is " + size.join("×"));

    // The download link: the presigned GET, named by Content-Disposition.
    const [download] = await Promise.all([page.waitForEvent("download"),
      page.getByRole("link", { name: "Download photo.png" }).click()]);
    if (download.suggestedFilename() !== "photo.png") throw new Error("downloaded as " + download.suggestedFilename());
    const got = readFileSync(await download.path());
    if (sha256(got) !== sha256(image)) throw new Error(`downloaded ${got.length} bytes, not the uploaded ${image.length}`);
  });

  await test("refused types and sizes, a canceled and a failed upload are explained", async () => {
    await fileInput().setInputFiles({ name: "run.sh", mimeType: "application/x-sh", buffer: Buffer.from("#!/bin/sh\necho hi\n") });
    await uploadButton().click();
    await expectText(page, "Its type, application/x-sh, is not allowed");
    await expectText(page, "must be one of image/png");

    // Larger than FILES_MAX_BYTES (100 MiB): a sparse file, never read, since
    // the API refuses the announcement.
    const big = join(dir, "huge.png");
    writeFileSync(big, "");
    truncateSync(big, 101 * 1024 * 1024);
    await fileInput().setInputFiles(big);
    await uploadButton().click();
    await expectText(page, "huge.png is 101 MiB, too large.");
    await expectText(page, "A file may be at most 104857600 bytes");

    // A slow upload canceled half-way leaves nothing behind.
    const slow = randomBytes(600 * 1024);
    await fileInput().setInputFiles({ name: "slow.txt", mimeType: "text/plain", buffer: slow });
    await throttle(64 * 1024);
    await uploadButton().click();
    const bar = page.locator("progress#upload-progress");
    await bar.waitFor();
    await page.getByRole("button", { name: "Cancel upload" }).click();
    await expectText(page, "Upload of slow.txt canceled; nothing was kept.");
    await throttle(-1);
    const names = (await listed()).map((f) => f.filename);
    if (names.join() !== "photo.png") throw new Error("files after the refusals and the cancel: " + names.join());
    if (await page.getByText("slow.txt", { exact: true }).count()) throw new Error("the canceled file is still listed");

    // The storage refusing the PUT (an expired link, S3's XML error,
    // simulated) and a bucket whose CORS does not allow the app (real) are
    // told apart; the file announced for each is removed.
    const s3 = new URL(h.must("S3_ENDPOINT")).origin;
    await page.route(s3 + "/**", (route) => route.request().method() !== "PUT" ? route.continue() : route.fulfill({
      status: 403, contentType: "application/xml", headers: { "Access-Control-Allow-Origin": h.base },
      body: "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
    }));
    await fileInput().setInputFiles({ name: "late.txt", mimeType: "text/plain", buffer: Buffer.from("late\n") });
    await uploadButton().click();
    await expectText(page, "The upload link expired before the file was sent.");
    await page.unroute(s3 + "/**");
    // A bucket whose CORS rule names another origin: Chromium refuses the
    // page's PUT for real.
    h.keelctl("files", "cors", "http://elsewhere.example");
    const logs = [];
    const log = (m) => logs.push(m.text());
    page.on("console", log);
    try {
      await uploadButton().click();
      await expectText(page, "The upload could not reach the file storage");
    } finally {
      h.keelctl("files", "cors", h.base);
      page.off("console", log);
    }
    if (!logs.some((t) => t.includes("CORS policy"))) throw new Error("no CORS refusal in the console: " + logs.join(" | "));
    const after = (await listed()).map((f) => f.filename);
    if (after.join() !== "photo.png") throw new Error("files after the failed PUTs: " + after.join());
  });

  await test("delete a file", async () => {
    await fileInput().setInputFiles({ name: "notes.txt", mimeType: "text/plain", buffer: Buffer.from("some notes\n") });
    await uploadButton().click();
    await expectText(page, "notes.txt is uploaded and ready.");
    const before = await usage("storage_bytes");
    await page.getByRole("button", { name: "Delete notes.txt" }).click();
    await page.getByRole("group", { name: "Delete notes.txt?" }).getByRole("button", { name: "Delete file" }).click();
    await expectText(page, "Deleted notes.txt.");
    if (await page.getByText("notes.txt", { exact: true }).count()) throw new Error("notes.txt still shown");
    const names = (await listed()).map((f) => f.filename);
    if (names.includes("notes.txt")) throw new Error("the API still lists notes.txt: " + names.join());
    const after = await usage("storage_bytes");
    if (before.used - after.used !== "some notes\n".length) throw new Error(`storage used ${before.used} → ${after.used}`);
    // A reload lists what the API holds.
    await page.reload();
    await page.getByRole("img", { name: "Thumbnail of photo.png" }).waitFor();
    if (await page.getByText("notes.txt", { exact: true }).count()) throw new Error("notes.txt listed after a reload");
  });

  await test("the plan's storage and resource limits stop an upload and a new resource", async () => {
    // Stripe cancels the organization's subscription (a signed webhook):
    // it falls back to the Free plan, whose limits are in reach.
    const now = Math.floor(Date.now() / 1000);
    const id = randomBytes(6).toString("hex");
    const status = await h.stripeWebhook({
      id: "evt_files_" + id, object: "event", api_version: "2023-10-16", type: "customer.subscription.deleted", created: now,
      data: { object: { id: "sub_files_" + id, object: "subscription", customer: "cus_files_" + id, status: "canceled",
        created: now - 60, ended_at: now, current_period_end: now, cancel_at_period_end: false, metadata: { org_id: acct.orgId },
        items: { data: [{ price: { id: "price_keel_pro_monthly", currency: "usd", unit_amount: 1900,
          recurring: { interval: "month", interval_count: 1 } }, quantity: 1 }] } } },
    });
    if (status !== 200) throw new Error("webhook answered " + status);
    let storage;
    for (let i = 0; ; i++) {
      storage = await usage("storage_bytes");
      if (storage.limit === 100 * 1024 * 1024) break;
      if (i === 100) throw new Error("the organization did not move to the Free plan: " + JSON.stringify(storage));
      await new Promise((r) => setTimeout(r, 100));
    }

    // Storage: 100 MiB on Free; the image already counts, so a 100 MiB
    // file (the largest allowed) would pass it: refused before any byte moves.
    const full = join(dir, "full.png");
    writeFileSync(full, "");
    truncateSync(full, 100 * 1024 * 1024);
    await fileInput().setInputFiles(full);
    await uploadButton().click();
    const limit = page.getByRole("alert").filter({ hasText: "Storage:" });
    await limit.waitFor();
    const said = await limit.innerText();
    if (!said.includes(`Your Free plan allows 100 MiB of storage`) || !said.includes("used of 100 MiB"))
      throw new Error("storage limit shown as: " + said);
    if ((await listed()).length !== 1) throw new Error("a file was announced past the storage limit");

    // Resources: fill the plan's limit through the API, then the page's
    // "New resource" is refused with the API's sentence and the figures.
    const res = await usage("resources");
    const missing = res.limit - res.used;
    for (let i = 0; i < missing; i += 10) {
      await Promise.all(Array.from({ length: Math.min(10, missing - i) }, (_, j) =>
        api("POST", "/resources", acct.token, { name: `Filler ${i + j}` })));
    }
    await page.getByRole("link", { name: "← Resources" }).click();
    await page.getByRole("link", { name: "New resource" }).click();
    await page.getByLabel("Name", { exact: true }).fill("One too many");
    await page.getByRole("button", { name: "Create" }).click();
    const refused = page.getByRole("alert").filter({ hasText: "Resources:" });
    await refused.waitFor();
    const text = await refused.innerText();
    if (!text.includes(`Your Free plan allows ${res.limit} resources; this organization uses ${res.limit} resources.`) ||
      !text.includes(`Resources: ${res.limit} used of ${res.limit} on this plan.`))
      throw new Error("resource limit shown as: " + text);
    const after = await usage("resources");
    if (after.used !== res.limit) throw new Error(`resources used ${after.used}, limit ${res.limit}`);
    if (!page.url().endsWith("/resources/new")) throw new Error("left the form: " + page.url());
  });

  rmSync(dir, { recursive: true, force: true });
}
