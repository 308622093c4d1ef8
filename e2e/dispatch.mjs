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

  // Technicians work in their territory: moves go to a technician of the same one.
  const members = (await (await fetch(`${base}/v1/territories`, { headers: { Authorization: `Bearer ${key}` } })).json())
    .items.map((t) => new Set(t.technicians));
  const sameTerritory = (a, b) => a !== b && members.some((m) => m.has(a) && m.has(b));
  const rowTechs = await page.locator("#timeline .lane").evaluateAll((ls) => ls.map((l) => l.dataset.tech));

  // Drag a visit of the first row onto a row of its territory: a dry-run answer. A
  // visit the other technician may not do (a pin, van capacity) is refused at once; then
  // the next visit is tried, so the answer shown has a cost change to apply.
  const to = rowTechs.find((t) => sameTerritory(rowTechs[0], t));
  assert.ok(to, `a second technician in ${rowTechs[0]}'s territory`);
  const target = page.locator(`#timeline .lane[data-tech="${to}"]`);
  const firstRow = page.locator("#timeline .lane").nth(0).locator("button.seg.work");
  let job = null, verdict = null;
  for (let k = 0; k < await firstRow.count() && !job; k++) {
    const visit = firstRow.nth(k);
    const candidate = await visit.getAttribute("data-job");
    await page.evaluate(() => document.querySelector("#feedback").replaceChildren());
    await visit.dragTo(target.locator(".who"));
    await page.waitForSelector("#feedback p.ok, #feedback p.bad");
    verdict = await page.locator("#feedback p").first().textContent();
    assert.match(verdict, /^(Feasible|Not feasible)\.$/);
    if (/Cost change: [+-]\d/.test(await page.locator("#feedback").textContent())) job = candidate;
    else assert.match(await page.locator("#feedback").textContent(), /Refused: .*may not do/);
  }
  assert.ok(job, `no visit of ${rowTechs[0]} can go to ${to}`);
  await page.screenshot({ path: `${shots}/dispatch-move.png`, fullPage: true });
  // Keyboard path: the Apply button has the focus; Enter applies the move.
  await page.keyboard.press("Enter");
  await page.waitForSelector("text=Applied: version 2.");
  const row = await page.locator(`#timeline .lane[data-tech="${to}"] button.seg.work[data-job="${job}"]`).count();
  assert.equal(row, 1, `${job} moved to ${to}`);

  // Publish (if the move broke a window, undo it first by unassigning then re-optimising).
  if (verdict === "Not feasible.") {
    await page.click("#optimize");
    await page.waitForSelector("text=Optimised: version 3");
  }

  // One territory: fewer rows, its own KPIs; publishing it keeps the rest a draft.
  await page.selectOption("#territory", "sp-oeste");
  await page.waitForSelector("#status:has-text('territory sp-oeste.')", { timeout: 15000 });
  const westLanes = await page.locator("#timeline .lane").count();
  assert.ok(westLanes > 0 && westLanes < lanes, `territory rows: ${westLanes} of ${lanes}`);
  assert.match(await page.locator("#kpis dt:text('Jobs planned') + dd").textContent(), /^\d+ \/ \d+$/);
  await page.screenshot({ path: `${shots}/dispatch-territory.png`, fullPage: false });
  await page.click("#publish");
  await page.waitForSelector("text=Published territory sp-oeste", { timeout: 15000 }).catch(async (e) => {
    throw new Error(`territory not published: ${await page.locator("#status").textContent()}`, { cause: e });
  });
  assert.match(await page.locator("#status").textContent(), /other changes stay draft version \d+/);
  assert.match(await page.locator("#badge").textContent(), /sp-oeste published$/);
  await page.selectOption("#territory", "");
  await page.waitForSelector("#status:has-text('(draft) of')", { timeout: 15000 });
  assert.equal(await page.locator("#timeline .lane").count(), lanes);
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
  // Keyboard only: Tab reaches the timeline once, the arrows pick a visit, Enter selects
  // it; the move panel's technician, Check and Apply by keys; no mouse event at all.
  await page.focus("#key");
  let tabs = 0;
  while (!(await page.evaluate(() => document.activeElement.matches("button.seg.work")))) {
    await page.keyboard.press("Tab");
    assert.ok(++tabs < 40, "Tab never reaches the timeline");
  }
  await page.keyboard.press("ArrowDown");
  await page.keyboard.press("ArrowRight");
  const kbJob = await page.evaluate(() => document.activeElement.dataset.job);
  const kbFrom = await page.evaluate(() => document.activeElement.closest(".lane").dataset.tech);
  await page.keyboard.press("Enter");
  await page.waitForFunction((j) => document.querySelector("#selected").textContent.startsWith(j), kbJob);
  // The whole timeline is one Tab stop: the next Tab is the move panel.
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.id), "move-to");
  const techs = await page.locator("#move-to option").allTextContents();
  let kbTo = await page.inputValue("#move-to");
  for (let k = 0; k < techs.length && !sameTerritory(kbFrom, kbTo); k++) {
    await page.keyboard.press(techs.indexOf(kbTo) + 1 < techs.length ? "ArrowDown" : "Home");
    kbTo = await page.inputValue("#move-to");
  }
  assert.ok(sameTerritory(kbFrom, kbTo), `a technician of ${kbFrom}'s territory picked by keys: ${kbTo}`);
  // Position, Start at (Chromium's time input has a Tab stop per field), Check move.
  const stops = [];
  while (stops[stops.length - 1] !== "check") {
    await page.keyboard.press("Tab");
    stops.push(await page.evaluate(() => document.activeElement.id));
    assert.ok(stops.length < 8, `Tab from Move to: ${stops}`);
  }
  assert.deepEqual([...new Set(stops)], ["move-pos", "move-start", "check"]);
  await page.keyboard.press("Enter");
  await page.waitForSelector("#feedback p.ok, #feedback p.bad");
  const kbVerdict = await page.locator("#feedback p").first().textContent();
  if (await page.locator("#apply").count()) {
    assert.equal(await page.evaluate(() => document.activeElement.id), "apply");
    await page.keyboard.press("Enter");
    await page.waitForSelector("text=/Applied: version \\d+\\./");
    assert.equal(await page.locator(`#timeline .lane[data-tech="${kbTo}"] button.seg.work[data-job="${kbJob}"]`).count(), 1,
      `${kbJob} moved to ${kbTo} by keyboard`);
  }
  await page.screenshot({ path: `${shots}/dispatch-keyboard.png`, fullPage: false });

  // Drag in time: a visit dropped further right on its own row asks for that start; the
  // applied plan starts it no earlier.
  const lane0 = page.locator("#timeline .lane").nth(0);
  const visit = lane0.locator("button.seg.work").first();
  const timed = await visit.getAttribute("data-job");
  const track = await lane0.locator(".track").boundingBox();
  await visit.dragTo(lane0.locator(".track"), { targetPosition: { x: track.width * 0.8, y: track.height / 2 } });
  await page.waitForSelector("#feedback p.ok, #feedback p.bad");
  const asked = await page.inputValue("#move-start");
  assert.match(asked, /^\d\d:\d\d$/, "the drop gives a start time");
  if (await page.locator("#apply").count()) {
    await page.click("#apply");
    await page.waitForSelector("text=/Applied: version \\d+\\./");
    const label = await page.locator(`button.seg.work[data-job="${timed}"]`).getAttribute("aria-label");
    const start = label.match(/(\d\d:\d\d) to/)[1];
    assert.ok(start >= asked, `${timed} starts at ${start}, asked ${asked}`);
  } else {
    assert.match(await page.locator("#feedback").textContent(), /Refused|window|shift/);
  }

  // A laptop screen: everything fits the width (no horizontal scrolling).
  await page.setViewportSize({ width: 1366, height: 768 });
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.waitForTimeout(200);
  // Map and timeline side by side, nothing wider than the window.
  const layout = () => page.evaluate(() => {
    const box = (id) => document.getElementById(id).getBoundingClientRect();
    return { overflow: document.documentElement.scrollWidth - window.innerWidth,
      sideBySide: box("timeline-section").left >= box("map-section").right,
      timelineTop: box("timeline-section").top };
  });
  let fit = await layout();
  assert.ok(fit.overflow <= 0, `horizontal scroll on a 1366 px screen: ${fit.overflow} px`);
  assert.ok(fit.sideBySide && fit.timelineTop < 768, `laptop: map and timeline side by side, timeline in view: ${JSON.stringify(fit)}`);
  await page.screenshot({ path: `${shots}/dispatch-laptop.png`, fullPage: false });
  // A large monitor too.
  await page.setViewportSize({ width: 2560, height: 1440 });
  await page.waitForTimeout(200);
  fit = await layout();
  assert.ok(fit.overflow <= 0 && fit.sideBySide, `2560 px screen: ${JSON.stringify(fit)}`);
  await page.setViewportSize({ width: 1366, height: 768 });

  // Readable colours: every visible text on the page against its background, WCAG
  // contrast ratio at least 4.5 (3 for large text).
  const poor = await page.evaluate(() => {
    const rgb = (c) => (c.match(/[\d.]+/g) || []).map(Number);
    const lum = ([r, g, b]) => [r, g, b].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
      .reduce((a, v, i) => a + v * [0.2126, 0.7152, 0.0722][i], 0);
    const background = (e) => {
      for (; e; e = e.parentElement) {
        const c = rgb(getComputedStyle(e).backgroundColor);
        if (c.length === 3 || c[3] > 0.5) return c.slice(0, 3);
      }
      return [255, 255, 255];
    };
    const out = [];
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      const e = n.parentElement;
      if (!n.textContent.trim() || !e.getClientRects().length || e.closest("svg")) continue;
      const st = getComputedStyle(e);
      if (st.visibility === "hidden" || Number(st.opacity) === 0) continue;
      const [a, b] = [lum(rgb(st.color).slice(0, 3)), lum(background(e))];
      const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
      const large = parseFloat(st.fontSize) >= 24 || (parseFloat(st.fontSize) >= 18.66 && Number(st.fontWeight) >= 700);
      if (ratio < (large ? 3 : 4.5)) out.push(`${e.tagName}.${e.className} "${n.textContent.trim().slice(0, 30)}": ${ratio.toFixed(2)}`);
    }
    return [...new Set(out)];
  });
  assert.deepEqual(poor, [], "text with too little contrast");

  assert.equal(await page.locator("#map image").count(), 0, "no tiles without a tile server");
  assert.deepEqual(external, [], "no request leaves the server");
  assert.deepEqual(errors, [], "no script error");
  console.log(`e2e ok: ${lanes} technicians, ${visits} visits, moved ${job} (${verdict}), territory sp-oeste ` +
    `(${westLanes} technicians) published, keyboard move of ${kbJob} ${kbFrom} → ${kbTo} (${kbVerdict}), ` +
    `${timed} dragged to ${asked}, laptop and 2560 px layouts fit`);
} finally {
  await browser.close();
}
