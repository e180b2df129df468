// The bundle-size budget: the JavaScript the first page load fetches (the
// entry and what it imports statically), gzip-compressed, must stay under
// 250 KB. Writes a .gz beside every text asset for the control plane to
// serve to browsers that accept it.
import { readFileSync, writeFileSync, readdirSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { join } from "node:path";

const BUDGET = 250 * 1024;
const dist = new URL("../dist/", import.meta.url).pathname;
const html = readFileSync(join(dist, "index.html"), "utf8");
const initial = [...html.matchAll(/<(?:script|link)[^>]+(?:src|href)="\/portal\/([^"]+\.js)"/g)].map((m) => m[1]);
let total = 0;
for (const file of initial) {
  const size = gzipSync(readFileSync(join(dist, file)), { level: 9 }).length;
  total += size;
  console.log(`initial load: ${file} ${(size / 1024).toFixed(1)} KB gzip`);
}
console.log(`initial JavaScript: ${(total / 1024).toFixed(1)} KB gzip (budget ${BUDGET / 1024} KB)`);
for (const dir of [dist, join(dist, "assets")]) {
  for (const name of readdirSync(dir)) {
    if (/\.(js|css|html|svg|json)$/.test(name)) {
      const path = join(dir, name);
      writeFileSync(`${path}.gz`, gzipSync(readFileSync(path), { level: 9 }));
    }
  }
}
if (total > BUDGET) {
  console.error(`the initial JavaScript is over budget by ${((total - BUDGET) / 1024).toFixed(1)} KB`);
  process.exit(1);
}
