// Despacho dispatch page: no framework, no network but this server's API.
"use strict";

const $ = (id) => document.getElementById(id);
const COLORS = ["#0b57d0", "#b3261e", "#146c2e", "#7a4a00", "#5b3a8c", "#00639b", "#8c1d6b",
  "#3a5a00", "#9a3412", "#155e75", "#6b21a8", "#1e3a8a"];
let view = null;      // the GET /v1/plans/{date} answer
let selected = null;  // job id
let pending = null;   // the change body last checked

function say(text, bad) {
  const s = $("status");
  s.textContent = text;
  s.style.color = bad ? "#ffb4ab" : "";
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    // Through the CSSOM: the page's CSP forbids inline style attributes.
    else if (k === "style") e.style.cssText = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

async function api(method, path, body) {
  const key = $("key").value.trim();
  if (!key) throw new Error("type a dispatcher API key first");
  sessionStorage.setItem("despacho.key", key);
  const r = await fetch(path, {
    method,
    headers: Object.assign({ Authorization: "Bearer " + key },
      body ? { "Content-Type": "application/json" } : {}),
    body: body ? JSON.stringify(body) : undefined,
  });
  const json = await r.json().catch(() => null);
  if (!r.ok) {
    const e = json && json.error;
    const details = e && e.details && e.details.length
      ? " (" + e.details.map((d) => d.path + ": " + d.message).join("; ") + ")" : "";
    const err = new Error(e ? e.message + details : "HTTP " + r.status);
    err.status = r.status;
    throw err;
  }
  return json;
}

const hhmm = (t) => (t || "").slice(11, 16);
// The checker's messages name full timestamps; the page is about one day: HH:MM reads better.
const readable = (m) => String(m).replace(/\d{4}-\d\d-\d\dT(\d\d:\d\d)(:\d\d)?(\.\d+)?([+-]\d\d:\d\d|Z)?/g, "$1");
const minutesOf = (t) => { const d = new Date(t); return d.getTime() / 60000; };
// The plan's UTC offset ("-03:00"), from the first route's start; null without routes.
const planOffset = () => (view && view.plan.routes[0] ? view.plan.routes[0].start.slice(19) : null);
const offsetMinutes = (o) => (o[0] === "-" ? -1 : 1) * (Number(o.slice(1, 3)) * 60 + Number(o.slice(4, 6)));
const color = (i) => COLORS[i % COLORS.length];
// The territory picked ("" = the whole day): the plan is read, measured, optimised and
// published for it; changes are the day's.
const territory = () => $("territory").value;
const planPath = (date) => "/v1/plans/" + date + (territory() ? "?territory=" + encodeURIComponent(territory()) : "");

// Fills the territory picker once (GET /v1/territories), keeping the one asked for.
let territoriesLoaded = false;
async function loadTerritories(wanted) {
  if (territoriesLoaded) return;
  const list = await api("GET", "/v1/territories");
  territoriesLoaded = true;
  const sel = $("territory");
  for (const t of list.items) sel.append(el("option", { value: t.id }, t.name + " (" + t.technicians.length + ")"));
  if (wanted && list.items.some((t) => t.id === wanted)) sel.value = wanted;
}

async function load() {
  const date = $("date").value;
  say("Loading " + date + "…");
  try {
    await loadTerritories(new URLSearchParams(location.search).get("territory"));
    view = await api("GET", planPath(date));
    render();
    say("Version " + view.version + " (" + view.state + ") of " + date +
      (territory() ? ", territory " + territory() : "") + ".");
  } catch (e) {
    view = null;
    render();
    say(e.status === 404 ? "No plan for " + date + " yet: press Optimise." : e.message, e.status !== 404);
  }
}

// Optimising queues a background run; the page polls it, shows its progress and can
// cancel it (the server's run worker solves it, on this node or another).
let run = null;  // the run being watched

async function optimize() {
  const date = $("date").value;
  const seconds = Number($("seconds").value);
  $("optimize").disabled = true;
  try {
    const body = { seconds, seed: 1 };
    if (territory()) body.territory = territory();
    run = await api("POST", "/v1/plans/" + date + "/optimize", body);
    say("Optimising " + date + (territory() ? " (territory " + territory() + ")" : "") + " for " + seconds + " s…");
    showRun();
    await watchRun(date);
  } catch (e) { say(e.message, true); }
  run = null;
  showRun();
  $("optimize").disabled = false;
}

async function watchRun(date) {
  while (run && (run.state === "queued" || run.state === "running")) {
    await new Promise((done) => setTimeout(done, 500));
    run = await api("GET", "/v1/plan-runs/" + run.id);
    showRun();
  }
  if (!run) return;
  if (run.state === "succeeded") {
    view = await api("GET", planPath(date));
    render();
    say("Optimised: version " + run.plan_version + " is a draft.");
  } else if (run.state === "cancelled") {
    say("Run cancelled; the plan is unchanged.");
  } else {
    say("The run failed: " + (run.error || "unknown error"), true);
  }
}

function showRun() {
  const box = $("run");
  box.hidden = !run;
  if (!run) return;
  const p = run.progress;
  const parts = ["Run " + run.state];
  if (p.elapsed_seconds !== null) parts.push(p.elapsed_seconds.toFixed(1) + " / " + run.seconds + " s");
  if (p.iterations !== null) parts.push(p.iterations + " iterations");
  if (p.jobs_planned !== null) parts.push(p.jobs_planned + " jobs planned");
  if (p.best_cost !== null) parts.push("best cost " + p.best_cost.toFixed(2));
  $("run-progress").textContent = parts.join(" · ");
  $("run-bar").max = run.seconds;
  $("run-bar").value = p.elapsed_seconds || 0;
  $("cancel-run").disabled = run.cancel_requested || !(run.state === "queued" || run.state === "running");
}

async function cancelRun() {
  if (!run) return;
  try {
    run = await api("POST", "/v1/plan-runs/" + run.id + "/cancel", {});
    showRun();
  } catch (e) { say(e.message, true); }
}

async function publish() {
  const date = $("date").value;
  try {
    const t = territory();
    const p = await api("POST", "/v1/plans/" + date + "/publish" + (t ? "?territory=" + encodeURIComponent(t) : ""), {});
    await load();
    say(t ? "Published territory " + t + ": version " + p.version +
      (p.draft_version ? " (the other changes stay draft version " + p.draft_version + ")" : "") + "."
      : "Published version " + p.version + ".");
  } catch (e) { say(e.message, true); }
}

function techIndex() {
  const ids = view ? view.kpis.technicians.map((t) => t.technician).sort() : [];
  return new Map(ids.map((id, i) => [id, i]));
}

function render() {
  renderSummary();
  renderMap();
  renderTimeline();
  renderUnassigned();
  renderTechs();
  renderSelection();
}

function renderSummary() {
  const dl = $("kpis");
  dl.replaceChildren();
  $("violations").replaceChildren();
  $("since").replaceChildren();
  const badge = $("badge");
  if (!view) { badge.textContent = ""; return; }
  badge.textContent = "v" + view.version + " · " + view.state +
    (view.published_version && view.published_version !== view.version ? " · published v" + view.published_version : "") +
    (view.territory ? " · " + view.territory + (view.territory_published ? " published" : " not published") : "");
  badge.className = "badge " + (view.territory ? (view.territory_published ? "published" : "draft") : view.state);
  const k = view.kpis, s = k.solver;
  const items = [
    ["Jobs planned", s.jobs_assigned + " / " + s.jobs_total],
    ["Unassigned", s.jobs_unassigned],
    ["Travel", s.travel_km.toFixed(1) + " km · " + s.travel_hours.toFixed(1) + " h"],
    ["Work", s.work_hours.toFixed(1) + " h"],
    ["Utilisation", Math.round(s.utilisation * 100) + " %"],
    ["On time", k.on_time_pct + " %"],
    ["Waiting", k.waiting_hours.toFixed(1) + " h"],
    ["Overtime", s.overtime_minutes + " min"],
    ["Routes", s.routes_used + " / " + s.shifts_available],
    ["Cost", view.plan.cost.total.toFixed(2)],
  ];
  for (const [t, v] of items) dl.append(el("div", {}, el("dt", {}, t), el("dd", {}, v)));
  if (view.violations.length) {
    $("violations").append(el("p", { class: "violation" }, view.violations.length + " violation(s) — fix before publishing:"),
      el("ul", {}, ...view.violations.map((v) => el("li", { class: "violation" },
        v.code + (v.technician ? " · " + v.technician : "") + (v.job ? " · " + v.job : "") + ": " + readable(v.message)))));
  }
  if (view.changes_since_publish.length) {
    $("since").append(el("p", {}, "Changes since the published version:"),
      el("ul", {}, ...view.changes_since_publish.map((c) => el("li", {},
        c.at.slice(11, 16) + " " + c.actor_name + ": " + c.action + " " + JSON.stringify(c.details.change || {})))));
  }
}

// The server's tile server for the map (GET /dispatch/config.json), or null: the map is
// then drawn from coordinates alone.
let mapTiles = null;

// Web Mercator, in world units (0..1 across and down), as tile servers cut the world.
const mercator = (p) => {
  const s = Math.sin(Math.max(Math.min(p.lat, 85.05), -85.05) * Math.PI / 180);
  return [(p.lon + 180) / 360, 0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI)];
};

// Tiles under the map: the zoom whose tiles are 256–512 view units wide, every tile the
// view shows, and the attribution.
function drawTiles(svg, add, scale, x0, y0, W, H) {
  const z = Math.max(0, Math.min(19, Math.floor(Math.log2(scale / 256))));
  const n = 2 ** z, size = scale / n;
  const tx0 = Math.max(0, Math.floor(x0 * n)), tx1 = Math.min(n - 1, Math.floor((x0 + W / scale) * n));
  const ty0 = Math.max(0, Math.floor(y0 * n)), ty1 = Math.min(n - 1, Math.floor((y0 + H / scale) * n));
  for (let tx = tx0; tx <= tx1; tx++) {
    for (let ty = ty0; ty <= ty1; ty++) {
      const href = mapTiles.url.replace("{z}", z).replace("{x}", tx).replace("{y}", ty);
      add("image", { href, x: (tx / n - x0) * scale, y: (ty / n - y0) * scale, width: size, height: size,
        preserveAspectRatio: "none", class: "tile" });
    }
  }
  // Routes stay readable over a busy map.
  add("rect", { x: 0, y: 0, width: W, height: H, fill: "#fff", "fill-opacity": 0.35 });
  $("map-attribution").textContent = "Map tiles: " + (mapTiles.attribution || new URL(mapTiles.url.replace(/[{}]/g, "")).host);
}

function renderMap() {
  const svg = $("map");
  svg.replaceChildren();
  $("legend").replaceChildren();
  $("map-attribution").textContent = "";
  if (!view) return;
  const pts = [...Object.values(view.places.jobs), ...Object.values(view.places.technicians)].map(mercator);
  if (!pts.length) return;
  const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
  const [minX, maxX, minY, maxY] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const W = 600, H = 420, pad = 20;
  const spanX = Math.max(maxX - minX, 1e-9), spanY = Math.max(maxY - minY, 1e-9);
  const scale = Math.min((W - 2 * pad) / spanX, (H - 2 * pad) / spanY);
  // The view's top-left corner in world units, the points centred.
  const x0 = (minX + maxX) / 2 - W / 2 / scale, y0 = (minY + maxY) / 2 - H / 2 / scale;
  const xy = (p) => { const [x, y] = mercator(p); return [(x - x0) * scale, (y - y0) * scale]; };
  const ns = "http://www.w3.org/2000/svg";
  const add = (tag, attrs, title) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (title) { const t = document.createElementNS(ns, "title"); t.textContent = title; e.append(t); }
    svg.append(e);
    return e;
  };
  if (mapTiles) drawTiles(svg, add, scale, x0, y0, W, H);
  const idx = techIndex();
  for (const r of view.plan.routes) {
    const c = color(idx.get(r.technician) || 0);
    const home = view.places.technicians[r.technician];
    const path = [home, ...r.stops.map((s) => view.places.jobs[s.job]), home].filter(Boolean).map(xy);
    add("polyline", { points: path.map((p) => p.join(",")).join(" "), fill: "none", stroke: c, "stroke-width": 2, "stroke-opacity": 0.85 });
    const [hx, hy] = xy(home);
    add("rect", { x: hx - 5, y: hy - 5, width: 10, height: 10, fill: "#fff", stroke: c, "stroke-width": 2 }, r.technician + " start");
    r.stops.forEach((s, i) => {
      const [x, y] = xy(view.places.jobs[s.job]);
      add("circle", { cx: x, cy: y, r: 5, fill: c, stroke: "#fff", "stroke-width": 1 },
        r.technician + " #" + (i + 1) + " " + s.job + " " + hhmm(s.start) + "–" + hhmm(s.end));
    });
    $("legend").append(el("li", {}, el("i", { style: "background:" + c }), r.technician + " (" + r.stops.length + ")"));
  }
  for (const u of view.plan.unassigned) {
    const p = view.places.jobs[u.job];
    if (!p) continue;
    const [x, y] = xy(p);
    add("path", { d: `M${x - 5},${y - 5}L${x + 5},${y + 5}M${x - 5},${y + 5}L${x + 5},${y - 5}`, stroke: "#a50e0e", "stroke-width": 2.5 },
      "unassigned " + u.job + ": " + u.message);
  }
  $("legend").append(el("li", {}, el("i", { style: "background:#a50e0e" }), "unassigned (×)"));
}

function renderTimeline() {
  const tl = $("timeline");
  tl.replaceChildren();
  if (!view) return;
  const routes = new Map(view.plan.routes.map((r) => [r.technician, r]));
  const all = view.plan.routes.flatMap((r) => [r.start, r.end]).map(minutesOf);
  let t0 = Math.min(...all), t1 = Math.max(...all);
  if (!isFinite(t0)) { t0 = 0; t1 = 60; }
  t0 = Math.floor(t0 / 60) * 60; t1 = Math.ceil(t1 / 60) * 60;
  const pct = (m) => ((m - t0) / (t1 - t0) * 100) + "%";
  const width = (a, b) => (Math.max(b - a, 0) / (t1 - t0) * 100) + "%";
  const ticks = el("div", { class: "ticks" });
  const anyStart = view.plan.routes[0] && view.plan.routes[0].start;
  for (let m = t0; m <= t1; m += 60) {
    let label = "";
    if (anyStart) {
      const offset = anyStart.slice(19);  // e.g. -03:00
      const sign = offset[0] === "-" ? -1 : 1;
      const off = sign * (Number(offset.slice(1, 3)) * 60 + Number(offset.slice(4, 6)));
      const local = ((m + off) % 1440 + 1440) % 1440;
      label = String(Math.floor(local / 60)).padStart(2, "0") + ":00";
    }
    ticks.append(el("span", { style: "left:" + pct(m) }, label));
  }
  tl.append(el("div", { class: "axis" }, el("div", {}, ""), ticks));
  const late = new Set(view.violations.filter((v) => v.code === "window_missed").map((v) => v.job));
  const locked = new Set(view.locked);
  for (const t of view.kpis.technicians.map((t) => t.technician).sort()) {
    const r = routes.get(t);
    const track = el("div", { class: "track" });
    if (r) {
      for (const s of r.stops) {
        const arr = minutesOf(s.arrival), st = minutesOf(s.start), en = minutesOf(s.end);
        const trav = s.travel_minutes;
        track.append(el("div", { class: "seg travel", style: `left:${pct(arr - trav)};width:${width(arr - trav, arr)}`, title: `travel ${trav} min, ${s.travel_km} km` }));
        if (st > arr) track.append(el("div", { class: "seg wait", style: `left:${pct(arr)};width:${width(arr, st)}`, title: `waiting ${s.waiting_minutes} min` }));
        const b = el("button", {
          class: "seg work" + (locked.has(s.job) ? " locked" : "") + (late.has(s.job) ? " late" : "") + (selected === s.job ? " selected" : ""),
          style: `left:${pct(st)};width:${width(st, en)}`, draggable: "true", "data-job": s.job,
          "aria-label": `${s.job}, ${t}, ${hhmm(s.start)} to ${hhmm(s.end)}${locked.has(s.job) ? ", locked" : ""}${late.has(s.job) ? ", window missed" : ""}`,
          title: `${s.job} ${hhmm(s.start)}–${hhmm(s.end)}`,
          onclick: () => select(s.job),
          ondragstart: (ev) => { ev.dataTransfer.setData("text/plain", s.job); select(s.job); },
        }, (locked.has(s.job) ? "🔒" : "") + s.job);
        track.append(b);
      }
      if (r.break_taken) {
        const a = minutesOf(r.break_taken.start), z = minutesOf(r.break_taken.end);
        track.append(el("div", { class: "seg brk", style: `left:${pct(a)};width:${width(a, z)}`, title: `break ${hhmm(r.break_taken.start)}–${hhmm(r.break_taken.end)}` }));
      }
    }
    const lane = el("div", { class: "lane", "data-tech": t,
      ondragover: (ev) => { ev.preventDefault(); lane.classList.add("drop"); },
      ondragleave: () => lane.classList.remove("drop"),
      ondrop: (ev) => {
        ev.preventDefault();
        lane.classList.remove("drop");
        const job = ev.dataTransfer.getData("text/plain");
        if (!job) return;
        select(job);
        $("move-to").value = t;
        $("move-pos").value = "";
        // Where on the row it was dropped is the time asked (5-minute steps): the visit
        // starts no earlier than that (the API's `move.start`).
        const box = track.getBoundingClientRect();
        const o = planOffset();
        if (o && box.width > 0) {
          const m = t0 + Math.min(Math.max((ev.clientX - box.left) / box.width, 0), 1) * (t1 - t0);
          const local = ((Math.round((m + offsetMinutes(o)) / 5) * 5) % 1440 + 1440) % 1440;
          $("move-start").value = String(Math.floor(local / 60)).padStart(2, "0") + ":" + String(local % 60).padStart(2, "0");
        }
        check();
      },
    }, el("div", { class: "who", title: t }, t + (r ? " · " + r.stops.length : "")), track);
    tl.append(lane);
  }
  rovingFocus(tl);
}

// The timeline is one Tab stop: the selected visit (or the first) takes the focus; the
// arrow keys move between visits (left/right along a row, up/down to the nearest visit
// in time on the row above or below), Home/End to a row's ends; Enter or Space selects
// (the visit is a button); Escape clears the selection.
function rovingFocus(tl) {
  const rows = () => [...tl.querySelectorAll(".lane")].map((l) => [...l.querySelectorAll("button.seg.work")]).filter((r) => r.length);
  const all = [...tl.querySelectorAll("button.seg.work")];
  if (!all.length) return;
  const current = all.find((b) => b.dataset.job === selected) || all[0];
  for (const b of all) b.tabIndex = b === current ? 0 : -1;
  tl.onkeydown = (ev) => {
    const b = ev.target.closest && ev.target.closest("button.seg.work");
    if (!b) return;
    if (ev.key === "Escape") { selected = null; select(null); ev.preventDefault(); return; }
    const rs = rows();
    const r = rs.findIndex((row) => row.includes(b));
    const i = rs[r].indexOf(b);
    const mid = (x) => { const q = x.getBoundingClientRect(); return q.left + q.width / 2; };
    const nearest = (row) => row.reduce((best, x) => (Math.abs(mid(x) - mid(b)) < Math.abs(mid(best) - mid(b)) ? x : best));
    const next = {
      ArrowLeft: () => rs[r][i - 1], ArrowRight: () => rs[r][i + 1],
      ArrowUp: () => rs[r - 1] && nearest(rs[r - 1]), ArrowDown: () => rs[r + 1] && nearest(rs[r + 1]),
      Home: () => rs[r][0], End: () => rs[r][rs[r].length - 1],
    }[ev.key];
    if (!next) return;
    ev.preventDefault();
    const to = next();
    if (!to) return;
    b.tabIndex = -1;
    to.tabIndex = 0;
    to.focus();
  };
}

function renderUnassigned() {
  const ul = $("unassigned");
  ul.replaceChildren();
  if (!view) return;
  if (!view.plan.unassigned.length) ul.append(el("li", {}, "None."));
  for (const u of view.plan.unassigned) {
    ul.append(el("li", {}, el("button", { type: "button", onclick: () => select(u.job), "aria-label": "select " + u.job }, u.job),
      " ", el("span", { class: "reason" }, u.reason), " — " + readable(u.message)));
  }
}

function renderTechs() {
  const table = $("techs");
  table.replaceChildren();
  if (!view) return;
  table.append(el("thead", {}, el("tr", {}, ...["Technician", "Jobs", "Km", "Travel h", "Work h", "Wait h", "Utilisation", "On time", "Overtime", "Violations"].map((h) => el("th", { scope: "col" }, h)))));
  const body = el("tbody");
  for (const t of view.kpis.technicians) {
    const tr = el("tr", {}, el("th", { scope: "row" }, t.technician + (t.name ? " · " + t.name : "")));
    for (const v of [t.jobs, t.travel_km.toFixed(1), t.travel_hours.toFixed(2), t.work_hours.toFixed(2), t.waiting_hours.toFixed(2),
      Math.round(t.utilisation * 100) + " %", t.on_time_pct + " %", t.overtime_minutes + " min", t.violations]) tr.append(el("td", {}, v));
    body.append(tr);
  }
  table.append(body);
}

function select(job) {
  selected = job;
  pending = null;
  $("move-start").value = "";
  $("feedback").replaceChildren();
  renderSelection();
  document.querySelectorAll("button.seg.work").forEach((b) => b.classList.toggle("selected", b.dataset.job === job));
}

function renderSelection() {
  const sel = $("move-to");
  const current = sel.value;
  sel.replaceChildren();
  if (view) for (const t of view.kpis.technicians.map((t) => t.technician).sort()) sel.append(el("option", { value: t }, t));
  if (current) sel.value = current;
  let where = "unassigned";
  if (view && selected) {
    for (const r of view.plan.routes) {
      const i = r.stops.findIndex((s) => s.job === selected);
      if (i >= 0) where = r.technician + ", visit " + (i + 1) + " at " + hhmm(r.stops[i].start);
    }
  }
  $("selected").textContent = selected ? selected + " — " + where + (view && view.locked.includes(selected) ? " (locked)" : "")
    : "None: select a visit in the timeline or the unassigned list.";
  for (const id of ["check", "lock", "unassign"]) $(id).disabled = !selected || !view;
}

function moveBody() {
  const pos = $("move-pos").value;
  const m = { job: selected, to: $("move-to").value };
  if (pos !== "") m.position = Number(pos);
  const at = $("move-start").value, o = planOffset();
  if (at && o) m.start = $("date").value + "T" + at + ":00" + o;
  return { move: m, version: view.version };
}

function showAnswer(a, body, applied) {
  const fb = $("feedback");
  fb.replaceChildren();
  fb.append(el("p", { class: a.feasible ? "ok" : "bad" }, a.feasible ? "Feasible." : "Not feasible."),
    el("p", {}, a.cost_delta === null ? "Refused: the technician cannot do this visit." : "Cost change: " + (a.cost_delta >= 0 ? "+" : "") + a.cost_delta.toFixed(2)));
  if (a.violations.length) fb.append(el("ul", {}, ...a.violations.map((v) => el("li", { class: "violation" }, v.code + ": " + readable(v.message)))));
  if (a.eta_changes.length) fb.append(el("p", {}, "New times:"), el("ul", {}, ...a.eta_changes.slice(0, 12).map((e) =>
    el("li", {}, e.job + " (" + e.technician + ") " + (e.start_before ? hhmm(e.start_before) + " → " : "") + hhmm(e.start_after) +
      (e.minutes != null ? " (" + (e.minutes >= 0 ? "+" : "") + Math.round(e.minutes) + " min)" : "")))));
  if (!applied && a.cost_delta !== null) {
    pending = body;
    fb.append(el("div", { class: "row" },
      el("button", { type: "button", id: "apply", onclick: apply }, "Apply change"),
      el("button", { type: "button", class: "secondary", onclick: () => { pending = null; fb.replaceChildren(); } }, "Cancel")));
  }
  if (applied) fb.append(el("p", {}, "Applied: version " + a.version + "."));
}

async function check() {
  if (!view || !selected) return;
  const body = moveBody();
  try {
    const a = await api("POST", "/v1/plans/" + $("date").value + "/changes", Object.assign({ dry_run: true }, body));
    showAnswer(a, body, false);
    const apply = document.getElementById("apply");
    if (apply) apply.focus();
  } catch (e) { $("feedback").replaceChildren(el("p", { class: "bad" }, e.message)); }
}

async function apply() {
  if (!pending) return;
  try {
    const a = await api("POST", "/v1/plans/" + $("date").value + "/changes", pending);
    pending = null;
    await load();
    showAnswer(a, null, true);
  } catch (e) { $("feedback").replaceChildren(el("p", { class: "bad" }, e.message)); }
}

async function simple(kind) {
  if (!view || !selected) return;
  const body = { version: view.version };
  body[kind] = { job: selected };
  try {
    const a = await api("POST", "/v1/plans/" + $("date").value + "/changes", body);
    await load();
    showAnswer(a, null, true);
  } catch (e) { $("feedback").replaceChildren(el("p", { class: "bad" }, e.message)); }
}

async function loadConfig() {
  try {
    const r = await fetch("/dispatch/config.json");
    if (r.ok) mapTiles = (await r.json()).map_tiles || null;
  } catch (e) { mapTiles = null; }  // the plain map is always there
}

document.addEventListener("DOMContentLoaded", async () => {
  $("key").value = sessionStorage.getItem("despacho.key") || "";
  const params = new URLSearchParams(location.search);
  $("date").value = params.get("date") || new Date().toISOString().slice(0, 10);
  $("controls").addEventListener("submit", (e) => { e.preventDefault(); load(); });
  $("territory").addEventListener("change", load);
  $("optimize").addEventListener("click", optimize);
  $("publish").addEventListener("click", publish);
  $("cancel-run").addEventListener("click", cancelRun);
  $("check").addEventListener("click", check);
  $("lock").addEventListener("click", () => simple(view && view.locked.includes(selected) ? "unlock" : "lock"));
  $("unassign").addEventListener("click", () => simple("unassign"));
  renderSelection();
  await loadConfig();
  if ($("key").value) load();
});
