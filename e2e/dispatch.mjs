// End-to-end: the /dispatch page in headless Chromium against `despacho serve --demo`.
// Usage: node dispatch.mjs BASE_URL DISPATCHER_KEY DATE SCREENSHOT_DIR
import { chromium } from "playwright-core";
import assert from "node:assert/strict";

const [base, key, date, shots] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const browser = await chromium.launch({ executablePath, args: ["--no-sandbox"] });
const page = await browser.newPage({ viewport: { width: 1600, height: 1100 } });
const external = [];
page.on("request", (r) => { if (!r.url().startsWith(base)) external.push(r.url()); });
const errors = [];
page.on("pageerror", (e) => errors.push(String(e)));

try {
  await page.goto(`${base}/dispatch?date=${date}`);
  await page.fill("#key", key);
  // Optimise the day (3 s budget), then the routes and KPIs are on the page.
  await page.selectOption("#seconds", "2");
  await page.click("#optimize");
  await page.waitForSelector("text=Optimised: version", { timeout: 60000 });
  const lanes = await page.locator("#timeline .lane").count();
  assert.ok(lanes >= 10, `technician rows: ${lanes}`);
  const visits = await page.locator("button.seg.work").count();
  assert.ok(visits > 50, `visits on the timeline: ${visits}`);
  assert.ok(await page.locator("#map polyline").count() >= 10, "routes on the map");
  const planned = await page.locator("#kpis dt:text('Jobs planned') + dd").textContent();
  assert.match(planned, /^\d+ \/ \d+$/);
  assert.equal(await page.locator("#badge").textContent(), `v1 · draft`);
  await page.screenshot({ path: `${shots}/dispatch-day.png`, fullPage: true });

  // Reload from the server with the key kept in sessionStorage.
  await page.reload();
  await page.waitForSelector("text=Version 1 (draft)");

  // Drag the first visit of the first row onto the second row: a dry-run answer.
  const first = page.locator("#timeline .lane").nth(0).locator("button.seg.work").first();
  const job = await first.getAttribute("data-job");
  const target = page.locator("#timeline .lane").nth(1);
  await first.dragTo(target.locator(".who"));
  await page.waitForSelector("#feedback p.ok, #feedback p.bad");
  const verdict = await page.locator("#feedback p").first().textContent();
  assert.match(verdict, /^(Feasible|Not feasible)\.$/);
  assert.match(await page.locator("#feedback").textContent(), /Cost change: [+-]\d/);
  await page.screenshot({ path: `${shots}/dispatch-move.png`, fullPage: true });
  // Keyboard path: the Apply button has the focus; Enter applies the move.
  await page.keyboard.press("Enter");
  await page.waitForSelector("text=Applied: version 2.");
  const row = await page.locator(`#timeline .lane:nth-child(3) button.seg.work[data-job="${job}"]`).count();
  assert.equal(row, 1, `${job} moved to the second technician`);

  // Publish (if the move broke a window, undo it first by unassigning then re-optimising).
  if (verdict === "Not feasible.") {
    await page.click("#optimize");
    await page.waitForSelector("text=Optimised: version 3");
  }
  await page.click("#publish");
  await page.waitForSelector("#badge.published", { timeout: 10000 }).catch(async (e) => {
    throw new Error(`not published: ${await page.locator("#status").textContent()}`, { cause: e });
  });
  await page.waitForSelector("text=Published version");

  // A background run shows its progress and stops on Cancel; the plan stays as it was.
  await page.selectOption("#seconds", "30");
  await page.click("#optimize");
  await page.waitForSelector("#run-progress:has-text('iterations')", { timeout: 30000 });
  await page.click("#cancel-run");
  await page.waitForSelector("text=Run cancelled; the plan is unchanged.", { timeout: 30000 });
  assert.ok(await page.locator("#run").isHidden(), "the run box is gone");
  assert.match(await page.locator("#badge").textContent(), /published/);
  await page.screenshot({ path: `${shots}/dispatch-published.png`, fullPage: false });
  assert.deepEqual(external, [], "no request leaves the server");
  assert.deepEqual(errors, [], "no script error");
  console.log(`e2e ok: ${lanes} technicians, ${visits} visits, moved ${job} (${verdict}), published`);
} finally {
  await browser.close();
}
