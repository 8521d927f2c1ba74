"""The report's sections as HTML fragments, from a completed test's stored detail document.

Every value taken from the document is escaped (`esc`), numbers included: a user-defined
type's unit or a device id is text someone typed. Wording follows the console's
(``console.js``) so the screen and the printed report say the same thing.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

from sensor_backend.sensor.report_axes import sig, with_unit

FLAG_WORDS = {1: "pass", 2: "not evaluated", 3: "suspect", 4: "fail", 9: "missing"}
NOT_IN_RESULT = "not evaluated: not in this result"


def esc(v: object) -> str:
    return escape("\u2014" if v is None else str(v), quote=True)


def num(v: Any) -> float:  # noqa: ANN401 - a JSON value
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else math.nan


def kv(pairs: list[tuple[str, str]], cls: str = "kv") -> str:
    """A definition list; the values are HTML already (escape them before)."""
    items = "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in pairs)
    return f'<dl class="{cls}">{items}</dl>'


def table(head: list[str], rows: list[str], cls: str) -> str:
    cells = "".join(f"<th>{esc(h)}</th>" for h in head)
    body = "".join(rows)
    return f'<table class="{cls}"><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>'


def value_u(v: float, u: float | None, unit: str) -> str:
    """A value with its expanded uncertainty, both rounded where U's second digit is."""
    if not math.isfinite(v):
        return "\u2014"
    if u is None or not math.isfinite(u) or u <= 0:
        return with_unit(sig(v), unit)
    dec = min(12, max(0, 1 - math.floor(math.log10(u))))
    return with_unit(f"{v:.{dec}f} \u00b1 {u:.{dec}f}".replace("-", "\u2212"), unit)


def probability(p: float) -> str:
    if not math.isfinite(p):
        return "\u2014"
    q = p * 100
    if q < 0.001:  # noqa: PLR2004
        return "< 0.001 %"
    return f"{sig(q, 2)} %" if q < 1 else f"{q:.1f} %"


def why_text(fig: dict[str, Any] | None) -> str:
    why = str((fig or {}).get("why") or NOT_IN_RESULT)
    return why.removeprefix("not evaluated: ")


def decision_words(result: dict[str, Any], unit: str) -> str:
    """The decision rule in words (ILAC-G8:09/2019), or why no rule applied."""
    d = result.get("decision")
    if not d:
        if result.get("mode") == "values":
            return (
                "No decision rule applied: no reference was given, so the QARTOD tests ran on "
                "the values (mode \u201cvalues\u201d); accuracy, its uncertainty and the "
                "calibration figures need a reference."
            )
        return "No decision rule applied: the accuracy against a reference was not evaluated."
    m = (result.get("uncertainty") or {}).get("readings_per_point") or 10
    if d.get("rule") == "simple":
        lead = (
            "Simple acceptance (ILAC-G8 4.2.1, shared risk): pass requires |error| \u2264 "
            "tolerance; no guard band, so a result at the limit has a 50 % probability of "
            "false accept"
        )
    else:
        w = with_unit(sig(num(d.get("guard_band")), 2), unit)
        lead = (
            "Guarded acceptance (ILAC-G8 4.2.2): pass requires |error| + U \u2264 tolerance, "
            f"guard band w = U = {w}; results between the guarded and simple limits are "
            "suspect, beyond the tolerance fail"
        )
    counts = (
        f"{d.get('points')} points (means of {m} readings): {d.get('conditional_points')} in "
        f"the conditional zone, {d.get('rejected_points')} beyond the tolerance"
    )
    worst = (
        f"worst point error {with_unit(sig(num(d.get('worst_error'))), unit)} against "
        f"\u00b1{with_unit(sig(num(d.get('worst_tolerance'))), unit)}; probability of false "
        f"accept at the worst point: {probability(num(d.get('false_accept_probability')))}"
    )
    return f"{lead}. {counts}; {worst}."


def budget_table(u: dict[str, Any] | None, unit: str) -> str:
    if not u:
        return '<p class="note" data-budget="none">No uncertainty budget: it needs a reference.</p>'
    combined = num(u.get("combined"))
    total = combined**2 if combined > 0 else 0.0
    rows = []
    for c in u.get("components") or []:
        s = num(c.get("standard_uncertainty"))
        share = f"{s**2 / total * 100:.1f} %" if total else "\u2014"
        rows.append(
            f'<tr data-component="{esc(c.get("name"))}"><td>{esc(c.get("name"))}</td>'
            f"<td>{esc(c.get('kind'))}</td><td>{esc(c.get('distribution'))}</td>"
            f'<td class="num">{esc(with_unit(sig(s), unit))}</td><td class="num">{share}</td>'
            f'<td class="basis">{esc(c.get("basis"))}</td></tr>'
        )
    rows.append(
        '<tr class="total" data-component="combined"><th colspan="3">combined standard '
        "uncertainty u<sub>c</sub> (root sum of squares)</th>"
        f'<td class="num">{esc(with_unit(sig(combined), unit))}</td><td class="num">100 %</td>'
        "<td></td></tr>"
    )
    rows.append(
        '<tr class="total" data-component="expanded"><th colspan="3">expanded uncertainty '
        f"U = k\u00b7u<sub>c</sub>, k = {esc(sig(num(u.get('k')), 2))} (\u2248 95 %)</th>"
        f'<td class="num">{esc(with_unit(sig(num(u.get("expanded"))), unit))}</td><td></td>'
        f'<td class="basis">per point: mean of {esc(u.get("readings_per_point"))} readings '
        "(GUM, JCGM 100:2008)</td></tr>"
    )
    head = [
        "component",
        "type",
        "distribution",
        "standard uncertainty u",
        "share of u_c\u00b2",
        "basis",
    ]
    return table(head, rows, "budget")


CAL_ROWS = (
    ("offset", "offset", "unit", "at reference", "reading = offset + gain \u00b7 reference"),
    ("gain", "gain", "", "at reference", "slope of the fitted line"),
    (
        "linearity",
        "linearity",
        "unit",
        "at reference",
        "largest deviation of the point errors from the fitted line",
    ),
    ("hysteresis", "hysteresis", "unit", "at reference", "rising against falling approaches"),
    ("repeatability", "repeatability", "unit", "at reference", "pooled std of repeated set points"),
    (
        "Allan deviation minimum",
        "allan_minimum",
        "unit",
        "at \u03c4",
        "best averaging time of the error",
    ),
    (
        "Allan slope",
        "allan_slope",
        "",
        "up to \u03c4",
        "\u22121/2 white noise, 0 flicker, +1/2 random walk, +1 drift",
    ),
)


def calibration_table(cal: dict[str, Any] | None, unit: str) -> str:
    """Offset, gain (with U), linearity, hysteresis, repeatability, Allan: or why not."""
    if not cal:
        return (
            '<p class="note" data-calibration="none">Calibration figures not evaluated: they '
            "need a reference (this test ran on the values alone).</p>"
        )
    rows = []
    for name, key, u_kind, where, meaning in CAL_ROWS:
        fig = cal.get(key) or {"value": None, "why": NOT_IN_RESULT}
        value = num(fig.get("value"))
        if not math.isfinite(value):
            rows.append(
                f'<tr data-figure="{esc(name)}" class="not-evaluated"><td>{esc(name)}</td>'
                f'<td class="num">not evaluated</td><td colspan="2" class="why">why: '
                f"{esc(why_text(fig))}</td></tr>"
            )
            continue
        u = unit if u_kind else ""
        shown = (
            sig(value, 2)
            if key == "allan_slope"
            else value_u(value, num(fig.get("uncertainty")), u)
        )
        if key == "allan_slope" and value > 0:
            shown = f"+{shown}"
        at = num(fig.get("at"))
        at_unit = "s" if "\u03c4" in where else unit
        at_text = f"{where} {with_unit(sig(at), at_unit)}" if math.isfinite(at) else ""
        rows.append(
            f'<tr data-figure="{esc(name)}"><td>{esc(name)}</td><td class="num">{esc(shown)}</td>'
            f'<td>{esc(at_text)}</td><td class="basis">{esc(meaning)}</td></tr>'
        )
    out = table(["figure", "value (\u00b1 U, k = 2)", "where", "meaning"], rows, "calibration")
    offset, gain = (
        num((cal.get("offset") or {}).get("value")),
        num((cal.get("gain") or {}).get("value")),
    )
    if math.isfinite(offset) and math.isfinite(gain):
        out += (
            '<p class="note" data-correction="">Correction to load into the device: corrected = '
            f"(reading \u2212 ({esc(sig(offset, 4))})) / {esc(sig(gain, 6))}</p>"
        )
    return out


def response_words(result: dict[str, Any]) -> str:
    """t63 / t90 against the datasheet, or why they were not evaluated."""
    r = result.get("response")
    if not r:
        return "Response time not evaluated: not in this result (it needs a reference)."
    ds63, ds90 = num(r.get("datasheet_tau63_s")), num(r.get("datasheet_t90_s"))
    sheet = (
        f"datasheet \u03c463 {sig(ds63)} s, t90 {sig(ds90)} s"
        if math.isfinite(ds63)
        else "no datasheet response time (set response_tau_s in spec_overrides)"
    )
    steps = r.get("steps") or []
    if not steps:
        return f"Response time not evaluated: {r.get('why') or 'no reference step'}; {sheet}."

    def median(key: str) -> float:
        vals = sorted(v for s in steps if math.isfinite(v := num(s.get(key))))
        return vals[len(vals) // 2] if vals else math.nan

    missed = sum(1 for s in steps if not math.isfinite(num(s.get("t63_s"))))
    limit = num(((result.get("checks") or {}).get("response_time") or {}).get("limit"))
    return (
        f"{len(steps)} reference step(s): median t63 {sig(median('t63_s'))} s, median t90 "
        f"{sig(median('t90_s'))} s; {sheet}"
        + (f"; suspect when t63 > {sig(limit)} s" if math.isfinite(limit) else "")
        + (f"; {missed} step(s) never reached 63 %" if missed else "")
        + "."
    )


def checks_table(checks: dict[str, Any]) -> str:
    rows = []
    for name, c in checks.items():
        flag = c.get("flag")
        counts = [len(c.get(f"{k}_indices") or []) for k in ("suspect", "fail")]
        more = ["+" if c.get(f"{k}_truncated") else "" for k in ("suspect", "fail")]
        rows.append(
            f'<tr data-check="{esc(name)}"><td>{esc(name)}</td>'
            f'<td class="flag-{esc(flag)}">{esc(FLAG_WORDS.get(flag, flag))}</td>'
            f'<td class="num">{esc(sig(num(c.get("value"))))}</td>'
            f'<td class="num">{esc(sig(num(c.get("limit"))))}</td>'
            f'<td class="num">{counts[0]}{more[0]}</td><td class="num">{counts[1]}{more[1]}</td>'
            f'<td class="basis">{esc(c.get("source") or None)}</td>'
            f"<td>{esc(c.get('message'))}</td></tr>"
        )
    head = ["check", "flag", "value", "limit", "suspect", "fail", "source", "message"]
    return table(head, rows, "checks")
