"""``GET /test/{test_id}/report``: a printable report of a completed test (issue 14).

What a calibration certificate carries (ISO/IEC 17025 7.8.2, 7.8.4; ILAC-G8 for the decision
rule): a unique report id, the device and its spec with where each figure comes from, the
reference and its uncertainty, the conditions, the decision rule in words, the results with
their expanded uncertainty and budget, the calibration figures, the QC checks, the verdict
with its reasons, plots, the dates of test and issue and who ran the test.

One self-contained HTML page: inline CSS, inline SVG (`report_plots`), no script and no
fetch, so it renders under ``default-src 'none'`` and prints to A4 (``@page``) from any
browser ("Print to PDF"); ``GET /test/{test_id}/report.pdf`` renders this page with
WeasyPrint, the optional ``pdf`` extra (`report_pdf`).
The report id is derived from the test id and its finish time, so the same result always
has the same id, and a rerun (a new finish) gets a new one.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sensor_backend.core.errors import Conflict, NotFound
from sensor_backend.sensor import report_sections as sec
from sensor_backend.sensor.report_axes import sig, with_unit
from sensor_backend.sensor.report_facts import (
    conditions,
    figure,
    reference_block,
    results_block,
    spec_table,
)
from sensor_backend.sensor.report_plots import allan_plot, error_plot, response_plot
from sensor_backend.sensor.series import build_series, stored_readings

if TYPE_CHECKING:
    import uuid

    from sensor_backend.core.db import Connection
    from sensor_backend.sensor.service import SensorService

esc = sec.esc
PLOT_POINTS = 2000  # enough for a 180 mm wide plot; flagged readings are kept on top
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
FOOTNOTE = (
    "Flags: IOOS QARTOD (1 pass, 2 not evaluated, 3 suspect, 4 fail, 9 missing). Uncertainty "
    "after the GUM (JCGM 100:2008), U at k = 2 (about 95 %); decision rule after "
    "ILAC-G8:09/2019. Prints on A4; the PDF is /test/<test id>/report.pdf."
)
CSS = """
@page { size: A4; margin: 14mm 12mm 16mm 12mm; }
* { box-sizing: border-box; }
body { font: 10pt/1.35 system-ui, "DejaVu Sans", Arial, sans-serif; color: #1d2330; margin: 0 auto;
  max-width: 190mm; padding: 8mm 0; }
h1 { font-size: 16pt; margin: 0 0 2mm; }
h2 { font-size: 12pt; margin: 6mm 0 2mm; border-bottom: 1px solid #c8ccd4; break-after: avoid; }
.report-id { font: 700 14pt/1.2 ui-monospace, "DejaVu Sans Mono", monospace; letter-spacing: .04em;
  border: 2px solid #1d2330; padding: 1mm 3mm; display: inline-block; }
.verdict { font-weight: 700; text-transform: uppercase; padding: 0 2mm; border-radius: 2px; }
.verdict-pass { background: #d7f0dc; color: #1b6b2c; }
.verdict-suspect { background: #fbeccb; color: #7a5600; }
.verdict-fail { background: #f8d6d2; color: #8c1f15; }
dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: .5mm 4mm; margin: 0; }
dl.kv dt { color: #556; } dl.kv dd { margin: 0; }
table { border-collapse: collapse; width: 100%; margin: 1mm 0 2mm; font-size: 8.5pt; }
th, td { border: 1px solid #c8ccd4; padding: .6mm 1.5mm; text-align: left; vertical-align: top; }
thead { display: table-header-group; } th { background: #eef0f4; }
td.num { text-align: right; white-space: nowrap; } td.basis, td.why, .note { color: #445; }
.flag-1 { color: #1b6b2c; } .flag-2 { color: #556; } .flag-3 { color: #7a5600; font-weight: 700; }
.flag-4 { color: #8c1f15; font-weight: 700; }
section, figure, table, tr, .decision { break-inside: avoid; page-break-inside: avoid; }
figure { margin: 2mm 0; } figcaption { font-size: 8.5pt; color: #445; }
svg { width: 100%; height: auto; display: block; }
svg .grid { stroke: #e3e6ec; } svg .axis { stroke: #1d2330; }
svg text { font: 11px system-ui, "DejaVu Sans", Arial, sans-serif; fill: #1d2330; }
svg .axis-title { font-weight: 600; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 4mm; }
footer { margin-top: 6mm; font-size: 8.5pt; color: #556; border-top: 1px solid #c8ccd4; }
@media print { body { padding: 0; max-width: none; } a { color: inherit; text-decoration: none; }
  .pair { grid-template-columns: 1fr; } }
"""


def report_id(doc: dict[str, Any]) -> str:
    """Stable for one test result: a hash of the test id and its finish time."""
    digest = hashlib.sha256(f"{doc['test_id']}|{doc.get('finished_at')}".encode()).hexdigest()
    code = digest[:12].upper()
    return f"SR-{code[:4]}-{code[4:8]}-{code[8:]}"


def _date(iso: str | None) -> str:
    if not iso:
        return "\u2014"
    return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def render(
    doc: dict[str, Any],
    series: dict[str, Any] | None,
    *,
    submitted_by: str | None,
    issued_at: datetime,
) -> str:
    """The report page of the completed test ``doc`` (its detail document)."""
    result: dict[str, Any] = doc["result"]
    spec = doc.get("spec") or {}
    unit = str(spec.get("unit") or "")
    rid = report_id(doc)
    verdict = str(result.get("verdict"))
    reasons = result.get("reasons") or []
    reason_items = (
        "".join(f"<li>{esc(r)}</li>" for r in reasons) or "<li>none: every check passed</li>"
    )
    notes = "".join(f"<li>{esc(n)}</li>" for n in result.get("notes") or [])
    test_id = str(doc["test_id"])
    csv = f"/test/{test_id}/readings.csv"
    issued = esc(issued_at.strftime("%Y-%m-%d %H:%M:%S UTC"))
    identity = sec.kv(
        [
            ("report id", f'<strong data-report-id="{esc(rid)}">{esc(rid)}</strong>'),
            ("test id", esc(test_id)),
            ("device id", f'<strong data-device-id="">{esc(doc.get("device_id"))}</strong>'),
            ("sensor type", esc(f"{doc.get('sensor_type')} ({spec.get('quantity')}, {unit})")),
            ("tested", esc(f"{_date(doc.get('started_at'))} to {_date(doc.get('finished_at'))}")),
            (
                "issued",
                f'<span data-issued="">{esc(issued_at.strftime("%Y-%m-%d %H:%M:%S UTC"))}</span>',
            ),
            ("run by", f'<span data-submitted-by="">{esc(submitted_by)}</span>'),
            (
                "readings",
                f'every reading with its error and flag: <a href="{esc(csv)}">{esc(csv)}</a>',
            ),
        ]
    )
    plots = [
        figure(
            error_plot(series or {}, result, unit),
            "Error = reading \u2212 reference with the tolerance and, under guarded acceptance, "
            "the guard band; amber suspect, red failed readings."
            if result.get("mode") == "reference"
            else "Error plot not drawn: no reference, so there is no error to plot.",
            "error",
        ),
    ]
    response = sec.response_words(result)
    allan = (result.get("calibration") or {}).get("allan_minimum") or {}
    allan_words = (
        f"Minimum {with_unit(sig(sec.num(allan.get('value'))), unit)} at \u03c4 = "
        f"{sig(sec.num(allan.get('at')))} s (the best averaging time)."
        if math.isfinite(sec.num(allan.get("value")))
        else f"Allan deviation not evaluated: {sec.why_text(allan or None)}."
    )
    pair = (
        f'<div class="pair">{figure(response_plot(result), response, "response")}'
        f"{figure(allan_plot(result, unit), allan_words, 'allan')}</div>"
    )
    badge = f'class="verdict verdict-{esc(verdict)}" data-verdict="{esc(verdict)}"'
    verdict_html = (
        f"<p>Verdict: <strong>{esc(verdict)}</strong>. Reasons:</p>"
        f'<ul class="reasons">{reason_items}</ul>'
        + (f'<ul class="note">{notes}</ul>' if notes else "")
    )
    decision = esc(sec.decision_words(result, unit))
    sections = [
        ("Verdict", verdict_html),
        ("Device and specification", spec_table(spec, result)),
        ("Reference", reference_block(doc, result)),
        ("Conditions", conditions(doc, result)),
        ("Decision rule", f'<p class="decision" data-decision-rule="">{decision}</p>'),
        ("Results", results_block(result, unit)),
        ("Uncertainty budget", sec.budget_table(result.get("uncertainty"), unit)),
        ("Calibration figures", sec.calibration_table(result.get("calibration"), unit)),
        ("Response time and Allan deviation", pair),
    ]
    body = [
        "<header><h1>Sensor test report</h1>",
        f'<p><span class="report-id">{esc(rid)}</span> &nbsp; verdict ',
        f"<span {badge}>{esc(verdict)}</span></p>{identity}</header>",
        *(f"<section><h2>{esc(h)}</h2>{part}</section>" for h, part in sections[:-1]),
        f"<h2>Plots</h2>{''.join(plots)}",
        # Like the plots, no <section>: two tall figures kept on one page leave most of the
        # page before them blank (the heading still keeps with the first figure).
        f"<h2>{sections[-1][0]}</h2>{sections[-1][1]}",
        f"<h2>QC checks</h2>{sec.checks_table(result.get('checks') or {})}",
        f"<footer><p>Report {esc(rid)} of test {esc(test_id)}; issued {issued}. {FOOTNOTE}</p>",
        "</footer>",
    ]
    title = esc(f"Test report {rid} \u2014 {doc.get('device_id')}")
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{CSS}</style></head><body>"
        + "".join(body)
        + "</body></html>"
    )


async def _submitted_by(svc: SensorService, test_id: uuid.UUID) -> str | None:
    async def read(conn: Connection) -> Any:  # noqa: ANN401 - a column value
        return await conn.fetchval("SELECT submitted_by FROM tests WHERE id = $1", test_id)

    who = await svc.db.run(read)
    return None if who is None else str(who)


async def build(svc: SensorService, test_id: uuid.UUID) -> tuple[str, str]:
    """(report id, page) of a completed test; 404 unknown, 409 not finished or failed."""
    doc = await svc.tests.get(test_id)
    if doc is None:
        raise NotFound(f"no test {test_id}")
    if doc.get("status") != "completed" or not doc.get("result"):
        raise Conflict(
            f"test {test_id} is {doc.get('status')}: a report needs a completed test",
            status=doc.get("status"),
        )
    stored = await stored_readings(svc.db, test_id) if doc.get("source") != "simulate" else None
    series = await asyncio.to_thread(build_series, doc, stored, PLOT_POINTS)
    who = await _submitted_by(svc, test_id)
    page = await asyncio.to_thread(
        render, doc, series, submitted_by=who, issued_at=datetime.now(UTC)
    )
    return report_id(doc), page
