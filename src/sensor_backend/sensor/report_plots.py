"""The report's plots: error against the reference, response times, Allan deviation.

Drawn from the stored result and the thinned plot series (`series.build_series`) with the
console's choices (``console.js`` ``errorPlot``, ``responseFigure``, ``allanFigure``):
the pass zone, the guard band's conditional zone and the tolerance lines around the error,
flagged readings in amber and red, the worst point marked; t63/t90 per reference step
against the datasheet; the overlapping Allan deviation on log-log axes with its minimum.
"""

from __future__ import annotations

import math
from typing import Any

from sensor_backend.sensor.report_axes import sig, with_unit
from sensor_backend.sensor.report_svg import AxisSpec, Layer, LegendItem, chart

COLORS = {
    "ok": "#2e9e44",
    "warn": "#d99a00",
    "bad": "#d33a2c",
    "ref": "#3b6fd8",
    "t90": "#7a3fc4",
    "ink": "#1d2330",
}
SUSPECT, FAIL = 3, 4


def _num(v: Any) -> float:  # noqa: ANN401 - a JSON value
    return float(v) if isinstance(v, int | float) else math.nan


def time_axis(timestamps: list[float] | None, n: int) -> tuple[list[float], str, str]:
    """(x values, unit, title): time since the first reading in s/min/h/d, or reading numbers."""
    if not timestamps or len(timestamps) != n:
        return [float(i) for i in range(n)], "", "reading number"
    t0, t1 = min(timestamps), max(timestamps)
    span = t1 - t0
    div, unit = (
        (1.0, "s")
        if span <= 600  # noqa: PLR2004 - the console's switch points
        else (60.0, "min")
        if span <= 5 * 3600
        else (3600.0, "h")
        if span <= 5 * 86400
        else (86400.0, "d")
    )
    return [(t - t0) / div for t in timestamps], unit, "time since the first reading"


def _worst_position(index: list[int], reading: int) -> int:
    """Position in the thinned series of the reading nearest ``reading``."""
    return min(range(len(index)), key=lambda i: abs(index[i] - reading))


def error_plot(series: dict[str, Any], result: dict[str, Any], unit: str) -> str | None:
    """Error = reading - reference over time with tolerance, guard band and flags."""
    values, ref = series.get("values"), series.get("reference")
    if not values or not ref or len(ref) != len(values):
        return None
    n = len(values)
    x, x_unit, x_title = time_axis(series.get("timestamps"), n)
    err = [_num(v) - _num(r) for v, r in zip(values, ref, strict=True)]
    tol_raw = series.get("tolerance")
    tol = [_num(t) for t in tol_raw] if isinstance(tol_raw, list) else [0.0] * n
    decision = result.get("decision") or {}
    w = _num(decision.get("guard_band")) if decision.get("rule") == "guarded" else 0.0
    w = w if math.isfinite(w) else 0.0
    inner = [max(0.0, t - w) for t in tol]
    neg = [-t for t in tol]
    layers: list[Layer] = []
    legend: list[LegendItem] = []
    if w > 0:
        band = "#d99a0040"
        layers += [
            Layer("band", x, tol, inner, color=band, cls="conditional-zone"),
            Layer("band", x, [-v for v in inner], neg, color=band, cls="conditional-zone"),
            Layer("band", x, inner, [-v for v in inner], color="#2e9e4422", cls="guarded-zone"),
        ]
        legend += [
            LegendItem("pass: |error| + U \u2264 tolerance", "#2e9e4433", "band"),
            LegendItem(
                f"conditional zone (suspect), w = U = {with_unit(sig(w, 2), unit)}",
                "#d99a0055",
                "band",
            ),
        ]
    else:
        layers.append(Layer("band", x, tol, neg, color="#2e9e4422", cls="guarded-zone"))
        legend.append(
            LegendItem("pass: |error| \u2264 tolerance (simple acceptance)", "#2e9e4433", "band")
        )
    for side in (tol, neg):
        layers.append(Layer("line", x, side, color=COLORS["bad"], dash="6 3", cls="tolerance-line"))
    finite_tol = [t for t in tol if math.isfinite(t)] or [0.0]
    lo, hi = min(finite_tol), max(finite_tol)
    words = (
        f"\u00b1{with_unit(sig(hi), unit)}"
        if hi - lo <= 1e-9 * max(1.0, hi)
        else f"\u00b1{sig(lo)} to \u00b1{with_unit(sig(hi), unit)} with the level"
    )
    legend.append(LegendItem(f"datasheet tolerance {words}", COLORS["bad"], dash="6 3"))
    layers.append(Layer("line", x, err, color=COLORS["ink"], cls="error-line"))
    legend.append(LegendItem("error = reading \u2212 reference", COLORS["ink"]))
    flags = series.get("flags")
    if isinstance(flags, list) and len(flags) == n:
        for flag, color, name in (
            (SUSPECT, COLORS["warn"], "suspect"),
            (FAIL, COLORS["bad"], "fail"),
        ):
            idx = [i for i, f in enumerate(flags) if f == flag]
            if idx:
                layers.append(
                    Layer(
                        "points",
                        [x[i] for i in idx],
                        [err[i] for i in idx],
                        color=color,
                        r=2.5,
                        cls=f"flag-{flag}",
                    )
                )
                legend.append(LegendItem(name, color, "point"))
    index = series.get("index")
    worst = _num(decision.get("worst_error"))
    if isinstance(index, list) and len(index) == n and math.isfinite(worst):
        m = int((result.get("uncertainty") or {}).get("readings_per_point") or 10)
        pos = _worst_position(index, int(decision.get("worst_index") or 0) * m + m // 2)
        layers.append(
            Layer(
                "points",
                [x[pos]],
                [worst],
                color="#fff",
                stroke=COLORS["ref"],
                r=5,
                shape="diamond",
                cls="worst-point",
            )
        )
        legend.append(
            LegendItem("worst point (mean of a point)", "#fff", "point", stroke=COLORS["ref"])
        )
    return chart(
        label="error against the reference",
        x=AxisSpec(x_title, x_unit, ticks=10),
        y=AxisSpec(f"error ({unit})", unit, ticks=6, pad=0.04),
        layers=layers,
        legend=legend,
        series="error",
    )


def response_plot(result: dict[str, Any]) -> str | None:
    """t63 and t90 of each reference step against the datasheet figures."""
    response = result.get("response") or {}
    steps = response.get("steps") or []
    if not steps:
        return None
    xs = [float(i + 1) for i in range(len(steps))]
    layers: list[Layer] = []
    for key, color, shape, name in (
        ("t63_s", COLORS["ref"], "circle", "t63"),
        ("t90_s", COLORS["t90"], "square", "t90"),
    ):
        vals = [_num(s.get(key)) for s in steps]
        for rising in (True, False):
            idx = [i for i, s in enumerate(steps) if (_num(s.get("size")) > 0) == rising]
            layers.append(
                Layer(
                    "points",
                    [xs[i] for i in idx],
                    [vals[i] for i in idx],
                    color=color if rising else "#fff",
                    stroke=color,
                    shape="square" if shape == "square" else "circle",
                    r=4,
                    cls=f"{name}-point",
                )
            )
    legend = [
        LegendItem("t63", COLORS["ref"], "point"),
        LegendItem("t90", COLORS["t90"], "square"),
        LegendItem("filled: rising step, open: falling", "#fff", "point", stroke="#556"),
    ]
    limit = ((result.get("checks") or {}).get("response_time") or {}).get("limit")
    ds63, ds90 = response.get("datasheet_tau63_s"), response.get("datasheet_t90_s")
    for v, color, dash, label in (
        (ds63, COLORS["ref"], "5 3", f"datasheet \u03c463 {sig(_num(ds63))} s"),
        (ds90, COLORS["t90"], "5 3", f"datasheet t90 {sig(_num(ds90))} s"),
        (limit, COLORS["warn"], "2 3", f"t63 suspect above {sig(_num(limit))} s"),
    ):
        if math.isfinite(_num(v)):
            layers.append(
                Layer("hline", [], [_num(v)], color=color, dash=dash, cls="datasheet-line")
            )
            legend.append(LegendItem(label, color, dash=dash))
    return chart(
        label="response time per reference step",
        x=AxisSpec(
            "reference step (in time order)",
            integer=True,
            min=0,
            max=len(steps) + 1,
            ticks=min(10, len(steps) + 1),
        ),
        y=AxisSpec("response time (s)", "s", min=0, ticks=5),
        layers=layers,
        legend=legend,
        width=600,
        height=280,
        series="response",
    )


def allan_plot(result: dict[str, Any], unit: str) -> str | None:
    """Overlapping Allan deviation of the error, log-log, its minimum marked."""
    cal = result.get("calibration") or {}
    pts = [p for p in cal.get("allan") or [] if isinstance(p, dict)]
    if not pts:
        return None
    tau = [_num(p.get("tau_s")) for p in pts]
    adev = [_num(p.get("adev")) for p in pts]
    layers = [
        Layer("line", tau, adev, color=COLORS["ref"], width=1.5, cls="allan-line"),
        Layer("points", tau, adev, color=COLORS["ref"], r=2.5),
    ]
    legend = [LegendItem("Allan deviation of the error", COLORS["ref"])]
    low = cal.get("allan_minimum") or {}
    value, at = _num(low.get("value")), _num(low.get("at"))
    if math.isfinite(value) and math.isfinite(at):
        layers.append(
            Layer(
                "points",
                [at],
                [value],
                color="none",
                stroke=COLORS["bad"],
                r=7,
                cls="allan-minimum",
            )
        )
        legend.append(
            LegendItem(
                f"minimum {with_unit(sig(value, 2), unit)} at \u03c4 = {sig(at)} s",
                "#fff",
                "point",
                stroke=COLORS["bad"],
            )
        )
    return chart(
        label="Allan deviation of the error",
        x=AxisSpec("averaging time \u03c4", "s", log=True),
        y=AxisSpec(f"Allan deviation \u03c3(\u03c4) ({unit})", unit, log=True),
        layers=layers,
        legend=legend,
        width=600,
        height=280,
        series="allan",
    )
