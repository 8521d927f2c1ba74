"""Server-side SVG charts for the printable test report (`sensor.report`).

The same choices as the console's ``plot.js``, so a printed report and the screen agree:
axes tick at round numbers (1-2-5 steps; decades, with 2 and 5 between them over three
decades or fewer, on log axes), every tick label carries its unit, minus signs are U+2212.
Every string that reaches the markup goes through `html.escape`: labels may carry a unit or
a name a user chose. No script, no external reference: the SVG is inlined in the report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape
from typing import Literal

from sensor_backend.sensor.report_axes import Axis, linear_axis, log_axis

LEGEND_ROW = 16
# Paint and type as presentation attributes, not only the page's stylesheet: WeasyPrint (the
# PDF route) styles an inline SVG from its own attributes and ``<style>`` alone, never from
# the HTML's CSS. Attributes are no inline style under a CSP, so the report's policy and the
# console's hash-only one still hold; in a browser the page's CSS (the same values) wins.
INK = "#1d2330"
GRID = "#e3e6ec"
TYPE = {"font_family": "system-ui, 'DejaVu Sans', Arial, sans-serif", "font_size": 11}


@dataclass(frozen=True, slots=True)
class AxisSpec:
    title: str
    unit: str = ""
    log: bool = False
    integer: bool = False
    min: float | None = None
    max: float | None = None
    ticks: int = 5
    pad: float = 0.0


@dataclass(frozen=True, slots=True)
class Layer:
    """One drawn series: a band (``y``..``y2``), a line, points, or a horizontal line."""

    kind: Literal["band", "line", "points", "hline"]
    x: list[float]
    y: list[float]
    y2: list[float] = field(default_factory=list)
    color: str = "#1d2330"
    stroke: str = "none"
    dash: str = ""
    width: float = 1.0
    r: float = 3.0
    shape: Literal["circle", "square", "diamond"] = "circle"
    cls: str = ""
    label: str = ""
    extent: bool = True  # widens the axes


@dataclass(frozen=True, slots=True)
class LegendItem:
    label: str
    color: str
    kind: Literal["line", "band", "point", "square"] = "line"
    dash: str = ""
    stroke: str = "none"


def _extent(arrays: list[list[float]], *, log: bool) -> tuple[float, float]:
    vals = [v for a in arrays for v in a if math.isfinite(v) and (not log or v > 0)]
    return (min(vals), max(vals)) if vals else (math.nan, math.nan)


def _axis(arrays: list[list[float]], spec: AxisSpec) -> Axis:
    lo, hi = _extent(arrays, log=spec.log)
    lo = spec.min if spec.min is not None else lo
    hi = spec.max if spec.max is not None else hi
    if spec.pad and not spec.log and hi > lo:  # a line at the data's edge is not the frame
        pad = (hi - lo) * spec.pad
        lo = lo - pad if spec.min is None else lo
        hi = hi + pad if spec.max is None else hi
    if spec.log:
        return log_axis(lo, hi, unit=spec.unit)
    return linear_axis(lo, hi, ticks=spec.ticks, unit=spec.unit, integer=spec.integer)


class _Scale:
    def __init__(self, axis: Axis, a: float, b: float) -> None:
        self.log = axis.log
        self.lo = math.log10(axis.lo) if axis.log else axis.lo
        hi = math.log10(axis.hi) if axis.log else axis.hi
        self.a, self.k = a, (b - a) / ((hi - self.lo) or 1.0)

    def ok(self, v: float) -> bool:
        return math.isfinite(v) and (not self.log or v > 0)

    def __call__(self, v: float) -> float:
        return self.a + ((math.log10(v) if self.log else v) - self.lo) * self.k


def _attrs(**attrs: object) -> str:
    return "".join(
        f' {k.rstrip("_").replace("_", "-")}="{escape(str(v))}"'
        for k, v in attrs.items()
        if v not in {"", None}
    )


def _text(
    x: float, y: float, content: str, cls: str, anchor: str = "start", **extra: object
) -> str:
    attrs = _attrs(x=f"{x:.1f}", y=f"{y:.1f}", class_=cls, text_anchor=anchor, **extra)
    return f"<text{attrs}>{escape(content)}</text>"


def _legend_rows(items: list[LegendItem], x0: float, right: float) -> list[list[LegendItem]]:
    rows: list[list[LegendItem]] = [[]]
    x = x0
    for it in items:
        w = 30 + len(it.label) * 6.1
        if x + w > right and rows[-1]:
            rows.append([])
            x = x0
        rows[-1].append(it)
        x += w
    return rows if rows[0] else []


def _legend(rows: list[list[LegendItem]], x0: float, y0: float) -> list[str]:
    out = [f'<g class="legend"{_attrs(fill=INK)}>']
    for r, row in enumerate(rows):
        x, y = x0, y0 + r * LEGEND_ROW
        for it in row:
            paint = {"fill": it.color, "stroke": it.stroke}
            if it.kind == "band":
                out.append(f"<rect{_attrs(x=x, y=y - 8, width=16, height=10, **paint)}/>")
            elif it.kind == "square":
                out.append(f"<rect{_attrs(x=x + 4.5, y=y - 6.5, width=7, height=7, **paint)}/>")
            elif it.kind == "point":
                out.append(f"<circle{_attrs(cx=x + 8, cy=y - 3, r=3.5, **paint)}/>")
            else:
                line = _attrs(x1=x, x2=x + 16, y1=y - 3, y2=y - 3, stroke=it.color)
                out.append(f'<line{line} stroke-width="2"{_attrs(stroke_dasharray=it.dash)}/>')
            out.append(_text(x + 20, y, it.label, "tick legend-label"))
            x += 30 + len(it.label) * 6.1
    out.append("</g>")
    return out


def _layer(layer: Layer, sx: _Scale, sy: _Scale, right: float) -> list[str]:
    cls = {"class_": layer.cls}
    pts = [(sx(x), sy(y)) for x, y in zip(layer.x, layer.y, strict=False) if sx.ok(x) and sy.ok(y)]
    if layer.kind == "band":
        lows = [
            (sx(x), sy(y)) for x, y in zip(layer.x, layer.y2, strict=False) if sx.ok(x) and sy.ok(y)
        ]
        ring = " ".join(f"{a:.1f},{b:.1f}" for a, b in [*pts, *reversed(lows)])
        return (
            [f'<polygon{_attrs(points=ring, fill=layer.color, **cls)} stroke="none"/>']
            if pts
            else []
        )
    if layer.kind == "line":
        if len(pts) < 2:  # noqa: PLR2004
            return []
        line = " ".join(f"{a:.1f},{b:.1f}" for a, b in pts)
        paint = _attrs(stroke=layer.color, stroke_width=layer.width, stroke_dasharray=layer.dash)
        return [f'<polyline{_attrs(points=line, **cls)} fill="none"{paint}/>']
    if layer.kind == "hline":
        if not layer.y or not sy.ok(layer.y[0]):
            return []
        y = sy(layer.y[0])
        paint = _attrs(stroke=layer.color, stroke_dasharray=layer.dash, **cls)
        out = [f'<line x1="{sx.a:.1f}" x2="{right:.1f}" y1="{y:.1f}" y2="{y:.1f}"{paint}/>']
        if layer.label:
            out.append(
                _text(right - 4, y - 3, layer.label, "tick line-label", "end", fill=layer.color)
            )
        return out
    points: list[str] = []
    dots: dict[str, object] = {"fill": layer.color, "stroke": layer.stroke, "stroke_width": 1.5}
    dots.update(cls)
    r = layer.r
    for cx, cy in pts:
        if layer.shape == "square":
            points.append(
                f"<rect{_attrs(x=f'{cx - r:.1f}', y=f'{cy - r:.1f}', width=2 * r, height=2 * r)}"
                f"{_attrs(**dots)}/>"
            )
        elif layer.shape == "diamond":
            d = r + 1
            corners = ((cx, cy - d), (cx + d, cy), (cx, cy + d), (cx - d, cy))
            ring = " ".join(f"{a:.1f},{b:.1f}" for a, b in corners)
            points.append(f"<polygon{_attrs(points=ring, **dots)}/>")
        else:
            points.append(f"<circle{_attrs(cx=f'{cx:.1f}', cy=f'{cy:.1f}', r=r, **dots)}/>")
    return points


def chart(
    *,
    label: str,
    x: AxisSpec,
    y: AxisSpec,
    layers: list[Layer],
    legend: list[LegendItem],
    width: int = 900,
    height: int = 300,
    series: str = "",
) -> str:
    """An x-y chart as an ``<svg>`` element with round ticks, axis titles and a legend."""
    left = 78
    rows = _legend_rows(legend, left, width - 14)
    legend_h = len(rows) * LEGEND_ROW
    top, bottom, right = 12 + legend_h, height + legend_h - 40, width - 28
    used = [ly for ly in layers if ly.extent]
    x_ax = _axis([ly.x for ly in used if ly.kind != "hline"], x)
    y_ax = _axis([v for ly in used for v in (ly.y, ly.y2)], y)
    sx, sy = _Scale(x_ax, left, right), _Scale(y_ax, bottom, top)
    view = f"0 0 {width} {height + legend_h}"
    out = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg"{_attrs(viewBox=view, role="img")}'
            f'{_attrs(aria_label=label, data_series=series)} width="{width}"'
            f' height="{height + legend_h}"{_attrs(**TYPE)}>'
        ),
        f"<title>{escape(label)}</title>",
        f'<g class="axes"{_attrs(fill=INK)}>',
    ]
    grid = _attrs(class_="grid", stroke=GRID)
    axis = _attrs(class_="axis", stroke=INK)
    for t in y_ax.ticks:
        yy = sy(t.value)
        out.append(f'<line{grid} x1="{left}" x2="{right}" y1="{yy:.1f}" y2="{yy:.1f}"/>')
        out.append(_text(left - 5, yy + 3, t.label, "tick y-tick", "end"))
    every = max(1, math.ceil(len(x_ax.ticks) / 12))
    for i, t in enumerate(x_ax.ticks):
        xx = sx(t.value)
        out.append(f'<line{grid} x1="{xx:.1f}" x2="{xx:.1f}" y1="{top}" y2="{bottom}"/>')
        if i % every == 0:
            out.append(_text(xx, bottom + 14, t.label, "tick x-tick", "middle"))
    out.append(f'<line{axis} x1="{left}" x2="{right}" y1="{bottom}" y2="{bottom}"/>')
    out.append(f'<line{axis} x1="{left}" x2="{left}" y1="{top}" y2="{bottom}"/>')
    bold = {"font_weight": 600}
    out.append(_text((left + right) / 2, bottom + 30, x.title, "axis-title", "middle", **bold))
    mid = (top + bottom) / 2
    out.append(
        _text(
            12, mid, y.title, "axis-title", "middle", transform=f"rotate(-90 12 {mid:.1f})", **bold
        )
    )
    out.append('</g><g class="layers">')
    for layer in layers:
        out.extend(_layer(layer, sx, sy, right))
    out.append("</g>")
    out.extend(_legend(rows, left, 12))
    out.append("</svg>")
    return "".join(out)
