"""The report's facts about the test: its spec with sources, reference, conditions, results.

Fragments of `sensor.report`; every value from the document is escaped (`esc`).
"""

from __future__ import annotations

import json
import math
from typing import Any

from sensor_backend.sensor import report_sections as sec
from sensor_backend.sensor.report_axes import sig, with_unit

esc = sec.esc


def _source(result: dict[str, Any], check: str, fallback: str) -> str:
    return str(((result.get("checks") or {}).get(check) or {}).get("source") or fallback)


def spec_table(spec: dict[str, Any], result: dict[str, Any]) -> str:
    """Each figure the test judged against, with where it comes from."""
    unit = str(spec.get("unit") or "")
    tol = with_unit(sig(sec.num(spec.get("tol_abs"))), unit)
    if sec.num(spec.get("tol_rel")) > 0:
        tol = f"{tol} + {sig(sec.num(spec.get('tol_rel')) * 100)} % of |reference|"
    tau = sec.num(spec.get("response_tau_s"))
    top = sec.num(spec.get("range_max"))
    u_ref = spec.get("reference_uncertainty")
    figures = [
        (
            "range",
            f"{sig(sec.num(spec.get('range_min')))} to {with_unit(sig(top), unit)}",
            _source(result, "gross_range", "datasheet"),
        ),
        ("accuracy tolerance", f"\u00b1({tol})", _source(result, "accuracy", "datasheet")),
        (
            "resolution",
            with_unit(sig(sec.num(spec.get("resolution"))), unit),
            "datasheet/spec resolution",
        ),
        (
            "noise limit (rms)",
            with_unit(sig(sec.num(spec.get("noise_limit"))), unit),
            _source(result, "noise", str(spec.get("noise_limit_source"))),
        ),
        (
            "drift limit",
            with_unit(sig(sec.num(spec.get("drift_limit"))), f"{unit}/h"),
            _source(result, "drift", "rig choice"),
        ),
        (
            "sample rate",
            f"{sig(sec.num(spec.get('sample_rate_hz')))} Hz",
            _source(result, "gap", "rig choice"),
        ),
        (
            "response time \u03c463",
            f"{sig(tau)} s" if math.isfinite(tau) else "none stated",
            _source(result, "response_time", "datasheet"),
        ),
        ("decision rule", str(spec.get("decision_rule")), "test plan (ILAC-G8:09/2019)"),
    ]
    rows = [
        f"<tr><td>{esc(a)}</td><td class='num'>{esc(b)}</td><td class='basis'>{esc(c)}</td></tr>"
        for a, b, c in figures
    ]
    out = sec.table(["figure", "value", "source"], rows, "spec")
    cites = "".join(f"<li>{esc(s)}</li>" for s in spec.get("sources") or [])
    if cites:
        out += f'<p class="note">Sources:</p><ul class="note sources">{cites}</ul>'
    ref_words = (
        "stated by the rig" if u_ref is not None else "not stated: tolerance / 4 assumed (TUR 4:1)"
    )
    return (
        out
        + '<p class="note" data-reference-u="">Reference expanded uncertainty: '
        + f"{esc(ref_words)}.</p>"
    )


def reference_block(doc: dict[str, Any], result: dict[str, Any]) -> str:
    if result.get("mode") != "reference":
        return (
            '<p data-reference="none">No reference: the readings were judged on their own '
            "(mode \u201cvalues\u201d).</p>"
        )
    comps = (result.get("uncertainty") or {}).get("components") or []
    ref: dict[str, Any] = next((c for c in comps if c.get("name") == "reference"), {})
    kind = (
        "simulated reference (seeded)"
        if doc.get("source") == "simulate"
        else "reference values uploaded with the readings"
    )
    return sec.kv([("reference", esc(kind)), ("its uncertainty", esc(ref.get("basis")))])


def conditions(doc: dict[str, Any], result: dict[str, Any]) -> str:
    spec, gaps, stats = doc.get("spec") or {}, result.get("gaps") or {}, result.get("stats") or {}
    mean = sec.num(gaps.get("mean_interval_s"))
    rate = f"{sig(sec.num(spec.get('sample_rate_hz')))} Hz nominal" + (
        f", {sig(1 / mean)} Hz measured" if mean > 0 else ""
    )
    mode = (
        "reference-aware (error = reading \u2212 reference)"
        if result.get("mode") == "reference"
        else "values only (no reference)"
    )
    params = doc.get("params") or {}
    source = (
        "rig readings"
        if doc.get("source") == "readings"
        else f"simulation {json.dumps(params.get('simulate'))}"
    )
    overrides = params.get("spec_overrides")
    pairs = [
        ("sample rate", esc(rate)),
        ("duration", esc(f"{sig(sec.num(gaps.get('duration_s')))} s" if gaps else "no timestamps")),
        ("readings", esc(f"{stats.get('count', doc.get('n_readings'))}")),
        ("mode", esc(mode)),
        ("source", esc(source)),
        ("spec overrides", esc(json.dumps(overrides, sort_keys=True) if overrides else "none")),
    ]
    return sec.kv(pairs)


def results_block(result: dict[str, Any], unit: str) -> str:
    acc = result.get("accuracy") or {}
    big_u = sec.num((result.get("uncertainty") or {}).get("expanded"))
    u = big_u if math.isfinite(big_u) else None
    frac = sec.num(acc.get("fraction_within_tolerance"))
    method = result.get("noise_method") or "\u2014"
    drift = sig(sec.num(result.get("drift_per_hour")))
    drift_u = with_unit(sig(sec.num(result.get("drift_stderr_per_hour"))), f"{unit}/h")
    if not math.isfinite(sec.num(result.get("drift_per_hour"))):
        check = ((result.get("checks") or {}).get("drift") or {}).get("message")
        drift, drift_u = str(check or "not evaluated"), ""
    pairs = [
        ("bias (mean error)", sec.value_u(sec.num(acc.get("bias")), u, unit)),
        ("max |error|", sec.value_u(sec.num(acc.get("max_abs_error")), u, unit)),
        ("rmse", with_unit(sig(sec.num(acc.get("rmse"))), unit)),
        ("within tolerance", f"{frac * 100:.1f} %" if math.isfinite(frac) else "\u2014"),
        ("expanded uncertainty U (k = 2)", with_unit(sig(big_u), unit)),
        ("noise rms", f"{with_unit(sig(sec.num(result.get('noise_rms'))), unit)} ({method})"),
        (
            "drift (slope \u00b1 its standard error)",
            f"{drift} \u00b1 {drift_u}" if drift_u else drift,
        ),
        ("saturated readings", str(result.get("saturation_count"))),
    ]
    if not acc:
        pairs[0:2] = [("accuracy", "not evaluated: it needs a reference")]
    return sec.kv([(k, esc(v)) for k, v in pairs])


def figure(svg: str | None, caption: str, plot: str) -> str:
    if svg is None:
        return f'<p class="note" data-plot="{plot}">{esc(caption)}</p>'
    return f'<figure data-plot="{plot}">{svg}<figcaption>{esc(caption)}</figcaption></figure>'
