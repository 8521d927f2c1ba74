"""Round-number axes and number formatting for the report's charts (`sensor.report_svg`).

The console's choices (``plot.js``): ticks at 1-2-5 steps on linear axes; decades, with 2 and
5 between them over three decades or fewer, on log axes; every tick label with its unit;
minus signs as U+2212.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MINUS = "\u2212"


def sig(v: float | None, digits: int = 3) -> str:
    """``v`` to ``digits`` significant digits (plot.js ``sig``); a dash for no number."""
    if v is None or not math.isfinite(v):
        return "\u2014"
    if v == 0:
        return "0"
    r = float(f"{v:.{digits}g}")  # 0.99999 to 3 digits is 1.00, not 1.000
    a = abs(r)
    if a >= 1e6 or a < 1e-4:  # noqa: PLR2004 - the console's switch to exponents
        return f"{r:.{digits - 1}e}".replace("-", MINUS)
    dec = max(0, digits - 1 - math.floor(math.log10(a)))
    return f"{r:.{min(dec, 12)}f}".replace("-", MINUS)


def with_unit(s: str, unit: str) -> str:
    return f"{s} {unit}" if unit else s


@dataclass(frozen=True, slots=True)
class Tick:
    value: float
    label: str


@dataclass(frozen=True, slots=True)
class Axis:
    lo: float
    hi: float
    ticks: tuple[Tick, ...]
    log: bool = False


def nice_step(span: float, target: int) -> float:
    """The 1-2-5 step giving about ``target`` intervals over ``span``."""
    raw = span / max(1, target)
    p = 10.0 ** math.floor(math.log10(raw))
    m = raw / p
    return (1 if m <= 1 else 2 if m <= 2 else 5 if m <= 5 else 10) * p  # noqa: PLR2004


def tick_text(v: float, step: float) -> str:
    a = abs(step)
    if a >= 1e6 or a < 1e-5:  # noqa: PLR2004
        return "0" if v == 0 else f"{v:.1e}".replace("-", MINUS)
    dec = max(0, -math.floor(math.log10(a) + 1e-9))
    s = f"{v:.{dec}f}"
    return ("0" if float(s) == 0 else s).replace("-", MINUS)


def linear_axis(
    lo: float, hi: float, *, ticks: int = 5, unit: str = "", integer: bool = False
) -> Axis:
    """A linear axis over [lo, hi], widened to round numbers."""
    if not math.isfinite(lo):
        lo = 0.0
    if not math.isfinite(hi):
        hi = 1.0
    if hi <= lo:
        pad = abs(lo) * 0.1 if lo else 1.0
        lo, hi = lo - pad, hi + pad
    step = nice_step(hi - lo, ticks)
    if integer:
        step = max(1.0, round(step))
    first = math.floor(lo / step + 1e-9)
    last = math.ceil(hi / step - 1e-9)
    marks = tuple(
        Tick(i * step, with_unit(tick_text(i * step, step), unit)) for i in range(first, last + 1)
    )
    return Axis(first * step, last * step, marks)


def _log_text(v: float) -> str:
    if 1e-3 <= v < 1e5:  # noqa: PLR2004
        return f"{float(f'{v:.1g}'):g}"
    e = math.floor(math.log10(v) + 1e-9)
    m = round(v / 10.0**e)
    times = "" if m == 1 else f"{m}\u00d7"
    return f"{times}1e{e}".replace("-", MINUS)


def log_axis(lo: float, hi: float, *, unit: str = "") -> Axis:
    """Decades, and 2 and 5 between them when the axis spans three decades or fewer."""
    lo = lo if math.isfinite(lo) and lo > 0 else 1.0
    hi = hi if math.isfinite(hi) and hi > lo else lo * 10
    e0 = math.floor(math.log10(lo) + 1e-4)  # 0.99999 s starts the axis at 1 s, not 0.1 s
    e1 = max(math.ceil(math.log10(hi) - 1e-4), e0 + 1)
    mult = (1, 2, 5) if e1 - e0 <= 3 else (1,)  # noqa: PLR2004
    marks = [
        Tick(m * 10.0**e, with_unit(_log_text(m * 10.0**e), unit))
        for e in range(e0, e1 + 1)
        for m in mult
        if m * 10.0**e <= 10.0**e1 * 1.0001
    ]
    while len(marks) > 2 and marks[1].value <= lo:  # noqa: PLR2004
        marks.pop(0)
    while len(marks) > 2 and marks[-2].value >= hi:  # noqa: PLR2004
        marks.pop()
    return Axis(marks[0].value, marks[-1].value, tuple(marks), log=True)
