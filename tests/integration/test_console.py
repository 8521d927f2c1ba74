"""The operations console (issue 9) in headless Chromium against a real system.

Driven by Playwright with Debian's ``/usr/bin/chromium`` (never ``playwright install``): the
page must log in, run a faulty simulated test to its verdict, show a killed service in red,
let an admin reset a breaker, and still load (saying so) with only the gateway alive.
Screenshots go to ``test-artifacts/console/`` for a human look at what was asserted.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import httpx
import pytest
from harness import ADMIN_PASSWORD, Harness

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
FAST = {"GATEWAY_HEALTH_PROBE_INTERVAL_S": "0.5", "GATEWAY_HTTP_TOTAL_TIMEOUT_S": "1.0"}

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"{CHROMIUM} missing (apt-get install chromium)"
    ),
    pytest.mark.skipif(
        importlib.util.find_spec("playwright") is None,
        reason="the playwright package is missing (pip install playwright)",
    ),
]


@pytest.fixture(scope="module")
def system():
    harness = Harness(
        {"postgres", "broker", "auth", "sensor", "events", "gateway"},
        offset_start=36000,
        env=FAST,
    )
    yield harness.start()
    harness.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - optional dependency

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def page(system, browser):
    context = browser.new_context(viewport={"width": 1280, "height": 1400})
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda msg: (
            errors.append(msg.text)
            if msg.type == "error" and "Content Security Policy" in msg.text
            else None
        ),
    )
    page.goto(f"{system.url('gateway')}/console")
    page.fill("#login-user", "admin")
    page.fill("#login-pass", ADMIN_PASSWORD)
    page.click("#login-form button")
    page.wait_for_selector("#session-user:has-text('admin')")
    yield page
    context.close()
    assert not errors, errors


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_assets_are_served_with_a_strict_csp(system):
    """Assets come with their content types and a strict CSP; no path reaches the disk."""
    base = system.url("gateway")
    html = httpx.get(f"{base}/console")
    assert html.status_code == 200
    assert html.headers["content-type"].startswith("text/html")
    csp = html.headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "<script>" not in html.text  # only external scripts: CSP forbids inline ones
    js = httpx.get(f"{base}/console/static/console.js")
    assert js.headers["content-type"].startswith("text/javascript")
    for storage in ("localStorage.", "sessionStorage.", "document.cookie"):
        assert storage not in js.text  # the token lives in memory only
    assert (
        httpx.get(f"{base}/console/static/console.css")
        .headers["content-type"]
        .startswith("text/css")
    )
    assert httpx.get(f"{base}/console/static/..%2Fconsole_routes.py").status_code == 404
    doc = httpx.get(f"{base}/console/api/system").json()
    assert doc["gateway"]["gateway"] == "healthy"
    sensor = doc["services"]["sensor"][0]
    assert sensor["reachable"] is True
    assert "queue" in sensor["health"]


def test_login_and_run_a_faulty_test(page):
    """Log in, start a spiky simulated test, see it fail and its readings plotted with flags."""
    assert page.locator("#session-user").inner_text().startswith("admin")
    page.wait_for_selector("#nt-type option[value='ds18b20']", state="attached")
    page.select_option("#nt-type", "ds18b20")
    page.fill("#nt-seed", "7")
    page.check("#fault-spikes")
    page.click("#new-test button")
    verdict = page.wait_for_selector("[data-verdict]", timeout=20_000)
    assert verdict.inner_text() == "fail"
    plot = page.wait_for_selector("[data-plot='test'] svg[data-series='readings']")
    assert plot.query_selector("polygon")  # the tolerance band around the reference
    assert len(plot.query_selector_all("polyline")) == 2  # reference and readings
    assert len(plot.query_selector_all("circle[fill='#d33a2c']")) > 0  # failed (spike) points
    assert page.locator("[data-check='spike'] td").nth(1).inner_text() == "fail"
    page.wait_for_selector("#tests tbody tr[data-test]")
    page.wait_for_selector("#throughput svg")
    shot(page, "faulty-test")


def test_admin_resets_a_breaker(page):
    """An admin resets a breaker from the page and sees it closed."""
    page.click("button[data-reset='sensor']")
    page.wait_for_selector("#breaker-msg.ok:has-text('Breaker sensor reset')")


def test_killed_service_turns_red(system, page):
    """A SIGKILLed sensor service turns its node on the map red within seconds."""
    page.wait_for_selector("[data-node='sensor-0'][data-state='healthy']")
    system.kill("sensor")
    page.wait_for_selector("[data-node='sensor-0'][data-state='unavailable']", timeout=6_000)
    page.wait_for_selector("[data-banner='system']:has-text('sensor')", timeout=6_000)
    shot(page, "sensor-down")


def test_page_loads_with_only_the_gateway_alive(system, browser):
    """With every service but the gateway down the page loads and says so."""
    for name in ("auth", "events", "broker", "postgres"):
        system.kill(name)
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    try:
        page.goto(f"{system.url('gateway')}/console")
        page.wait_for_selector(
            "[data-banner='system']:has-text('Every service but the gateway is down')",
            timeout=8_000,
        )
        assert page.get_attribute("[data-node='gateway']", "data-state") == "healthy"
        for node in ("auth", "sensor", "events", "auth-0", "events-0"):
            assert page.get_attribute(f"[data-node='{node}']", "data-state") == "unavailable"
        assert page.get_attribute("[data-node='postgres']", "data-state") == "unknown"
        page.fill("#login-user", "admin")
        page.fill("#login-pass", ADMIN_PASSWORD)
        page.click("#login-form button")
        page.wait_for_selector("[data-banner='login']:has-text('Login failed')")
        shot(page, "gateway-only")
    finally:
        page.close()
