// Minimal SVG plotting for the console: no libraries, no build step, no inline script.
// Every label is set with textContent, so data from the API cannot inject markup.
// Axes tick at round numbers (1-2-5 steps, decades on log axes) and every tick label
// carries its unit.
"use strict";

const Plot = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const MINUS = "\u2212";

  function el(name, attrs, parent) {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (parent) parent.appendChild(node);
    return node;
  }

  function text(parent, x, y, content, attrs) {
    const t = el("text", { x, y, ...(attrs || {}) }, parent);
    t.textContent = content;
    return t;
  }

  function fmt(v) {
    if (v === null || v === undefined || !Number.isFinite(v)) return "—";
    const a = Math.abs(v);
    if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(2);
    return String(Math.round(v * 1000) / 1000);
  }

  // v to `digits` significant digits, without a trailing exponent for ordinary magnitudes.
  function sig(v, digits = 3) {
    if (v === null || v === undefined || !Number.isFinite(v)) return "—";
    if (v === 0) return "0";
    const r = Number(v.toPrecision(digits));  // 0.99999 to 3 digits is 1.00, not 1.000
    const a = Math.abs(r);
    if (a >= 1e6 || a < 1e-4) return r.toExponential(digits - 1).replace("-", MINUS);
    const dec = Math.max(0, digits - 1 - Math.floor(Math.log10(a)));
    return r.toFixed(Math.min(dec, 12)).replace("-", MINUS);
  }

  const withUnit = (s, unit) => (unit ? `${s} ${unit}` : s);

  function svg(width, height, label) {
    return el("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label });
  }

  // ---- axes ----------------------------------------------------------------------------
  // The 1-2-5 step giving about `target` intervals over `span`.
  function niceStep(span, target) {
    const raw = span / Math.max(1, target);
    const p = 10 ** Math.floor(Math.log10(raw));
    const m = raw / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
  }

  function tickText(v, step) {
    const a = Math.abs(step);
    if (a >= 1e6 || a < 1e-5) return v === 0 ? "0" : v.toExponential(1).replace("-", MINUS);
    const dec = Math.max(0, -Math.floor(Math.log10(a) + 1e-9));
    const s = v.toFixed(dec);
    return (Number(s) === 0 ? "0" : s).replace("-", MINUS);
  }

  // Linear axis over [min, max], widened to round numbers: {lo, hi, ticks: [{v, label}]}.
  function linearAxis(min, max, o) {
    let lo = Number.isFinite(min) ? min : 0;
    let hi = Number.isFinite(max) ? max : 1;
    if (hi <= lo) {
      const pad = Math.abs(lo) > 0 ? Math.abs(lo) * 0.1 : 1;
      lo -= pad; hi += pad;
    }
    let step = niceStep(hi - lo, o.ticks || 5);
    if (o.integer) step = Math.max(1, Math.round(step));
    const first = Math.floor(lo / step + 1e-9);
    const last = Math.ceil(hi / step - 1e-9);
    const ticks = [];
    for (let i = first; i <= last; i += 1) {
      const v = i * step;
      ticks.push({ v, label: withUnit(tickText(v, step), o.unit) });
    }
    return { lo: first * step, hi: last * step, ticks, log: false };
  }

  function logText(v) {
    if (v >= 1e-3 && v < 1e5) return String(Number(v.toPrecision(1)));
    const e = Math.floor(Math.log10(v) + 1e-9);
    const m = Math.round(v / 10 ** e);
    return `${m === 1 ? "" : `${m}×`}1e${e}`.replace("-", MINUS);
  }

  // Log axis: decades, and 2 and 5 between them when the axis spans three decades or fewer.
  function logAxis(min, max, o) {
    const lo = Number.isFinite(min) && min > 0 ? min : 1;
    const hi = Number.isFinite(max) && max > lo ? max : lo * 10;
    // A relative slack of 1e-4 so 0.99999 s (a mean interval) starts the axis at 1 s, not 0.1 s.
    const e0 = Math.floor(Math.log10(lo) + 1e-4);
    let e1 = Math.ceil(Math.log10(hi) - 1e-4);
    if (e1 <= e0) e1 = e0 + 1;
    const mult = e1 - e0 <= 3 ? [1, 2, 5] : [1];
    const ticks = [];
    for (let e = e0; e <= e1; e += 1) {
      for (const m of mult) {
        const v = m * 10 ** e;
        if (v <= 10 ** e1 * 1.0001) ticks.push({ v, label: withUnit(logText(v), o.unit) });
      }
    }
    // Trim to the data's decades' 1-2-5 neighbours, so a 2-decade plot does not waste room.
    while (ticks.length > 2 && ticks[1].v <= lo) ticks.shift();
    while (ticks.length > 2 && ticks[ticks.length - 2].v >= hi) ticks.pop();
    return { lo: ticks[0].v, hi: ticks[ticks.length - 1].v, ticks, log: true };
  }

  // [min, max] of the finite (and, for a log axis, positive) values of some arrays: a loop,
  // not Math.min(...a), which overflows the stack on a few hundred thousand readings.
  function extent(arrays, log) {
    let min = Infinity; let max = -Infinity;
    for (const a of arrays) {
      for (const v of a) {
        if (Number.isFinite(v) && (!log || v > 0)) {
          if (v < min) min = v;
          if (v > max) max = v;
        }
      }
    }
    return [min, max];
  }

  function axis(arrays, o) {
    const [lo, hi] = extent(arrays, o.log);
    let min = o.min !== undefined ? o.min : lo;
    let max = o.max !== undefined ? o.max : hi;
    if (o.pad && !o.log && max > min) {  // room so a line at the data's edge is not the frame
      const pad = (max - min) * o.pad;
      if (o.min === undefined) min -= pad;
      if (o.max === undefined) max += pad;
    }
    return o.log ? logAxis(min, max, o) : linearAxis(min, max, o);
  }

  function scale(ax, a, b) {
    if (ax.log) {
      const l0 = Math.log10(ax.lo); const l1 = Math.log10(ax.hi);
      return (v) => a + ((Math.log10(v) - l0) / (l1 - l0)) * (b - a);
    }
    return (v) => a + ((v - ax.lo) / (ax.hi - ax.lo)) * (b - a);
  }

  // Seconds to a readable unit for a time axis: {div, unit}.
  function timeUnit(spanS) {
    if (!(spanS > 600)) return { div: 1, unit: "s" };
    if (spanS <= 5 * 3600) return { div: 60, unit: "min" };
    if (spanS <= 5 * 86400) return { div: 3600, unit: "h" };
    return { div: 86400, unit: "d" };
  }

  // Timestamps to plot x values: seconds since the first reading in a readable unit.
  // Without timestamps, reading numbers.
  function timeAxis(timestamps, n) {
    if (!Array.isArray(timestamps) || timestamps.length !== n || !n) {
      return { x: Array.from({ length: n }, (_, i) => i), unit: "", title: "reading number" };
    }
    const [t0, t1] = extent([timestamps]);
    const { div, unit } = timeUnit(t1 - t0);
    return { x: timestamps.map((t) => (t - t0) / div), unit, title: "time since the first reading", div, t0 };
  }

  // Frame with grid, round ticks and axis titles; returns the scale functions.
  function frame(root, box, xAx, yAx, titles) {
    const sx = scale(xAx, box.left, box.right);
    const sy = scale(yAx, box.bottom, box.top);
    const g = el("g", { class: "axes" }, root);
    for (const t of yAx.ticks) {
      el("line", { class: "grid", x1: box.left, x2: box.right, y1: sy(t.v), y2: sy(t.v) }, g);
      text(g, box.left - 5, sy(t.v) + 3, t.label, { class: "tick y-tick", "text-anchor": "end" });
    }
    if (xAx.ticks) {
      const every = Math.max(1, Math.ceil(xAx.ticks.length / 12));
      xAx.ticks.forEach((t, i) => {
        el("line", { class: "grid", x1: sx(t.v), x2: sx(t.v), y1: box.top, y2: box.bottom }, g);
        if (i % every === 0) {
          text(g, sx(t.v), box.bottom + 14, t.label, { class: "tick x-tick", "text-anchor": "middle" });
        }
      });
    }
    el("line", { class: "axis", x1: box.left, x2: box.right, y1: box.bottom, y2: box.bottom }, g);
    el("line", { class: "axis", x1: box.left, x2: box.left, y1: box.top, y2: box.bottom }, g);
    const tt = titles || {};
    if (tt.x) text(g, (box.left + box.right) / 2, box.bottom + 30, tt.x, { class: "axis-title", "text-anchor": "middle" });
    if (tt.y) {
      const x = 12; const y = (box.top + box.bottom) / 2;
      text(g, x, y, tt.y, { class: "axis-title", "text-anchor": "middle", transform: `rotate(-90 ${x} ${y})` });
    }
    return { sx, sy };
  }

  // ---- generic x-y chart ----------------------------------------------------------------
  // c: {width, height, label, x: {title, unit, log, integer, min, max, ticks},
  //     y: {...}, layers: [...], legend: [{label, color, kind: line|band|point, dash}]}
  // layers: {type: "band", x, lo, hi, fill} | {type: "line", x, y, stroke, width, dash}
  //   | {type: "points", x, y, fill, stroke, r, shape: circle|square|diamond, titles}
  //   | {type: "hline", y, stroke, dash, label} | {type: "label", x, y, text, anchor}
  // Every layer may carry `cls` (its SVG class) and `extent: false` (not widening the axes).
  function chart(container, c) {
    const width = c.width || 900;
    const height = c.height || 260;
    const root = svg(width, height, c.label || "chart");
    const left = c.left || 78;
    const rows = c.legend && c.legend.length ? legendRows(c.legend, left, width - 14) : [];
    const legendH = rows.length * LEGEND_ROW;
    const box = { left, right: width - 28, top: 12 + legendH, bottom: height + legendH - (c.x.title ? 40 : 24) };
    root.setAttribute("viewBox", `0 0 ${width} ${height + legendH}`);
    const xs = []; const ys = [];
    for (const l of c.layers) {
      if (l.extent === false) continue;
      if (l.type === "band") { xs.push(l.x); ys.push(l.lo, l.hi); }
      else if (l.type === "line" || l.type === "points") { xs.push(l.x); ys.push(l.y); }
      else if (l.type === "hline") ys.push([l.y]);
    }
    const xAx = axis(xs, c.x);
    const yAx = axis(ys, c.y);
    const { sx, sy } = frame(root, box, xAx, yAx, { x: c.x.title, y: c.y.title });
    const ok = (x, y) => Number.isFinite(x) && Number.isFinite(y) && (!xAx.log || x > 0) && (!yAx.log || y > 0);
    const pt = (x, y) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`;
    const plotArea = el("g", { class: "layers" }, root);
    for (const l of c.layers) {
      const attrs = l.cls ? { class: l.cls } : {};
      if (l.type === "band") {
        const up = []; const down = [];
        l.x.forEach((x, i) => { if (ok(x, l.hi[i]) && ok(x, l.lo[i])) { up.push(pt(x, l.hi[i])); down.push(pt(x, l.lo[i])); } });
        if (up.length) el("polygon", { ...attrs, points: [...up, ...down.reverse()].join(" "), fill: l.fill, stroke: "none" }, plotArea);
      } else if (l.type === "line") {
        let run = [];
        const flush = () => {
          if (run.length > 1) {
            el("polyline", { ...attrs, points: run.join(" "), fill: "none", stroke: l.stroke || "#1d2330",
              "stroke-width": l.width || 1, ...(l.dash ? { "stroke-dasharray": l.dash } : {}) }, plotArea);
          }
          run = [];
        };
        l.x.forEach((x, i) => { if (ok(x, l.y[i])) run.push(pt(x, l.y[i])); else flush(); });
        flush();
      } else if (l.type === "points") {
        const r = l.r || 3;
        l.x.forEach((x, i) => {
          if (!ok(x, l.y[i])) return;
          const cx = sx(x); const cy = sy(l.y[i]);
          const paint = { ...attrs, fill: l.fill || "none", stroke: l.stroke || "none", "stroke-width": l.strokeWidth || 1.5 };
          let node;
          if (l.shape === "square") node = el("rect", { ...paint, x: cx - r, y: cy - r, width: 2 * r, height: 2 * r }, plotArea);
          else if (l.shape === "diamond") node = el("polygon", { ...paint, points: `${cx},${cy - r - 1} ${cx + r + 1},${cy} ${cx},${cy + r + 1} ${cx - r - 1},${cy}` }, plotArea);
          else node = el("circle", { ...paint, cx, cy, r }, plotArea);
          if (l.titles && l.titles[i]) el("title", {}, node).textContent = l.titles[i];
        });
      } else if (l.type === "hline") {
        if (!ok(xAx.lo, l.y)) continue;
        const y = sy(l.y);
        el("line", { ...attrs, x1: box.left, x2: box.right, y1: y, y2: y, stroke: l.stroke || "#556",
          "stroke-width": l.width || 1, ...(l.dash ? { "stroke-dasharray": l.dash } : {}) }, plotArea);
        if (l.label) text(plotArea, box.right - 4, y - 3, l.label, { class: "tick line-label", "text-anchor": "end", fill: l.stroke || "#556" });
      } else if (l.type === "label") {
        if (!ok(l.x, l.y)) continue;
        // "auto": to the right of a point in the left half of the plot, else to its left.
        const left = sx(l.x) < (box.left + box.right) / 2;
        const anchor = l.anchor === "auto" ? (left ? "start" : "end") : l.anchor || "start";
        const dx = l.anchor === "auto" ? (left ? 1 : -1) * Math.abs(l.dx || 0) : l.dx || 0;
        text(plotArea, sx(l.x) + dx, sy(l.y) + (l.dy || 0), l.text, { class: `tick label ${l.cls || ""}`, "text-anchor": anchor });
      }
    }
    if (rows.length) legend(root, box.left, 12, rows);
    container.replaceChildren(root);
    return root;
  }

  // Legend entries laid out in rows that fit `right`; returns the rows' total height.
  const LEGEND_ROW = 16;
  const legendWidth = (it) => 30 + it.label.length * 6.1;

  function legendRows(items, x0, right) {
    const rows = [[]];
    let x = x0;
    for (const it of items) {
      const w = legendWidth(it);
      if (x + w > right && rows[rows.length - 1].length) { rows.push([]); x = x0; }
      rows[rows.length - 1].push(it);
      x += w;
    }
    return rows;
  }

  function legend(root, x0, y0, rows) {
    const g = el("g", { class: "legend" }, root);
    rows.forEach((row, r) => {
      let x = x0;
      const y = y0 + r * LEGEND_ROW;
      for (const it of row) {
        if (it.kind === "band") el("rect", { x, y: y - 8, width: 16, height: 10, fill: it.color, stroke: it.stroke || "none" }, g);
        else if (it.kind === "square") el("rect", { x: x + 4.5, y: y - 6.5, width: 7, height: 7, fill: it.color, stroke: it.stroke || "none" }, g);
        else if (it.kind === "point") el("circle", { cx: x + 8, cy: y - 3, r: 3.5, fill: it.color, stroke: it.stroke || "none", "stroke-width": 1.5 }, g);
        else el("line", { x1: x, x2: x + 16, y1: y - 3, y2: y - 3, stroke: it.color, "stroke-width": 2, ...(it.dash ? { "stroke-dasharray": it.dash } : {}) }, g);
        text(g, x + 20, y, it.label, { class: "tick legend-label" });
        x += legendWidth(it);
      }
    });
  }

  // Bars: [{label, value}], e.g. events per 10 s bucket.
  function bars(container, items, opts) {
    const o = { width: 900, height: 180, color: "#3b6fd8", label: "bar chart", unit: "", ...(opts || {}) };
    const root = svg(o.width, o.height, o.label);
    const box = { left: 70, right: o.width - 10, top: 10, bottom: o.height - 22 };
    const max = Math.max(1, ...items.map((d) => d.value));
    const xAx = { lo: 0, hi: Math.max(1, items.length), ticks: null, log: false };
    const yAx = linearAxis(0, max, { integer: true, unit: o.unit, ticks: 4 });
    const { sy } = frame(root, box, xAx, yAx);
    const w = (box.right - box.left) / Math.max(1, items.length);
    const every = Math.max(1, Math.ceil(items.length / 6));
    items.forEach((d, i) => {
      if (i % every === 0) text(root, box.left + i * w, box.bottom + 14, d.label, { class: "tick" });
      const y = sy(d.value);
      const r = el("rect", {
        x: box.left + i * w + 1, y, width: Math.max(1, w - 2), height: box.bottom - y, fill: o.color,
      }, root);
      el("title", {}, r).textContent = `${d.label}: ${d.value}`;
    });
    container.replaceChildren(root);
    return root;
  }

  // Readings over time with reference, tolerance band and flagged points.
  // series: {t: [], values: [], reference?: [], tolerance?: number|[], unit?: string,
  //          flagged?: {suspect:[], fail:[]}}
  function readings(container, s, opts) {
    const o = { width: 900, height: 280, label: "readings", ...(opts || {}) };
    const n = s.values.length;
    const ta = timeAxis(s.t, n);
    const t = ta.x;
    const tol = (i) => (Array.isArray(s.tolerance) ? s.tolerance[i] : s.tolerance || 0);
    const layers = [];
    const legendItems = [{ label: "reading", color: "#1d2330" }];
    if (s.reference) {
      layers.push({ type: "band", x: t, lo: s.reference.map((r, i) => r - tol(i)), hi: s.reference.map((r, i) => r + tol(i)), fill: "#3b6fd833" });
      layers.push({ type: "line", x: t, y: s.reference, stroke: "#3b6fd8", dash: "4 3" });
      legendItems.push({ label: "reference", color: "#3b6fd8", dash: "4 3" }, { label: "reference ± tolerance", color: "#3b6fd833", kind: "band" });
    }
    layers.push({ type: "line", x: t, y: s.values, stroke: "#1d2330" });
    const flagged = s.flagged || {};
    for (const [kind, color] of [["suspect", "#d99a00"], ["fail", "#d33a2c"]]) {
      const idx = (flagged[kind] || []).filter((i) => i >= 0 && i < n);
      if (idx.length) {
        layers.push({ type: "points", x: idx.map((i) => t[i]), y: idx.map((i) => s.values[i]), fill: color, r: 3, extent: false });
        legendItems.push({ label: kind, color, kind: "point" });
      }
    }
    return chart(container, { width: o.width, height: o.height, label: o.label,
      x: { title: ta.title, unit: ta.unit, ticks: 10 }, y: { title: s.quantity || "reading", unit: s.unit || "", ticks: 6 },
      layers, legend: legendItems });
  }

  // Where each check flagged readings, by reading index (when the raw readings are not available).
  // rows: [{name, suspect: [idx], fail: [idx]}], n: number of readings.
  function flags(container, rows, n, opts) {
    const o = { width: 900, label: "flagged readings by check", ...(opts || {}) };
    const rowH = 20;
    const height = 30 + rows.length * rowH;
    const root = svg(o.width, height, o.label);
    const box = { left: 110, right: o.width - 10, top: 6, bottom: height - 22 };
    const sx = (v) => box.left + (v / Math.max(1, n - 1)) * (box.right - box.left);
    rows.forEach((row, r) => {
      const y = box.top + r * rowH + rowH / 2;
      el("line", { class: "grid", x1: box.left, x2: box.right, y1: y, y2: y }, root);
      text(root, box.left - 6, y + 4, row.name, { class: "tick", "text-anchor": "end" });
      for (const [kind, color] of [["suspect", "#d99a00"], ["fail", "#d33a2c"]]) {
        for (const i of row[kind] || []) {
          el("rect", { x: sx(i) - 1.5, y: y - 6, width: 3, height: 12, fill: color, class: `flag-${kind}` }, root);
        }
      }
    });
    el("line", { class: "axis", x1: box.left, x2: box.right, y1: box.bottom, y2: box.bottom }, root);
    for (const tk of linearAxis(0, Math.max(1, n - 1), { integer: true, ticks: 8 }).ticks) {
      if (tk.v <= n - 1) text(root, sx(tk.v), box.bottom + 14, tk.label, { class: "tick", "text-anchor": "middle" });
    }
    container.replaceChildren(root);
    return root;
  }

  return { el, text, svg, bars, readings, flags, chart, fmt, sig, extent, timeAxis, linearAxis, logAxis, niceStep };
})();

window.Plot = Plot;
