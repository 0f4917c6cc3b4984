// The bundle budget: the JavaScript the first page load fetches (the entry
// chunk index.html loads, and the chunks it imports statically), gzipped,
// must stay at or under 200 KB. Lazy chunks are not counted.
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";

const BUDGET = 200 * 1024;
const dist = new URL("../dist/", import.meta.url);
const manifestPath = new URL(".vite/manifest.json", dist);
const manifest = JSON.parse(readFileSync(manifestPath, "utf8"));
const seen = new Set();
function walk(key) {
  const c = manifest[key];
  if (!c || seen.has(c.file)) return;
  seen.add(c.file);
  for (const k of c.imports ?? []) walk(k);
}
for (const [key, c] of Object.entries(manifest)) if (c.isEntry) walk(key);
let total = 0;
for (const f of seen) {
  if (!f.endsWith(".js")) continue;
  const gz = gzipSync(readFileSync(new URL(f, dist)), { level: 9 }).length;
  total += gz;
  console.log(`  ${f}: ${(gz / 1024).toFixed(1)} KB gzipped`);
}
const line = `initial JavaScript: ${(total / 1024).toFixed(1)} KB gzipped (budget ${BUDGET / 1024} KB)`;
if (total > BUDGET) {
  console.error("bundle budget exceeded: " + line);
  process.exit(1);
}
console.log(line);
