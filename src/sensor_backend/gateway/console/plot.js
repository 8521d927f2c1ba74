// Minimal SVG plotting for the console: no libraries, no build step, no inline script.
// Every label is set with textContent, so data from the API cannot inject markup.
"use strict";

const Plot = (() => {
  const NS = "http://www.w3.org/2000/svg";

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

  function svg(width, height, label) {
    return el("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label });
  }

  // Frame with axes and a few ticks; returns the scale functions.
  function frame(root, box, xr, yr, xTicks = true) {
    const [x0, x1] = xr[0] === xr[1] ? [xr[0] - 1, xr[1] + 1] : xr;
    const [y0, y1] = yr[0] === yr[1] ? [yr[0] - 1, yr[1] + 1] : yr;
    const sx = (v) => box.left + ((v - x0) / (x1 - x0)) * (box.right - box.left);
    const sy = (v) => box.bottom - ((v - y0) / (y1 - y0)) * (box.bottom - box.top);
    for (let i = 0; i <= 4; i += 1) {
      const yv = y0 + ((y1 - y0) * i) / 4;
      el("line", { class: "grid", x1: box.left, x2: box.right, y1: sy(yv), y2: sy(yv) }, root);
      text(root, box.left - 4, sy(yv) + 3, fmt(yv), { class: "tick", "text-anchor": "end" });
      const xv = x0 + ((x1 - x0) * i) / 4;
      if (xTicks) text(root, sx(xv), box.bottom + 14, fmt(xv), { class: "tick", "text-anchor": "middle" });
    }
    el("line", { class: "axis", x1: box.left, x2: box.right, y1: box.bottom, y2: box.bottom }, root);
    el("line", { class: "axis", x1: box.left, x2: box.left, y1: box.top, y2: box.bottom }, root);
    return { sx, sy };
  }

  // Bars: [{label, value}], e.g. events per 10 s bucket.
  function bars(container, items, opts) {
    const o = { width: 900, height: 180, color: "#3b6fd8", label: "bar chart", ...(opts || {}) };
    const root = svg(o.width, o.height, o.label);
    const box = { left: 50, right: o.width - 10, top: 10, bottom: o.height - 22 };
    const max = Math.max(1, ...items.map((d) => d.value));
    const { sy } = frame(root, box, [0, items.length], [0, max], false);
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
  // series: {t: [], values: [], reference?: [], tolerance?: number|[], flagged?: {suspect:[], fail:[]}}
  function readings(container, s, opts) {
    const o = { width: 900, height: 260, label: "readings", ...(opts || {}) };
    const root = svg(o.width, o.height, o.label);
    const box = { left: 60, right: o.width - 10, top: 10, bottom: o.height - 22 };
    const n = s.values.length;
    const t = s.t && s.t.length === n ? s.t : s.values.map((_, i) => i);
    const tol = (i) => (Array.isArray(s.tolerance) ? s.tolerance[i] : s.tolerance || 0);
    const ys = [...s.values];
    if (s.reference) s.reference.forEach((r, i) => ys.push(r - tol(i), r + tol(i)));
    const { sx, sy } = frame(root, box, [Math.min(...t), Math.max(...t)], [Math.min(...ys), Math.max(...ys)]);
    if (s.reference) {
      const up = s.reference.map((r, i) => `${sx(t[i])},${sy(r + tol(i))}`);
      const down = s.reference.map((r, i) => `${sx(t[i])},${sy(r - tol(i))}`).reverse();
      el("polygon", { points: [...up, ...down].join(" "), fill: "#3b6fd833", stroke: "none" }, root);
      el("polyline", {
        points: s.reference.map((r, i) => `${sx(t[i])},${sy(r)}`).join(" "),
        fill: "none", stroke: "#3b6fd8", "stroke-dasharray": "4 3",
      }, root);
    }
    el("polyline", {
      points: s.values.map((v, i) => `${sx(t[i])},${sy(v)}`).join(" "),
      fill: "none", stroke: "#1d2330", "stroke-width": 1,
    }, root);
    const flagged = s.flagged || {};
    for (const [kind, color] of [["suspect", "#d99a00"], ["fail", "#d33a2c"]]) {
      for (const i of flagged[kind] || []) {
        if (i >= 0 && i < n) el("circle", { cx: sx(t[i]), cy: sy(s.values[i]), r: 3, fill: color }, root);
      }
    }
    container.replaceChildren(root);
    return root;
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
    for (let i = 0; i <= 4; i += 1) {
      const v = Math.round(((n - 1) * i) / 4);
      text(root, sx(v), box.bottom + 14, String(Math.max(0, v)), { class: "tick", "text-anchor": "middle" });
    }
    container.replaceChildren(root);
    return root;
  }

  return { el, text, svg, bars, readings, flags, fmt };
})();

window.Plot = Plot;
