// End-to-end: the /dispatch map over a tile server (`despacho serve --map-tiles`).
// This script is the tile server: it answers every /{z}/{x}/{y}.png with a generated
// grey tile, and checks that the page asks for the tiles that cover the day's places,
// at one zoom, that the CSP lets them in, and that the attribution is shown.
// Usage: node tiles.mjs BASE_URL DISPATCHER_KEY DATE SCREENSHOT_DIR TILE_PORT
import { chromium } from "playwright-core";
import assert from "node:assert/strict";
import http from "node:http";
import zlib from "node:zlib";

const [base, key, date, shots, tilePort] = process.argv.slice(2);

// A 256×256 light grey PNG with a darker border, so tile edges show in the screenshot.
function tilePng() {
  const size = 256;
  const raw = Buffer.alloc((size * 3 + 1) * size);
  for (let y = 0; y < size; y++) {
    raw[y * (size * 3 + 1)] = 0; // filter: none
    for (let x = 0; x < size; x++) {
      const edge = x === 0 || y === 0;
      const v = edge ? 170 : ((x >> 5) + (y >> 5)) % 2 ? 226 : 234;
      raw.fill(v, y * (size * 3 + 1) + 1 + x * 3, y * (size * 3 + 1) + 4 + x * 3);
    }
  }
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(zlib.crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk("IHDR", ihdr),
    chunk("IDAT", zlib.deflateSync(raw)), chunk("IEND", Buffer.alloc(0))]);
}

const png = tilePng();
const asked = [];
const server = http.createServer((req, res) => {
  const m = req.url.match(/^\/(\d+)\/(\d+)\/(\d+)\.png$/);
  if (!m) { res.writeHead(404).end(); return; }
  asked.push(m.slice(1).map(Number));
  res.writeHead(200, { "Content-Type": "image/png" }).end(png);
});
await new Promise((ok) => server.listen(Number(tilePort), "127.0.0.1", ok));

const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const browser = await chromium.launch({ executablePath, args: ["--no-sandbox"] });
const page = await browser.newPage({ viewport: { width: 1600, height: 1100 } });
const errors = [];
page.on("pageerror", (e) => errors.push(String(e)));
page.on("console", (m) => { if (/Content Security Policy|Refused to/.test(m.text())) errors.push(m.text()); });

try {
  const index = await page.goto(`${base}/dispatch?date=${date}`);
  assert.match(index.headers()["content-security-policy"], new RegExp(`img-src 'self' data: http://127\\.0\\.0\\.1:${tilePort};`));
  await page.fill("#key", key);
  await page.selectOption("#seconds", "2");
  await page.click("#optimize");
  await page.waitForSelector("text=Optimised: version", { timeout: 60000 });
  await page.waitForFunction(() => [...document.querySelectorAll("#map image.tile")].length > 0);
  // Every tile image decoded (the CSP let it in).
  await page.waitForFunction(async () => {
    const hrefs = [...document.querySelectorAll("#map image.tile")].map((i) => i.getAttribute("href"));
    const ok = await Promise.all(hrefs.map((h) => new Promise((done) => {
      const im = new Image(); im.onload = () => done(true); im.onerror = () => done(false); im.src = h;
    })));
    return ok.every(Boolean);
  });
  const shown = await page.locator("#map image.tile").count();
  assert.equal(await page.locator("#map-attribution").textContent(), "Map tiles: test tiles");

  // One zoom level, and the tiles asked for cover every place of the day.
  const places = await page.evaluate(() => [...Object.values(view.places.jobs), ...Object.values(view.places.technicians)]);
  const zooms = new Set(asked.map(([z]) => z));
  assert.equal(zooms.size, 1, `one zoom: ${[...zooms]}`);
  const [z] = zooms;
  assert.ok(z >= 8 && z <= 16, `a city-scale zoom: ${z}`);
  const tileOf = ({ lat, lon }) => {
    const n = 2 ** z, s = Math.sin(lat * Math.PI / 180);
    return [Math.floor((lon + 180) / 360 * n), Math.floor((0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI)) * n)];
  };
  const have = new Set(asked.map(([, x, y]) => `${x}/${y}`));
  for (const p of places) {
    const [x, y] = tileOf(p);
    assert.ok(have.has(`${x}/${y}`), `the tile ${z}/${x}/${y} under ${p.lat},${p.lon} was not asked for`);
  }
  // Routes are drawn over the tiles.
  const order = await page.evaluate(() => [...document.querySelector("#map").children].map((e) => e.tagName));
  assert.ok(order.lastIndexOf("image") < order.indexOf("polyline"), "tiles under the routes");
  await page.locator("#map-section").screenshot({ path: `${shots}/dispatch-tiles.png` });
  assert.deepEqual(errors, [], "no script or CSP error");
  console.log(`e2e tiles ok: zoom ${z}, ${shown} tiles on the map, ${places.length} places covered`);
} finally {
  await browser.close();
  server.close();
}
