// Browser tests: runs each suite (its own browser profile and account) in
// turn against the stack e2e/web_test.go started; BROWSER_SUITES=files,billing
// runs only those. Exits non-zero when any test failed.
import * as h from "./harness.mjs";

const all = ["core", "files", "billing", "account", "admin"];
const only = (process.env.BROWSER_SUITES || "").split(",").filter(Boolean);
for (const name of only.length ? only : all) {
  if (!all.includes(name)) {
    console.error(`unknown suite ${name} (have ${all.join(", ")})`);
    process.exit(2);
  }
  const started = Date.now();
  try {
    await (await import(`./${name}.mjs`)).default(h);
  } catch (e) {
    h.failures.push(`${name}: setting up`);
    console.log(`FAIL ${name}: ${e.stack || e}`);
  }
  console.log(`---- suite ${name}: ${Date.now() - started} ms`);
}
await h.closeAll();
if (h.failures.length) {
  console.log(`${h.failures.length} browser test(s) failed: ${h.failures.join("; ")}`);
  process.exit(1);
}
console.log("all browser tests passed");
