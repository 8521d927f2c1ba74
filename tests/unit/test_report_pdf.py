"""The report as a PDF (sensor/report_pdf.py): WeasyPrint on stored results, 501, 429."""

from __future__ import annotations

import asyncio
import re
import sys
import threading
import uuid
import zlib
from typing import ClassVar

import httpx
import pytest
from pydantic_settings import SettingsConfigDict
from test_report import ISSUED, completed_doc

from sensor_backend.core.app import ServiceContext, create_app
from sensor_backend.core.errors import TooManyRequests
from sensor_backend.core.security import TestsRead
from sensor_backend.core.settings import ServiceSettings
from sensor_backend.sensor import report_pdf, routes
from sensor_backend.sensor.report import render, report_id
from sensor_backend.sensor.report_pdf import RenderGate, render_pdf

weasyprint = pytest.importorskip("weasyprint", reason="the `pdf` extra is not installed")
# A4 is 210 x 297 mm: 595.28 x 841.89 PostScript points, 793.7 x 1122.5 CSS px.
A4_MEDIABOX = re.compile(rb"/MediaBox\s*\[\s*0\s+0\s+595\.2\d*\s+841\.8\d*\s*\]")
A4_PX = (793.7, 1122.5)


def inflated(pdf: bytes) -> bytes:
    """The file with every Flate stream inflated: page objects sit in object streams."""
    parts = [pdf]
    for match in re.finditer(rb"stream\r?\n", pdf):
        try:
            parts.append(zlib.decompressobj().decompress(pdf[match.end() :]))
        except zlib.error:
            continue  # not a Flate stream (an image, a font program)
    return b"\n".join(parts)


@pytest.fixture(scope="module", params=[True, False], ids=["reference", "values-only"])
def rendered(request) -> tuple[dict, str, bytes]:
    doc, series = completed_doc(reference=request.param)
    page = render(doc, series, submitted_by="alice", issued_at=ISSUED)
    return doc, page, render_pdf(page)


def test_pdf_is_a4_with_the_reports_pages(rendered):
    """A PDF whose every page is A4, with the report's outline and its readings link."""
    doc, _, pdf = rendered
    assert pdf.startswith(b"%PDF-")
    assert pdf.rstrip().endswith(b"%%EOF")
    body = inflated(pdf)
    pages = len(re.findall(rb"/Type\s*/Page\b(?!s)", body))
    assert 2 <= pages <= 8, pages
    assert len(A4_MEDIABOX.findall(body)) == pages
    for heading in (b"Sensor test report", b"Verdict", b"QC checks"):  # the bookmarks
        assert b"/Title (" + heading + b")" in body
    assert f"/URI ({'/test/' + doc['test_id']}/readings.csv)".encode() in body


def test_laid_out_pages_carry_the_verdict_the_id_and_the_plots(rendered):
    """WeasyPrint's own document: A4 pages, the verdict and report id as text, SVG plots drawn."""
    doc, page, _ = rendered
    document = weasyprint.HTML(string=page).render()
    assert {(round(p.width, 1), round(p.height, 1)) for p in document.pages} == {A4_PX}
    texts: list[str] = []
    plots: dict[str, tuple[float, float]] = {}
    for laid_out in document.pages:
        for box in laid_out._page_box.descendants():
            if isinstance(box, weasyprint.formatting_structure.boxes.TextBox):
                texts.append(box.text)
            elif box.element is not None and box.element_tag.endswith("svg"):
                plots[box.element.get("data-series")] = (box.width, box.height)
    text = " ".join(texts)
    assert report_id(doc) in text
    assert doc["result"]["verdict"].upper() in text  # the badge, upper-cased by its CSS
    assert re.search(rf"Verdict:\s*{doc['result']['verdict']}\s*\.", text)  # one box a word
    # Every plot the page draws (values only: none, each says why not in words).
    expected = set(re.findall(r'<svg[^>]*data-series="(\w+)"', page))
    assert set(plots) == expected
    assert doc["result"]["mode"] != "reference" or expected == {"error", "response", "allan"}
    for series in expected:  # drawn across the text column, not collapsed
        width, height = plots[series]
        assert width > 600, (series, width)
        assert height > 150, (series, height)


class PdfTestSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PDFTEST_", frozen=True, extra="ignore")
    service_name: ClassVar[str] = "pdftest"
    default_port: ClassVar[int] = 8098


def sensor_routes_app():
    """The sensor routes in-process, the token check stood in for (no service behind them)."""
    app = create_app(ServiceContext(PdfTestSettings(environment="development")), title="t")
    app.include_router(routes.router)
    app.dependency_overrides[TestsRead.__metadata__[0].dependency] = lambda: None
    return app


async def test_without_the_extra_the_route_answers_501(monkeypatch):
    """No WeasyPrint importable: 501 with the shared JSON error body naming the extra."""
    monkeypatch.setitem(sys.modules, "weasyprint", None)  # `import weasyprint` now fails
    transport = httpx.ASGITransport(app=sensor_routes_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://sensor") as client:
        resp = await client.get(f"/test/{uuid.uuid4()}/report.pdf")
    assert resp.status_code == 501, resp.text
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert body["error"] == "not_implemented"
    assert body["extra"] == "pdf"
    assert "sensor-backend[pdf]" in body["message"]


async def test_a_full_gate_refuses_and_frees_its_slot_when_the_thread_ends(monkeypatch):
    """Busy: 429 with Retry-After; a cancelled request keeps its slot until its render ends."""
    started, finish = threading.Event(), threading.Event()

    def slow_render(page: str) -> bytes:
        started.set()
        finish.wait(10)
        return page.encode()

    monkeypatch.setattr(report_pdf, "render_pdf", slow_render)
    gate = RenderGate(1, retry_after_s=2.0)
    gate.reserve()
    request = asyncio.create_task(gate.run("<p>page</p>"))
    await asyncio.to_thread(started.wait, 10)
    with pytest.raises(TooManyRequests) as refused:
        gate.reserve()
    assert refused.value.headers() == {"Retry-After": "2"}
    request.cancel()  # the client left; its thread renders on
    with pytest.raises(asyncio.CancelledError):
        await request
    assert gate.busy == 1
    finish.set()
    for _ in range(200):
        if not gate.busy:
            break
        await asyncio.sleep(0.01)
    assert gate.busy == 0
    gate.reserve()  # free again
