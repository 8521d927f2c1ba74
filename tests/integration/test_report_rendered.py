"""The printable test report (issue 14) through the gateway, rendered by headless Chromium.

Real processes (the harness): a rig test with a reference is submitted through the gateway,
its report fetched through the gateway and loaded in Debian's ``/usr/bin/chromium`` under
the report's own Content-Security-Policy (never ``playwright install``); the browser's
``page.pdf(format="A4")`` is the PDF, the same as "Print to PDF". The console's link opens
the same report; ``/report.pdf`` is the server's PDF (WeasyPrint). Screenshots and both PDFs
go to ``test-artifacts/report/``.
"""

from __future__ import annotations

import importlib.util
import re
import time

import httpx
import pytest
from browser_support import ARTIFACTS as TEST_ARTIFACTS
from browser_support import NEEDS_CHROMIUM, launched_chromium
from harness import ADMIN_PASSWORD, Harness

from sensor_backend.sensor.specs import BUILTIN_SPECS
from sensor_backend.validation.corpus import make_case

ARTIFACTS = TEST_ARTIFACTS / "report"
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
# A4 is 210 x 297 mm: 595.3 x 841.9 PostScript points (Chromium writes 595.92 x 841.92).
A4_MEDIABOX = re.compile(rb"/MediaBox\s*\[\s*0\s+0\s+59[56](?:\.\d+)?\s+84[12](?:\.\d+)?\s*\]")
DEVICE = "rig-7/sht31#a+b@lab"  # device ids allow no markup: escaping is unit-tested

pytestmark = [pytest.mark.integration, *NEEDS_CHROMIUM]


@pytest.fixture(scope="module")
def system():
    # Each analysis waits a moment first, so a test is seen unfinished (409) for sure.
    harness = Harness(
        {"postgres", "broker", "auth", "sensor", "events", "gateway"},
        offset_start=43000,
        env={"SENSOR_WORK_DELAY_S": "1.5"},
    )
    yield harness.start()
    harness.close()


@pytest.fixture(scope="module")
def browser():
    yield from launched_chromium(ARTIFACTS)


def submit(system: Harness) -> str:
    """A humidity rig test with a reference (calibration dwells and steps), via the gateway."""
    case = make_case(
        BUILTIN_SPECS["sht31_humidity"], "dwell_and_step", "healthy", 1.0, seed=1, n=1200
    )
    body = {
        "device_id": DEVICE,
        "readings": {
            "values": case.values.tolist(),
            "timestamps": case.timestamps.tolist(),
            "reference": case.reference.tolist(),
        },
    }
    accepted = httpx.post(
        f"{system.url('gateway')}/test/sensor/sht31_humidity",
        json=body,
        headers=system.headers(),
        timeout=10,
    )
    assert accepted.status_code == 202, accepted.text
    test_id: str = accepted.json()["test_id"]
    return test_id


def wait_completed(system: Harness, test_id: str) -> dict:
    url = f"{system.url('gateway')}/test/{test_id}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        doc = httpx.get(url, headers=system.headers(), timeout=10).json()
        if doc["status"] in {"completed", "failed"}:
            assert doc["status"] == "completed", doc
            return doc
        time.sleep(0.1)
    raise AssertionError(f"{url} did not complete")


@pytest.fixture(scope="module")
def completed(system) -> dict:
    test_id = submit(system)
    # Queued or running: no report yet, a JSON error like every other one.
    early = httpx.get(
        f"{system.url('gateway')}/test/{test_id}/report", headers=system.headers(), timeout=10
    )
    assert early.status_code == 409, early.text
    assert early.headers["content-type"].startswith("application/json")
    assert early.json()["error"] == "conflict"
    assert early.json()["status"] in {"queued", "running"}
    return wait_completed(system, test_id)


def fetch_report(system: Harness, test_id: str, headers: dict[str, str]) -> httpx.Response:
    return httpx.get(f"{system.url('gateway')}/test/{test_id}/report", headers=headers, timeout=30)


def test_report_headers_and_content(system, completed):
    """200 HTML with a strict CSP, inline disposition and the report id in the file name."""
    resp = fetch_report(system, completed["test_id"], system.headers())
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "text/html; charset=utf-8"
    assert resp.headers["content-security-policy"].startswith(CSP)
    match = re.fullmatch(
        r'inline; filename="report-(SR-[0-9A-F-]+)\.html"', resp.headers["content-disposition"]
    )
    assert match, resp.headers["content-disposition"]
    assert f'data-report-id="{match.group(1)}"' in resp.text
    assert "<script" not in resp.text
    assert f'<strong data-device-id="">{DEVICE}</strong>' in resp.text
    assert f"/test/{completed['test_id']}/readings.csv" in resp.text
    again = fetch_report(system, completed["test_id"], system.headers())
    assert again.headers["content-disposition"] == resp.headers["content-disposition"]


def test_pdf_through_the_gateway(system, completed):
    """The same report as an A4 PDF (WeasyPrint in the sensor service), named by its id."""
    url = f"{system.url('gateway')}/test/{completed['test_id']}/report.pdf"
    resp = httpx.get(url, headers=system.headers(), timeout=60)
    if importlib.util.find_spec("weasyprint") is None:  # the `pdf` extra is not installed
        assert resp.status_code == 501, resp.text
        assert resp.json()["extra"] == "pdf"
        return
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/pdf"
    assert re.fullmatch(
        r'inline; filename="report-SR-[0-9A-F-]+\.pdf"', resp.headers["content-disposition"]
    )
    assert resp.content.startswith(b"%PDF-")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "report-weasyprint.pdf").write_bytes(resp.content)


@pytest.mark.parametrize(
    ("test_id", "status", "error"),
    [
        ("00000000-0000-4000-8000-000000000000", 404, "not_found"),
        ("not-a-test-id", 422, None),
    ],
)
def test_unknown_and_malformed_ids(system, test_id, status, error):
    """Unknown id: 404; malformed id: 422; both with the shared JSON error body."""
    resp = fetch_report(system, test_id, system.headers())
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert {"error", "message"} <= set(body)
    if error:
        assert body["error"] == error


def test_a_token_without_tests_read_is_refused(system, completed):
    """A rig client holding only events:write gets 403 naming tests:read; no token, 401."""
    created = httpx.post(
        f"{system.url('gateway')}/auth/clients",
        json={"name": "rig-events-only", "scopes": ["events:write"]},
        headers=system.headers(),
        timeout=10,
    )
    assert created.status_code == 201, created.text
    client = created.json()
    token = httpx.post(
        f"{system.url('gateway')}/auth/token",
        data={"grant_type": "client_credentials"},
        auth=(client["client_id"], client["client_secret"]),
        timeout=10,
    ).json()["access_token"]
    refused = fetch_report(system, completed["test_id"], {"Authorization": f"Bearer {token}"})
    assert refused.status_code == 403, refused.text
    assert refused.json()["required_scope"] == "tests:read"
    assert fetch_report(system, completed["test_id"], {}).status_code == 401


def test_report_renders_and_prints_to_a4(system, browser, completed):
    """Chromium renders it under its CSP without errors, plots sized; page.pdf is an A4 PDF."""
    context = browser.new_context(
        extra_http_headers=system.headers(), viewport={"width": 1000, "height": 1400}
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on(
        "request",
        lambda req: errors.append(f"fetched {req.url}") if "/report" not in req.url else None,
    )
    response = page.goto(f"{system.url('gateway')}/test/{completed['test_id']}/report")
    assert response is not None
    assert response.status == 200
    verdict = completed["result"]["verdict"]
    assert page.locator("header [data-verdict]").inner_text().lower() == verdict
    rid = page.locator("[data-report-id]").get_attribute("data-report-id")
    assert page.locator(".report-id").is_visible()
    assert page.locator(".report-id").inner_text() == rid
    assert page.locator("[data-device-id]").inner_text() == DEVICE  # shown as text
    # The inline stylesheet applied (the CSP allows it): the report id is framed.
    assert page.locator(".report-id").evaluate("e => getComputedStyle(e).borderTopWidth") == "2px"
    for series in ("error", "response", "allan"):
        box = page.locator(f"svg[data-series='{series}']").bounding_box()
        assert box is not None, series
        assert box["width"] > 100
        assert box["height"] > 50
    page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
    pdf = page.pdf(format="A4", print_background=True)
    (ARTIFACTS / "report.pdf").write_bytes(pdf)
    context.close()
    assert pdf.startswith(b"%PDF-")
    pages = len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf))
    assert 1 <= pages <= 12, pages
    assert 20_000 < len(pdf) < 5_000_000, len(pdf)
    assert A4_MEDIABOX.search(pdf), "not an A4 page"
    assert not errors, errors


def test_console_opens_the_report(system, browser, completed):
    """The console's "Printable report" and "PDF" fetch it with the token, open it in a tab."""
    context = browser.new_context(viewport={"width": 1280, "height": 1400})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{system.url('gateway')}/console")
    page.fill("#login-user", "admin")
    page.fill("#login-pass", ADMIN_PASSWORD)
    page.click("#login-form button")
    page.wait_for_selector("#session-user:has-text('admin')")
    test_id = completed["test_id"]
    page.click("#test-filters button")
    page.click(f"#tests tr[data-test='{test_id}']", timeout=10_000)
    link = page.wait_for_selector(f"[data-report-link='{test_id}']")
    with context.expect_page() as opened:
        link.click()
    report = opened.value
    report.wait_for_selector("[data-report-id]")
    assert report.url.startswith("blob:")
    assert (
        report.locator("header [data-verdict]").inner_text().lower()
        == completed["result"]["verdict"]
    )
    framed = report.locator(".report-id").evaluate("e => getComputedStyle(e).borderTopWidth")
    assert framed == "2px"  # its inline stylesheet applied in the blob tab too
    report.screenshot(path=str(ARTIFACTS / "from-console.png"))
    with context.expect_page() as opened:  # "PDF" beside it: the same, as a PDF blob
        page.click(f"[data-report-pdf-link='{test_id}']")
    opened.value.wait_for_url("blob:**", timeout=30_000)
    assert not page.locator("[data-report-msg]").inner_text()  # no error shown
    context.close()
