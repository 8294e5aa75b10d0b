// Watches a desk display board in headless Chromium (Debian's, driven by
// playwright-core) and reports when a ticket shows up at a counter.
//
//   node board.js <board URL> <ticket> <counter>
//
// Prints `READY` once the page is live (its first server-sent board arrived),
// then `SEEN <ms>` when the row `<ticket> → <counter>` is on the page, `<ms>`
// being the time since READY, and exits 0. Exits 1 with a reason on stderr
// if the page never goes live or the row never appears (10 s each).
"use strict";
const { chromium } = require("playwright-core");

const [url, ticket, counter] = process.argv.slice(2);
if (!url || !ticket || !counter) {
  console.error("usage: node board.js <board URL> <ticket> <counter>");
  process.exit(2);
}
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";

(async () => {
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  try {
    const page = await browser.newPage();
    page.on("pageerror", (e) => console.error("page error:", e.message));
    await page.goto(url);
    await page.waitForSelector("#status.live", { timeout: 10000 });
    const ready = Date.now();
    console.log("READY");
    const row = `tr[data-ticket="${ticket}"][data-counter="${counter}"]`;
    await page.waitForSelector(row, { timeout: 10000 });
    const seen = Date.now() - ready;
    const latest = await page.$eval("#calls tr:first-child", (tr) => tr.dataset.ticket);
    console.log(`SEEN ${seen} ${latest}`);
  } finally {
    await browser.close();
  }
})().catch((e) => {
  console.error(e.message);
  process.exit(1);
});
