// The operations console: polls the gateway, draws the system map, queues, throughput,
// tests and breakers. The access token lives only in the `session` variable below (never in
// localStorage, sessionStorage or cookies); reloading the page logs out. Every fetch is
// guarded: a failed call shows a message, it never stops the polling loops.
"use strict";

const POLL_MS = 2000;
const FETCH_TIMEOUT_MS = 4000;
const BUCKET_S = 10;
const HISTORY_S = 300;
const FAULTS = ["bias", "noise", "drift", "spikes", "stuck_at", "dropouts", "saturation"];
const SERVICES = [["auth", "auth"], ["sensor", "sensor"], ["kafka", "events"]];

const session = { token: null, user: null, roles: [] };
const ui = { selected: null, detailTimer: null, lastSystem: null, stats: [], filters: {} };
const $ = (id) => document.getElementById(id);

function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-") || k === "title" || k === "type") node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) node.append(c instanceof Node ? c : String(c ?? "—"));
  return node;
}

// fetch that never throws: {ok, status, data, error}
async function api(path, opts) {
  const o = opts || {};
  const headers = { Accept: "application/json", ...(o.headers || {}) };
  if (session.token && o.auth !== false) headers.Authorization = `Bearer ${session.token}`;
  let body = o.body;
  if (o.json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(o.json);
  }
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(), FETCH_TIMEOUT_MS);
  try {
    const resp = await fetch(path, { method: o.method || "GET", headers, body, signal: ctrl.signal });
    let data = null;
    try { data = await resp.json(); } catch (_) { data = null; }
    if (resp.status === 401 && session.token && o.auth !== false) setBanner("auth", "Session expired or token rejected: log in again.", "warn");
    const error = resp.ok ? null : errorText(resp.status, data);
    return { ok: resp.ok, status: resp.status, data, error };
  } catch (err) {
    const msg = err && err.name === "AbortError" ? "timed out" : "gateway unreachable";
    return { ok: false, status: 0, data: null, error: msg };
  } finally {
    clearTimeout(timer);
  }
}

function errorText(status, data) {
  const detail = data && (data.message || data.detail || (data.error && (data.error.message || data.error)));
  return `HTTP ${status}${detail ? `: ${typeof detail === "string" ? detail : JSON.stringify(detail)}` : ""}`;
}

function setBanner(key, message, level) {
  const box = $("banners");
  let node = box.querySelector(`[data-banner="${key}"]`);
  if (!message) { if (node) node.remove(); return; }
  if (!node) { node = h("div", { "data-banner": key }); box.append(node); }
  node.className = `banner ${level || ""}`;
  node.textContent = message;
}

function setMsg(id, message, kind) {
  const node = $(id);
  node.textContent = message || "";
  node.className = `msg ${kind || ""}`;
}

// ---- login ------------------------------------------------------------------------------
function decodeClaims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), "=")));
  } catch (_) { return {}; }
}

async function login(event) {
  event.preventDefault();
  const form = new URLSearchParams({ username: $("login-user").value, password: $("login-pass").value });
  const r = await api("/auth/token", { method: "POST", body: form, auth: false,
    headers: { "Content-Type": "application/x-www-form-urlencoded" } });
  $("login-pass").value = "";
  if (!r.ok || !r.data || !r.data.access_token) {
    setBanner("login", `Login failed: ${r.error || "no token in the answer"}`, "warn");
    return;
  }
  const claims = decodeClaims(r.data.access_token);  // display only: the server checks roles
  Object.assign(session, { token: r.data.access_token, user: claims.preferred_username || $("login-user").value, roles: claims.roles || [] });
  setBanner("login", null); setBanner("auth", null);
  renderSession();
  loadTypes(); refreshTests(); refreshStats();
}

function logout() {
  Object.assign(session, { token: null, user: null, roles: [] });
  ui.stats = [];
  renderSession();
}

function renderSession() {
  const on = Boolean(session.token);
  $("login-form").hidden = on;
  $("session").hidden = !on;
  $("session-user").textContent = on ? `${session.user}${session.roles.includes("admin") ? " (admin)" : ""}` : "";
  for (const b of document.querySelectorAll("button[data-reset]")) b.disabled = !on;
  $("new-test").querySelector("button").disabled = !on;
  if (!on) {
    $("tests").tBodies[0].replaceChildren();
    setMsg("tests-msg", "Log in to list tests.");
  }
}

// ---- system map -------------------------------------------------------------------------
function replicaState(entry) {
  if (!entry || !entry.reachable) return "unavailable";
  const s = entry.health && entry.health.status;
  if (s === "healthy") return "healthy";
  if (s === "degraded") return "degraded";
  return "unavailable";
}

// A dependency (PostgreSQL, broker) judged from the checks that the services report on it.
function dependencyState(system, check, services) {
  const seen = [];
  for (const name of services) {
    for (const entry of (system.services || {})[name] || []) {
      const c = entry.reachable && entry.health && entry.health.checks && entry.health.checks[check];
      if (c) seen.push(c.status === "up");
    }
  }
  if (!seen.length) return { state: "unknown", note: "no service can tell" };
  const up = seen.filter(Boolean).length;
  if (up === seen.length) return { state: "healthy", note: `${up}/${seen.length} reports up` };
  if (up === 0) return { state: "unavailable", note: `${seen.length}/${seen.length} reports down` };
  return { state: "degraded", note: `${up}/${seen.length} reports up` };
}

function node(root, id, state, x, y, w, lines) {
  const g = Plot.el("g", { class: `node ${state}`, "data-node": id, "data-state": state, transform: `translate(${x},${y})` }, root);
  Plot.el("rect", { width: w, height: 16 + lines.length * 14, rx: 6 }, g);
  lines.forEach((line, i) => Plot.text(g, 8, 15 + i * 14, line, i === 0 ? { class: "title" } : {}));
  return { x, y, w, h: 16 + lines.length * 14 };
}

function edge(root, a, b) {
  Plot.el("line", { class: "edge", x1: a.x + a.w, y1: a.y + a.h / 2, x2: b.x, y2: b.y + b.h / 2 }, root);
}

function drawMap(system) {
  const gw = system && system.gateway;
  const root = Plot.svg(900, 100, "system map");
  const boxes = {};
  let y = 10;
  const gwState = gw ? "healthy" : "unavailable";
  const mid = [];
  for (const [key, label] of SERVICES) {
    const agg = (gw && gw.services && gw.services[key]) || {};
    const br = (gw && gw.circuit_breakers && gw.circuit_breakers[key]) || {};
    const replicas = (system && system.services && system.services[key]) || [];
    const state = agg.status === "healthy" ? "healthy" : agg.status === "degraded" ? "degraded" : "unavailable";
    const g = node(root, label, gw ? state : "unknown", 250, y, 170, [
      `${label} (${agg.status || "unknown"})`,
      `breaker ${br.state || "?"}, ${br.failures ?? "?"} failures`,
      `${agg.replicas_up ?? "?"}/${replicas.length} replicas up`,
    ]);
    mid.push(g);
    replicas.forEach((entry, i) => {
      const st = replicaState(entry);
      const hd = entry.health || {};
      boxes[`${label}-${i}`] = node(root, `${label}-${i}`, st, 440, y + i * 48, 200, [
        `${label} #${i} ${st}`, entry.url || "", entry.reachable ? `uptime ${Math.round(hd.uptime_s || 0)} s` : String(entry.error || "").slice(0, 30),
      ]);
      edge(root, g, boxes[`${label}-${i}`]);
    });
    y += Math.max(64, replicas.length * 48) + 8;
  }
  const gwBox = node(root, "gateway", gwState, 10, Math.max(10, y / 2 - 40), 190, [
    `gateway (${gw ? gw.overall_status : "unreachable"})`,
    gw ? `instance ${String(gw.instance || "").slice(0, 18)}` : "no answer",
    gw ? `event spool ${(gw.event_spool || {}).depth ?? "?"}` : "",
  ]);
  mid.forEach((m) => edge(root, gwBox, m));
  const pg = system ? dependencyState(system, "database", ["auth", "sensor", "kafka"]) : { state: "unknown", note: "" };
  const bk = system ? dependencyState(system, "broker", ["kafka"]) : { state: "unknown", note: "" };
  const pgBox = node(root, "postgres", pg.state, 690, 20, 190, ["PostgreSQL", pg.state, pg.note]);
  const bkBox = node(root, "broker", bk.state, 690, 110, 190, ["broker (Kafka protocol)", bk.state, bk.note]);
  for (const [id, b] of Object.entries(boxes)) {
    edge(root, b, pgBox);
    if (id.startsWith("events")) edge(root, b, bkBox);
  }
  root.setAttribute("viewBox", `0 0 900 ${Math.max(y, 200)}`);
  $("map").replaceChildren(root);
}

function drawBreakers(gw) {
  const body = $("breakers").tBodies[0];
  const rows = Object.entries((gw && gw.circuit_breakers) || {}).map(([name, b]) => {
    const btn = h("button", { type: "button", "data-reset": name, title: "admin only" }, "Reset");
    btn.disabled = !session.token;
    btn.addEventListener("click", () => resetBreaker(name));
    return h("tr", { "data-breaker": name }, h("td", {}, name),
      h("td", { class: `state-${b.state}` }, b.state), h("td", {}, b.failures), h("td", {}, btn));
  });
  if (!rows.length) rows.push(h("tr", {}, h("td", { colSpan: 4, class: "muted" }, "no breaker information")));
  body.replaceChildren(...rows);
}

async function resetBreaker(name) {
  const r = await api(`/circuit-breaker/reset/${encodeURIComponent(name)}`, { method: "POST" });
  if (r.ok) setMsg("breaker-msg", `Breaker ${name} reset: now ${r.data.breaker.state}.`, "ok");
  else setMsg("breaker-msg", `Reset of ${name} failed: ${r.status === 403 ? "admin role needed" : r.error}`, "error");
  refreshSystem();
}

function deadLetterText(count, oldestAgeS) {
  if (count === null || count === undefined) return "?";
  if (!count) return "0";
  const age = oldestAgeS === null || oldestAgeS === undefined ? "?" : `${Math.round(oldestAgeS)} s`;
  return `${count} (oldest ${age}): admin replay or discard`;
}

function drawQueues(system) {
  const gw = system && system.gateway;
  const rows = [["gateway event spool", gw ? (gw.event_spool || {}).depth : null]];
  // Dead letters: events refused for good, waiting for an admin (GET /dead-letters).
  const dl = (gw && gw.dead_letters) || null;
  rows.push(["gateway dead letters", dl ? deadLetterText(dl.count, dl.oldest_age_s) : null]);
  for (const [key, label] of SERVICES) {
    ((system && system.services && system.services[key]) || []).forEach((entry, i) => {
      const hd = (entry.reachable && entry.health) || null;
      if (key === "sensor") {
        const q = (hd && hd.queue) || {};
        const o = (hd && hd.outbox) || {};
        rows.push([`sensor #${i} jobs queued / running`, hd ? `${q.queued ?? "?"} / ${q.running ?? "?"}` : null]);
        rows.push([`sensor #${i} outbox pending / dead`, hd ? `${o.pending ?? "?"} / ${o.dead ?? "?"}` : null]);
        const sd = (hd && hd.dead_letters) || null;
        rows.push([`sensor #${i} outbox dead letters`, sd ? deadLetterText(sd.count, sd.oldest_age_s) : null]);
      } else if (key === "kafka") {
        rows.push([`${label} #${i} spool`, hd ? (hd.spool || {}).depth : null]);
      }
    });
  }
  $("queues").tBodies[0].replaceChildren(...rows.map(([k, v]) =>
    h("tr", {}, h("th", {}, k), h("td", {}, v ?? "unavailable"))));
}

function bannersFor(system) {
  const gw = system && system.gateway;
  if (!system) {
    setBanner("system", "The gateway does not answer: no system state.", "");
    return;
  }
  const down = SERVICES.filter(([k]) => !gw || !gw.services[k] || gw.services[k].status === "unavailable").map(([, l]) => l);
  if (down.length === SERVICES.length) setBanner("system", "Every service but the gateway is down (auth, sensor, events): the console shows what the gateway knows.", "");
  else if (down.length) setBanner("system", `Unavailable: ${down.join(", ")}.`, "warn");
  else setBanner("system", null);
}

async function refreshSystem() {
  let r = await api("/console/api/system", { auth: false });
  let system = r.ok ? r.data : null;
  if (!system) {  // an older gateway or a failing fan-out: fall back to the aggregated /health
    r = await api("/health", { auth: false });
    system = r.ok ? { gateway: r.data, services: {} } : null;
  }
  ui.lastSystem = system;
  drawMap(system); drawBreakers(system && system.gateway); drawQueues(system); bannersFor(system);
  $("map-updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
}

// ---- SLOs (GET /console/api/slo: Prometheus's recording rules, or the gateway's own metrics)
const pct = (x, digits) => (x === null || x === undefined ? null : `${(x * 100).toFixed(digits)} %`);

async function refreshSlo() {
  const r = await api("/console/api/slo", { auth: false });
  if (!r.ok) {
    $("slo-source").textContent = `(unavailable: ${r.error})`;
    return;
  }
  const doc = r.data;
  $("slo-source").textContent = doc.source === "prometheus"
    ? `(from Prometheus, last hour${doc.reachable ? "" : ": not answering"})`
    : "(from the gateway's own counters since it started; run `sensor-backend up --observability` for all three)";
  $("slo").tBodies[0].replaceChildren(...doc.slos.map((s) => {
    const ratio = s.error_ratio_1h !== undefined ? s.error_ratio_1h : s.error_ratio;
    const burn = s.burn_rate_1h === null || s.burn_rate_1h === undefined ? null : `${s.burn_rate_1h.toFixed(2)}×`;
    const state = { ok: "healthy", burning: "degraded", "burning fast": "down", "no data": "unknown" }[s.status] || "unknown";
    return h("tr", { title: `${s.description} (${s.window})` },
      h("th", {}, s.name), h("td", {}, pct(s.objective, 1)), h("td", {}, pct(ratio, 3) ?? "—"),
      h("td", {}, burn ?? "—"), h("td", {}, pct(s.budget_remaining, 1) ?? "—"),
      h("td", { class: `state-${state}` }, s.status));
  }));
}

// ---- event throughput -------------------------------------------------------------------
async function refreshStats() {
  if (!session.token) return;
  const r = await api("/events/stats");
  if (!r.ok) {
    $("throughput").replaceChildren(h("p", { class: "msg error" }, `Event statistics unavailable: ${r.error}`));
    return;
  }
  const now = Date.now() / 1000;
  ui.stats.push({ t: now, total: (r.data.sent || 0) + (r.data.queued || 0) });
  ui.stats = ui.stats.filter((s) => s.t > now - HISTORY_S - BUCKET_S);
  const buckets = [];
  const last = Math.floor(now / BUCKET_S);
  const first = last - HISTORY_S / BUCKET_S + 1;
  let prev = null;
  for (let b = first - 1; b <= last; b += 1) {
    const inBucket = ui.stats.filter((s) => Math.floor(s.t / BUCKET_S) === b);
    const end = inBucket.length ? inBucket[inBucket.length - 1].total : prev;
    if (b >= first) {
      const value = end !== null && prev !== null ? Math.max(0, end - prev) : 0;  // a counter reset reads as 0
      buckets.push({ label: new Date(b * BUCKET_S * 1000).toLocaleTimeString(), value });
    }
    if (end !== null) prev = end;
  }
  Plot.bars($("throughput"), buckets, { label: "events sent + queued per 10 s" });
}

// ---- sensor types and new tests ---------------------------------------------------------
async function loadTypes() {
  const r = await api("/sensor-types");
  if (!r.ok) { setMsg("new-test-msg", `Sensor types unavailable: ${r.error}`, "error"); return; }
  const names = (r.data.items || []).map((t) => t.name);
  const aliases = Object.entries(r.data.aliases || {}).map(([a, t]) => h("option", { value: a }, `${a} (${t})`));
  $("nt-type").replaceChildren(...names.map((n) => h("option", { value: n }, n)), ...aliases);
  $("f-type").replaceChildren(h("option", { value: "" }, "any type"), ...names.map((n) => h("option", { value: n }, n)));
  setMsg("new-test-msg", "");
}

async function startTest(event) {
  event.preventDefault();
  const faults = FAULTS.filter((f) => $(`fault-${f}`).checked);
  const simulate = { n: Number($("nt-n").value) || 600, faults };
  if ($("nt-seed").value !== "") simulate.seed = Number($("nt-seed").value);
  const type = $("nt-type").value;
  if (!type) { setMsg("new-test-msg", "No sensor type to choose from (is the sensor service up?)", "error"); return; }
  const r = await api(`/test/sensor/${encodeURIComponent(type)}`, { method: "POST", json: { simulate } });
  if (!r.ok) { setMsg("new-test-msg", `Could not start the test: ${r.error}`, "error"); return; }
  setMsg("new-test-msg", `Test ${r.data.test_id} ${r.data.status}.`, "ok");
  selectTest(r.data.test_id);
  refreshTests();
}

// ---- test list and detail ---------------------------------------------------------------
async function refreshTests() {
  if (!session.token) return;
  const q = new URLSearchParams({ limit: "20" });
  for (const [k, id] of [["sensor_type", "f-type"], ["verdict", "f-verdict"], ["status", "f-status"]]) {
    if ($(id).value) q.set(k, $(id).value);
  }
  const r = await api(`/tests?${q}`);
  if (!r.ok) { setMsg("tests-msg", `Tests unavailable: ${r.error}`, "error"); return; }
  const rows = (r.data.items || []).map((t) => {
    const tr = h("tr", { "data-test": t.test_id, class: t.test_id === ui.selected ? "selected" : "" },
      h("td", {}, (t.created_at || "").replace("T", " ").slice(0, 19)), h("td", {}, t.sensor_type),
      h("td", {}, t.device_id), h("td", { class: `state-${t.status}` }, t.status),
      h("td", { class: `verdict-${t.verdict}` }, t.verdict || "—"));
    tr.addEventListener("click", () => selectTest(t.test_id));
    return tr;
  });
  $("tests").tBodies[0].replaceChildren(...rows);
  setMsg("tests-msg", rows.length ? "" : "No tests match.");
}

function selectTest(id) {
  ui.selected = id;
  clearTimeout(ui.detailTimer);
  for (const tr of $("tests").tBodies[0].rows) tr.classList.toggle("selected", tr.dataset.test === id);
  loadDetail(id);
}

async function loadDetail(id) {
  const r = await api(`/test/${encodeURIComponent(id)}`);
  if (id !== ui.selected) return;
  if (!r.ok) {
    $("detail").replaceChildren(h("p", { class: "msg error" }, `Test ${id} unavailable: ${r.error}`));
  } else {
    let series = null;
    if (r.data.result) {
      // The readings with reference and tolerance band (thinned by the service, flagged kept).
      const s = await api(`/test/${encodeURIComponent(id)}/readings?max_points=3000`);
      if (id !== ui.selected) return;
      if (s.ok) series = s.data;
    }
    renderDetail(r.data, series);
    if (r.data.status !== "queued" && r.data.status !== "running") { refreshTests(); return; }
  }
  ui.detailTimer = setTimeout(() => loadDetail(id), 1000);
}

function kv(pairs) {
  const dl = h("dl", { class: "kv" });
  for (const [k, v] of pairs) dl.append(h("dt", {}, k), h("dd", {}, v));
  return dl;
}

function renderDetail(doc, series) {
  const res = doc.result;
  const unit = (series && series.unit) || (doc.spec && doc.spec.unit) || "";
  const parts = [h("p", { "data-test-status": doc.status, "data-test-id": doc.test_id },
    "Status ", h("strong", { class: `state-${doc.status}` }, doc.status),
    res ? " — verdict " : "", res ? h("strong", { class: `verdict-${res.verdict}`, "data-verdict": res.verdict }, res.verdict) : "")];
  parts.push(kv([["test", doc.test_id], ["type", doc.sensor_type], ["device", doc.device_id], ["readings", doc.n_readings],
    ["source", doc.source], ["processing", doc.processing_ms == null ? "—" : `${doc.processing_ms} ms`],
    ["faults", ((doc.params && doc.params.simulate && doc.params.simulate.faults) || []).map((f) => f.kind || f).join(", ") || "none"]]));
  if (doc.error || doc.last_error) parts.push(h("p", { class: "msg error" }, doc.error || doc.last_error));
  if (!res) { $("detail").replaceChildren(...parts); return; }
  parts.push(reportLink(doc.test_id));
  parts.push(h("h3", {}, "Reasons"), h("ul", { class: "reasons" }, ...((res.reasons || []).length ? res.reasons : ["none"]).map((x) => h("li", {}, x))));
  if ((res.notes || []).length) parts.push(h("ul", { class: "note" }, ...res.notes.map((x) => h("li", {}, x))));
  parts.push(h("h3", {}, "Decision rule"), decisionBlock(res, unit));
  const plot = h("div", { class: "chart", "data-plot": "test" });
  parts.push(h("h3", {}, "Readings"), plot);
  const checks = Object.entries(res.checks || {});
  const haveSeries = series && Array.isArray(series.values);
  const haveReference = haveSeries && Array.isArray(series.reference) && series.reference.length === series.values.length;
  if (haveSeries) {
    parts.push(h("p", { class: "note" }, haveReference
      ? "Readings with reference and tolerance band; amber suspect, red failed points."
      : "Readings (no reference given); amber suspect, red failed points."));
  } else {
    parts.push(h("p", { class: "note" },
      "Readings unavailable: the plot shows, per check, which readings (by index) were flagged suspect (amber) or failed (red)."));
  }
  const errBox = h("div", { class: "chart", "data-plot": "error" });
  if (haveReference) {
    parts.push(h("h3", {}, "Error against the reference"), errBox, h("p", { class: "note" },
      "Each reading's error with the tolerance and, under guarded acceptance, the guard band; the verdict judges points " +
      "(means of readings) after the datasheet response time, so the error of a lagging sensor right after a reference step is not an accuracy failure."));
  }
  const response = responseFigure(res, unit);
  const allan = allanFigure(res, unit);
  if (res.uncertainty || res.calibration || res.response) {
    parts.push(h("h3", {}, "Uncertainty budget"), budgetTable(res.uncertainty, unit),
      h("h3", {}, "Calibration"), calibrationTable(res.calibration, unit));
    parts.push(h("div", { class: "pair" },
      h("section", {}, h("h3", {}, "Response time"), response.node),
      h("section", {}, h("h3", {}, "Allan deviation"), allan.node)));
  } else {
    parts.push(h("p", { class: "note", "data-reference-figures": "none" },
      "No uncertainty budget, calibration figures, response times or Allan deviation: they are figures of the error against a reference."));
  }
  parts.push(h("h3", {}, "Metrics"), metrics(res), h("h3", {}, "Checks"), checksTable(checks));
  $("detail").replaceChildren(...parts);
  if (haveSeries) {
    // Flagged indices refer to readings; map them to positions in the thinned series.
    const pos = new Map(series.index.map((reading, i) => [reading, i]));
    const flagged = { suspect: [], fail: [] };
    for (const [, c] of checks) {
      for (const i of c.suspect_indices || []) if (pos.has(i)) flagged.suspect.push(pos.get(i));
      for (const i of c.fail_indices || []) if (pos.has(i)) flagged.fail.push(pos.get(i));
    }
    const root = Plot.readings(plot, { t: series.timestamps, values: series.values, unit,
      quantity: `${QUANTITY(doc.spec)} (${unit})`, reference: series.reference, tolerance: series.tolerance || 0, flagged });
    root.setAttribute("data-series", "readings");
    if (haveReference) errorPlot(errBox, series, res, unit);
  } else {
    Plot.flags(plot, checks.map(([name, c]) => ({ name, suspect: c.suspect_indices, fail: c.fail_indices })), doc.n_readings || 1);
  }
  response.draw();
  allan.draw();
}

// The printable report (GET /test/{id}/report, and .pdf) needs the bearer token, which a
// plain link does not carry (and the token never goes into a URL): fetch it with the token,
// then show it from a blob URL in a tab opened at the click (so no popup blocker stops it).
const REPORT_FORMATS = {
  html: { path: "report", accept: "text/html", type: "text/html;charset=utf-8" },
  pdf: { path: "report.pdf", accept: "application/pdf", type: "application/pdf" },
};

function reportLink(id) {
  const msg = h("span", { class: "msg", "data-report-msg": "" });
  const link = h("a", { href: "#", class: "report-link", "data-report-link": id }, "Printable report");
  const pdf = h("a", { href: "#", class: "report-link", "data-report-pdf-link": id }, "PDF");
  link.addEventListener("click", (event) => { event.preventDefault(); openReport(id, msg, "html"); });
  pdf.addEventListener("click", (event) => { event.preventDefault(); openReport(id, msg, "pdf"); });
  return h("p", { class: "links" }, link, " (HTML for A4, to print) · ", pdf, " (A4, rendered by the server) ", msg);
}

async function openReport(id, msg, format) {
  const fmt = REPORT_FORMATS[format];
  const tab = window.open("", "_blank");
  if (tab) tab.opener = null;  // the report's tab gets no handle on the console
  msg.className = "msg";
  msg.textContent = "";
  const fail = (text) => {
    if (tab) tab.close();
    msg.className = "msg error";
    msg.textContent = `Report unavailable: ${text}`;
  };
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(), 4 * FETCH_TIMEOUT_MS);
  try {
    const resp = await fetch(`/test/${encodeURIComponent(id)}/${fmt.path}`, {
      headers: { Accept: fmt.accept, Authorization: `Bearer ${session.token}` }, signal: ctrl.signal,
    });
    if (!resp.ok) {
      let data = null;
      try { data = await resp.json(); } catch (_) { data = null; }
      fail(errorText(resp.status, data));
      return;
    }
    const url = URL.createObjectURL(new Blob([await resp.arrayBuffer()], { type: fmt.type }));
    if (tab) {
      tab.location.href = url;
    } else {  // popups blocked: a link to it, never navigating this page (the token lives here)
      msg.replaceChildren(h("a", { href: url, target: "_blank", download: `report-${id}.${format}` }, "open the report"));
    }
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  } catch (err) {
    fail(err && err.name === "AbortError" ? "timed out" : "gateway unreachable");
  } finally {
    clearTimeout(timer);
  }
}

function metrics(res) {
  const s = res.stats || {}; const a = res.accuracy || {}; const g = res.gaps || {};
  const f = Plot.fmt;
  return kv([["count", s.count], ["mean ± std", `${f(s.mean)} ± ${f(s.std)}`], ["min / max", `${f(s.min)} / ${f(s.max)}`],
    ["bias", f(a.bias)], ["max |error|", f(a.max_abs_error)], ["rmse", f(a.rmse)],
    ["within tolerance", a.fraction_within_tolerance == null ? "—" : `${(a.fraction_within_tolerance * 100).toFixed(1)} %`],
    ["noise rms", `${f(res.noise_rms)} (${res.noise_method || "—"})`], ["drift per hour", f(res.drift_per_hour)],
    ["saturated", res.saturation_count], ["gaps", g.gap_count ?? "—"]]);
}

function checksTable(checks) {
  const head = h("tr", {}, ...["check", "flag", "value", "limit", "suspect", "fail", "message"].map((x) => h("th", {}, x)));
  const rows = checks.map(([name, c]) => h("tr", { "data-check": name }, h("td", {}, name),
    h("td", { class: `flag-${c.flag}` }, { 1: "pass", 2: "not evaluated", 3: "suspect", 4: "fail", 9: "missing" }[c.flag] || c.flag),
    h("td", {}, Plot.fmt(c.value)), h("td", {}, Plot.fmt(c.limit)),
    h("td", {}, (c.suspect_indices || []).length + (c.suspect_truncated ? "+" : "")),
    h("td", {}, (c.fail_indices || []).length + (c.fail_truncated ? "+" : "")), h("td", {}, c.message)));
  return h("table", { class: "checks" }, h("thead", {}, head), h("tbody", {}, ...rows));
}

// ---- reference figures (issue 13): error plot, decision rule, budget, calibration -------
const QUANTITY = (spec) => String((spec && spec.quantity) || "reading").replace(/_/g, " ");
const COLORS = { ok: "#2e9e44", warn: "#d99a00", bad: "#d33a2c", ref: "#3b6fd8", t90: "#7a3fc4", ink: "#1d2330" };

function withUnit(s, unit) { return unit ? `${s} ${unit}` : s; }

// A value with its expanded uncertainty, both rounded where U's second significant digit is.
function valueU(v, u, unit) {
  if (!Number.isFinite(v)) return "—";
  if (!Number.isFinite(u) || u <= 0) return withUnit(Plot.sig(v, 3), unit);
  const dec = Math.min(12, Math.max(0, 1 - Math.floor(Math.log10(u))));
  const m = (x) => x.toFixed(dec).replace("-", "\u2212");
  return withUnit(`${m(v)} ± ${m(u)}`, unit);
}

// A probability as a percentage a person reads at a glance.
function probability(p) {
  if (!Number.isFinite(p)) return "—";
  const q = p * 100;
  if (q < 0.001) return "< 0.001 %";
  if (q < 1) return `${Plot.sig(q, 2)} %`;
  return `${q.toFixed(1)} %`;
}

// The decision rule in words, from the result's `decision` (ILAC-G8:09/2019).
function decisionWords(res, unit) {
  const d = res.decision;
  if (!d) return null;
  const u = res.uncertainty;
  const m = (u && u.readings_per_point) || 10;
  const lead = d.rule === "simple"
    ? "Simple acceptance (ILAC-G8 4.2.1, shared risk): pass requires |error| ≤ tolerance; no guard band, so a result at the limit has a 50 % probability of false accept"
    : `Guarded acceptance (ILAC-G8 4.2.2): pass requires |error| + U ≤ tolerance, guard band w = U = ${withUnit(Plot.sig(d.guard_band, 2), unit)}; results between the guarded and simple limits are suspect, beyond the tolerance fail`;
  const counts = `${d.points} points (means of ${m} readings): ${d.conditional_points} in the conditional zone, ${d.rejected_points} beyond the tolerance`;
  const worst = `worst point error ${withUnit(Plot.sig(d.worst_error, 3), unit)} against ±${withUnit(Plot.sig(d.worst_tolerance, 3), unit)}; probability of false accept at the worst point: ${probability(d.false_accept_probability)}`;
  return `${lead}. ${counts}; ${worst}.`;
}

function decisionBlock(res, unit) {
  const words = decisionWords(res, unit);
  if (!words) {
    const why = res.mode === "values"
      ? "no reference was given, so the QARTOD tests ran on the values (mode \"values\"); accuracy, its uncertainty and the calibration figures need a reference"
      : "this result has no decision section (it predates decision rules, or its accuracy was not evaluated)";
    return h("p", { class: "note", "data-decision-rule": "none" }, `No decision rule applied: ${why}.`);
  }
  const d = res.decision;
  const state = { 1: "pass", 3: "suspect", 4: "fail" }[d.flag] || "";
  return h("p", { class: `decision verdict-border-${state}`, "data-decision-rule": d.rule, title: res.decision_rule_text || "" }, words);
}

// Position in the thinned series of reading `reading` (series.index is sorted).
function seriesPos(index, reading) {
  let lo = 0; let hi = index.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (index[mid] < reading) lo = mid + 1; else hi = mid;
  }
  if (lo > 0 && Math.abs(index[lo - 1] - reading) < Math.abs(index[lo] - reading)) lo -= 1;
  return lo;
}

// Error = reading - reference over time, with the tolerance, the guard band and the flags.
function errorPlot(container, series, res, unit) {
  const n = series.values.length;
  const ta = Plot.timeAxis(series.timestamps, n);
  const x = ta.x;
  const err = series.values.map((v, i) => (Number.isFinite(v) && Number.isFinite(series.reference[i]) ? v - series.reference[i] : NaN));
  const tolArr = Array.isArray(series.tolerance) ? series.tolerance : series.values.map(() => Number(series.tolerance) || 0);
  const d = res.decision;
  const w = d && d.rule === "guarded" ? d.guard_band || 0 : 0;
  const inner = tolArr.map((tl) => Math.max(0, tl - w));
  const layers = [];
  const legend = [];
  if (w > 0) {
    layers.push({ type: "band", x, lo: inner, hi: tolArr, fill: "#d99a0040", cls: "conditional-zone" });
    layers.push({ type: "band", x, lo: tolArr.map((tl) => -tl), hi: inner.map((v) => -v), fill: "#d99a0040", cls: "conditional-zone" });
    layers.push({ type: "band", x, lo: inner.map((v) => -v), hi: inner, fill: "#2e9e4422", cls: "guarded-zone" });
    legend.push({ label: "pass: |error| + U ≤ tolerance", color: "#2e9e4433", kind: "band" },
      { label: `conditional zone (suspect), w = U = ${withUnit(Plot.sig(w, 2), unit)}`, color: "#d99a0055", kind: "band" });
  } else {
    layers.push({ type: "band", x, lo: tolArr.map((tl) => -tl), hi: tolArr, fill: "#2e9e4422", cls: "guarded-zone" });
    legend.push({ label: "pass: |error| ≤ tolerance (simple acceptance)", color: "#2e9e4433", kind: "band" });
  }
  layers.push({ type: "line", x, y: tolArr, stroke: COLORS.bad, dash: "6 3", cls: "tolerance-line" });
  layers.push({ type: "line", x, y: tolArr.map((v) => -v), stroke: COLORS.bad, dash: "6 3", cls: "tolerance-line" });
  const [tolMin, tolMax] = Plot.extent([tolArr]);
  const tolWords = tolMax - tolMin <= 1e-9 * Math.max(1, tolMax) ? `±${withUnit(Plot.sig(tolMax, 3), unit)}` : `±${Plot.sig(tolMin, 3)} to ±${withUnit(Plot.sig(tolMax, 3), unit)} with the level`;
  legend.push({ label: `datasheet tolerance ${tolWords}`, color: COLORS.bad, dash: "6 3" });
  layers.push({ type: "line", x, y: err, stroke: COLORS.ink, cls: "error-line" });
  legend.push({ label: "error = reading − reference", color: COLORS.ink });
  const flags = Array.isArray(series.flags) && series.flags.length === n ? series.flags : null;
  if (flags) {
    for (const [flag, color, label] of [[3, COLORS.warn, "suspect"], [4, COLORS.bad, "fail"]]) {
      const idx = []; flags.forEach((f, i) => { if (f === flag) idx.push(i); });
      if (idx.length) {
        layers.push({ type: "points", x: idx.map((i) => x[i]), y: idx.map((i) => err[i]), fill: color, r: 2.5, cls: `flag-${flag}` });
        legend.push({ label, color, kind: "point" });
      }
    }
  }
  if (d && Array.isArray(series.index) && series.index.length === n && Number.isFinite(d.worst_error)) {
    const m = (res.uncertainty && res.uncertainty.readings_per_point) || 10;
    const pos = seriesPos(series.index, d.worst_index * m + Math.floor(m / 2));
    layers.push({ type: "points", x: [x[pos]], y: [d.worst_error], shape: "diamond", fill: "#fff", stroke: COLORS.ref, r: 5, cls: "worst-point",
      titles: [`worst point: mean error ${withUnit(Plot.sig(d.worst_error, 3), unit)} against ±${Plot.sig(d.worst_tolerance, 3)}`] });
    layers.push({ type: "label", x: x[pos], y: d.worst_error, dx: 8, dy: d.worst_error > 0 ? -6 : 12, text: "worst point", extent: false });
    legend.push({ label: "worst point (mean of a point)", color: "#fff", stroke: COLORS.ref, kind: "point" });
  }
  const root = Plot.chart(container, { width: 900, height: 300, label: "error against the reference",
    x: { title: ta.title, unit: ta.unit, ticks: 10 }, y: { title: `error (${unit})`, unit, ticks: 6, pad: 0.04 }, layers, legend });
  root.setAttribute("data-series", "error");
  return root;
}

function budgetTable(u, unit) {
  if (!u) return h("p", { class: "note", "data-budget": "none" }, "No uncertainty budget: it needs a reference.");
  const total = u.combined > 0 ? u.combined ** 2 : 0;
  const num = (v) => h("td", { class: "num" }, withUnit(Plot.sig(v, 3), unit));
  const head = h("tr", {}, ...["component", "type", "distribution", "standard uncertainty u", "share of u_c²", "basis"].map((x) => h("th", {}, x)));
  const rows = (u.components || []).map((c) => h("tr", { "data-component": c.name },
    h("td", {}, c.name), h("td", {}, c.kind), h("td", {}, c.distribution), num(c.standard_uncertainty),
    h("td", { class: "num" }, total ? `${((c.standard_uncertainty ** 2 / total) * 100).toFixed(1)} %` : "—"),
    h("td", { class: "basis" }, c.basis)));
  rows.push(h("tr", { class: "total", "data-component": "combined" }, h("th", { colSpan: 3 }, "combined standard uncertainty u_c (root sum of squares)"), num(u.combined), h("td", { class: "num" }, "100 %"), h("td", {}, "")));
  rows.push(h("tr", { class: "total", "data-component": "expanded" }, h("th", { colSpan: 3 }, `expanded uncertainty U = k·u_c, k = ${Plot.sig(u.k, 2)} (≈ 95 %)`), num(u.expanded), h("td", {}, ""), h("td", { class: "basis" }, `per point: mean of ${u.readings_per_point} readings (GUM, JCGM 100:2008)`)));
  return h("table", { class: "budget", "data-budget": "table" }, h("thead", {}, head), h("tbody", {}, ...rows));
}

// Calibration figures: value, expanded uncertainty, where it applies; "not evaluated" with why.
function calibrationTable(cal, unit) {
  if (!cal) return h("p", { class: "note", "data-calibration": "none" }, "No calibration figures: they need a reference.");
  const rows = [
    ["offset", cal.offset, unit, "reference level", "reading = offset + gain · reference"],
    ["gain", cal.gain, "", "reference level", ""],
    ["linearity", cal.linearity, unit, "at reference", "largest deviation of the point errors from the fitted line"],
    ["hysteresis", cal.hysteresis, unit, "at reference", "rising against falling approaches"],
    ["repeatability", cal.repeatability, unit, "at reference", "pooled std of repeated set points"],
    ["Allan deviation minimum", cal.allan_minimum, unit, "at τ", "best averaging time of the error"],
    ["Allan slope", cal.allan_slope, "", "up to τ", "−1/2 white noise, 0 flicker, +1/2 random walk, +1 drift"],
  ];
  const head = h("tr", {}, ...["figure", "value (± U, k = 2)", "where", "meaning"].map((x) => h("th", {}, x)));
  const body = rows.map(([name, f, u, where, meaning]) => {
    const fig = f || { value: null, why: "not evaluated: not in this result" };
    const missing = fig.value === null || fig.value === undefined;
    const atUnit = where === "at τ" || where === "up to τ" ? "s" : unit;
    const at = Number.isFinite(fig.at) ? `${where.replace("reference level", "at reference")} ${withUnit(Plot.sig(fig.at, 3), atUnit)}` : "";
    const value = missing ? "not evaluated" : (name === "Allan slope" ? Plot.sig(fig.value, 2).replace(/^(\d)/, "+$1") : valueU(fig.value, fig.uncertainty, u));
    const cells = missing
      ? [h("td", { class: "num" }, "not evaluated"), h("td", { class: "why", colSpan: 2 }, `why: ${String(fig.why || "not evaluated").replace(/^not evaluated: /, "")}`)]
      : [h("td", { class: "num" }, value), h("td", {}, at), h("td", { class: "basis" }, meaning)];
    return h("tr", { "data-figure": name, class: missing ? "not-evaluated" : "" }, h("td", {}, name), ...cells);
  });
  const parts = [h("table", { class: "calibration", "data-calibration": "table" }, h("thead", {}, head), h("tbody", {}, ...body))];
  if (cal.offset && Number.isFinite(cal.offset.value) && cal.gain && Number.isFinite(cal.gain.value)) {
    parts.push(h("p", { class: "note", "data-correction": "" },
      `Correction to load into the device: corrected = (reading − (${Plot.sig(cal.offset.value, 4)})) / ${Plot.sig(cal.gain.value, 6)}`));
  }
  return h("div", {}, ...parts);
}

// t63 and t90 of each reference step against the datasheet figures.
function responseFigure(res, unit) {
  const r = res.response;
  const box = h("div", { class: "chart", "data-plot": "response" });
  if (!r) return { node: h("p", { class: "note", "data-plot": "response" }, "Response time: not in this result."), draw: () => {} };
  const steps = r.steps || [];
  const limit = res.checks && res.checks.response_time ? res.checks.response_time.limit : null;
  const ds63 = r.datasheet_tau63_s; const ds90 = r.datasheet_t90_s;
  const sheet = ds63 ? `datasheet τ63 ${Plot.sig(ds63, 3)} s, t90 ${Plot.sig(ds90, 3)} s` : "no datasheet response time: set response_tau_s in spec_overrides";
  if (!steps.length) {
    return { node: h("p", { class: "note", "data-plot": "response" }, `Response time not evaluated: ${r.why || "no reference step"}; ${sheet}.`), draw: () => {} };
  }
  const med = (a) => { const s = a.filter(Number.isFinite).sort((p, q) => p - q); return s.length ? s[Math.floor(s.length / 2)] : NaN; };
  const t63 = steps.map((s) => (s.t63_s === null ? NaN : s.t63_s));
  const t90 = steps.map((s) => (s.t90_s === null ? NaN : s.t90_s));
  const missed = t63.filter((v) => !Number.isFinite(v)).length;
  const summary = `${steps.length} reference step(s): median t63 ${Plot.sig(med(t63), 3)} s, median t90 ${Plot.sig(med(t90), 3)} s; ${sheet}${limit ? `; suspect when t63 > ${Plot.sig(limit, 3)} s` : ""}${missed ? `; ${missed} step(s) never reached 63 %` : ""}.`;
  const draw = () => {
    const xs = steps.map((_, i) => i + 1);
    const title = (s, i) => `step ${i + 1} at reading ${s.index}: ${s.size > 0 ? "+" : ""}${Plot.sig(s.size, 3)} ${unit}, t63 ${Plot.sig(s.t63_s, 3)} s, t90 ${Plot.sig(s.t90_s, 3)} s, dwell ${Plot.sig(s.dwell_s, 3)} s`;
    const titles = steps.map(title);
    const rising = (pred) => steps.map((s, i) => (pred(s) ? i : -1)).filter((i) => i >= 0);
    const up = rising((s) => s.size > 0); const down = rising((s) => s.size <= 0);
    const layers = [];
    const legend = [];
    for (const [vals, color, shape, name] of [[t63, COLORS.ref, "circle", "t63"], [t90, COLORS.t90, "square", "t90"]]) {
      layers.push({ type: "points", x: up.map((i) => xs[i]), y: up.map((i) => vals[i]), fill: color, stroke: color, shape, r: 4, titles: up.map((i) => titles[i]), cls: `${name}-point` });
      layers.push({ type: "points", x: down.map((i) => xs[i]), y: down.map((i) => vals[i]), fill: "#fff", stroke: color, shape, r: 4, titles: down.map((i) => titles[i]), cls: `${name}-point` });
    }
    legend.push({ label: "t63", color: COLORS.ref, kind: "point" }, { label: "t90", color: COLORS.t90, kind: "square" },
      { label: "filled: rising step, open: falling", color: "#fff", stroke: "#556", kind: "point" });
    for (const [v, color, dash, label] of [[ds63, COLORS.ref, "5 3", `datasheet τ63 ${Plot.sig(ds63, 3)} s`],
      [ds90, COLORS.t90, "5 3", `datasheet t90 ${Plot.sig(ds90, 3)} s`], [limit, COLORS.warn, "2 3", `t63 suspect above ${Plot.sig(limit, 3)} s`]]) {
      if (!Number.isFinite(v)) continue;
      layers.push({ type: "hline", y: v, stroke: color, dash, cls: "datasheet-line" });
      legend.push({ label, color, dash });
    }
    const root = Plot.chart(box, { width: 600, height: 280, label: "response time per reference step",
      x: { title: "reference step (in time order)", unit: "", integer: true, min: 0, max: steps.length + 1, ticks: Math.min(10, steps.length + 1) },
      y: { title: "response time (s)", unit: "s", min: 0, ticks: 5 }, layers, legend });
    root.setAttribute("data-series", "response");
  };
  return { node: h("div", {}, box, h("p", { class: "note", "data-response-summary": "" }, summary)), draw };
}

// Overlapping Allan deviation of the error, log-log, with its minimum marked.
function allanFigure(res, unit) {
  const cal = res.calibration;
  const pts = (cal && cal.allan) || [];
  const box = h("div", { class: "chart", "data-plot": "allan" });
  if (!pts.length) {
    const why = (cal && cal.allan_minimum && cal.allan_minimum.why) || "it needs a reference and enough readings";
    return { node: h("p", { class: "note", "data-plot": "allan" }, `Allan deviation not evaluated: ${why.replace(/^not evaluated: /, "")}.`), draw: () => {} };
  }
  const min = cal.allan_minimum || {};
  const slope = cal.allan_slope || {};
  const words = Number.isFinite(min.value)
    ? `Minimum ${withUnit(Plot.sig(min.value, 3), unit)} at τ = ${Plot.sig(min.at, 3)} s (the best averaging time)${Number.isFinite(slope.value) ? `; slope ${Plot.sig(slope.value, 2)} up to τ = ${Plot.sig(slope.at, 3)} s (−1/2 white noise, +1 drift)` : ""}.`
    : "No minimum within the averaging times the series supports.";
  const draw = () => {
    const tau = pts.map((p) => p.tau_s); const adev = pts.map((p) => p.adev);
    const layers = [
      { type: "line", x: tau, y: adev, stroke: COLORS.ref, width: 1.5, cls: "allan-line" },
      { type: "points", x: tau, y: adev, fill: COLORS.ref, r: 2.5, titles: pts.map((p) => `τ ${Plot.sig(p.tau_s, 3)} s: σ ${Plot.sig(p.adev, 3)} ${unit}`) },
    ];
    const legend = [{ label: "Allan deviation of the error", color: COLORS.ref }];
    if (Number.isFinite(min.value) && Number.isFinite(min.at)) {
      layers.push({ type: "points", x: [min.at], y: [min.value], stroke: COLORS.bad, r: 7, strokeWidth: 2, cls: "allan-minimum",
        titles: [`minimum ${Plot.sig(min.value, 3)} ${unit} at τ ${Plot.sig(min.at, 3)} s`] });
      legend.push({ label: `minimum ${withUnit(Plot.sig(min.value, 2), unit)} at τ = ${Plot.sig(min.at, 3)} s`, color: "#fff", stroke: COLORS.bad, kind: "point" });
    }
    const root = Plot.chart(box, { width: 600, height: 280, label: "Allan deviation of the error",
      x: { title: "averaging time τ", unit: "s", log: true }, y: { title: `Allan deviation σ(τ) (${unit})`, unit, log: true }, layers, legend });
    root.setAttribute("data-series", "allan");
  };
  return { node: h("div", {}, box, h("p", { class: "note", "data-allan-summary": "" }, words)), draw };
}

// ---- wiring -----------------------------------------------------------------------------
function init() {
  $("nt-faults").append(...FAULTS.map((f) =>
    h("label", {}, h("input", { type: "checkbox", id: `fault-${f}`, value: f }), ` ${f}`)));
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  $("new-test").addEventListener("submit", startTest);
  $("test-filters").addEventListener("submit", (e) => { e.preventDefault(); refreshTests(); });
  renderSession();
  refreshSystem();
  refreshSlo();
  setInterval(refreshSystem, POLL_MS);
  setInterval(refreshSlo, 5 * POLL_MS);
  setInterval(refreshStats, POLL_MS);
  setInterval(refreshTests, 5 * POLL_MS);
}

document.addEventListener("DOMContentLoaded", init);
