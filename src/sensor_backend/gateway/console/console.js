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
  const parts = [h("p", { "data-test-status": doc.status },
    "Status ", h("strong", { class: `state-${doc.status}` }, doc.status),
    res ? " — verdict " : "", res ? h("strong", { class: `verdict-${res.verdict}`, "data-verdict": res.verdict }, res.verdict) : "")];
  parts.push(kv([["test", doc.test_id], ["type", doc.sensor_type], ["device", doc.device_id], ["readings", doc.n_readings],
    ["source", doc.source], ["processing", doc.processing_ms == null ? "—" : `${doc.processing_ms} ms`],
    ["faults", ((doc.params && doc.params.simulate && doc.params.simulate.faults) || []).map((f) => f.kind || f).join(", ") || "none"]]));
  if (doc.error || doc.last_error) parts.push(h("p", { class: "msg error" }, doc.error || doc.last_error));
  if (res) {
    parts.push(h("h3", {}, "Reasons"), h("ul", { class: "reasons" }, ...((res.reasons || []).length ? res.reasons : ["none"]).map((x) => h("li", {}, x))));
    if ((res.notes || []).length) parts.push(h("ul", { class: "note" }, ...res.notes.map((x) => h("li", {}, x))));
    const plot = h("div", { class: "chart", "data-plot": "test" });
    parts.push(h("h3", {}, "Plot"), plot);
    const checks = Object.entries(res.checks || {});
    if (series && Array.isArray(series.values)) {
      parts.push(h("p", { class: "note" }, "Readings with reference and tolerance band; amber suspect, red failed points."));
    } else {
      parts.push(h("p", { class: "note" },
        "Readings unavailable: the plot shows, per check, which readings (by index) were flagged suspect (amber) or failed (red)."));
    }
    parts.push(h("h3", {}, "Metrics"), metrics(res), h("h3", {}, "Checks"), checksTable(checks));
    $("detail").replaceChildren(...parts);
    if (series && Array.isArray(series.values)) {
      // Flagged indices refer to readings; map them to positions in the thinned series.
      const pos = new Map(series.index.map((reading, i) => [reading, i]));
      const flagged = { suspect: [], fail: [] };
      for (const [, c] of checks) {
        for (const i of c.suspect_indices || []) if (pos.has(i)) flagged.suspect.push(pos.get(i));
        for (const i of c.fail_indices || []) if (pos.has(i)) flagged.fail.push(pos.get(i));
      }
      const root = Plot.readings(plot, { t: series.timestamps, values: series.values,
        reference: series.reference, tolerance: series.tolerance || 0, flagged });
      root.setAttribute("data-series", "readings");
    } else {
      Plot.flags(plot, checks.map(([name, c]) => ({ name, suspect: c.suspect_indices, fail: c.fail_indices })), doc.n_readings || 1);
    }
    return;
  }
  $("detail").replaceChildren(...parts);
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
