"""The operations console (issue 9) in headless Chromium against a real system.

Driven by Playwright with Debian's ``/usr/bin/chromium`` (never ``playwright install``): the
page must log in, run a faulty simulated test to its verdict, show a killed service in red,
let an admin reset a breaker, and still load (saying so) with only the gateway alive.
A rig test with a reference shows the figures of issue 13: the error plot with tolerance and
guard band, the uncertainty budget, the calibration figures, the response times, the Allan
deviation and the decision rule in words, on axes ticked at round numbers with units.
Screenshots go to ``test-artifacts/console/`` for a human look at what was asserted.
"""

from __future__ import annotations

import itertools
import math
import re

import httpx
import pytest
from browser_support import ARTIFACTS as TEST_ARTIFACTS
from browser_support import NEEDS_CHROMIUM, launched_chromium
from harness import ADMIN_PASSWORD, Harness, wait_for

from sensor_backend.sensor.specs import BUILTIN_SPECS
from sensor_backend.validation.corpus import make_case

ARTIFACTS = TEST_ARTIFACTS / "console"
FAST = {"GATEWAY_HEALTH_PROBE_INTERVAL_S": "0.5", "GATEWAY_HTTP_TOTAL_TIMEOUT_S": "1.0"}

pytestmark = [pytest.mark.integration, *NEEDS_CHROMIUM]


@pytest.fixture(scope="module")
def system():
    harness = Harness(
        {"postgres", "broker", "auth", "sensor", "events", "gateway"},
        offset_start=36000,
        env=FAST,
    )
    yield harness.start()
    harness.close()


def everything_up(system: Harness) -> None:
    """Restart whatever a test killed, and wait until the gateway sees every service up.

    Some tests kill services (a red node, a gateway-only page). Each test starts from a
    whole system instead, so none passes or fails by the order the tests run in.
    """
    dead = [c.name for c in system.components if not system.alive(c.name)]
    for name in dead:  # the plan's order: PostgreSQL and the broker before the services
        system.revive(name)  # not restart(): Playwright's loop runs on this thread
    if not dead:
        return
    system.settle()

    def gateway_serves_all() -> bool:
        # Healthy is not yet usable (a revived service may still be fetching auth's keys),
        # and the page loads its sensor types once, at login: so wait until a token from a
        # fresh login, as the page's, is answered by every service.
        gateway = system.url("gateway")
        login = {"username": "admin", "password": ADMIN_PASSWORD}
        try:
            doc = httpx.get(f"{gateway}/health", timeout=2).json()
            token = httpx.post(f"{gateway}/auth/token", data=login, timeout=10).json()
            headers = {"Authorization": f"Bearer {token['access_token']}"}
            answers = [
                httpx.get(f"{gateway}{path}", headers=headers, timeout=5).status_code
                for path in ("/sensor-types", "/events/logs?limit=1")
            ]
        except (httpx.HTTPError, ValueError, KeyError):
            return False
        return doc.get("overall_status") == "healthy" and answers == [200, 200]

    assert wait_for(gateway_serves_all), f"the gateway does not serve everything after {dead}"


@pytest.fixture(autouse=True)
def whole_system(system):
    everything_up(system)


@pytest.fixture(scope="module")
def browser():
    yield from launched_chromium(ARTIFACTS)


@pytest.fixture(scope="module")
def page(system, browser):
    everything_up(system)  # module scope: set up before the autouse fixture runs
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
    with page.expect_response(
        lambda r: "/test/sensor/" in r.url and r.request.method == "POST"
    ) as submitted:
        page.click("#new-test button")
    test_id = submitted.value.json()["test_id"]
    # This test's verdict: the page may still show a test an earlier test opened.
    verdict = page.wait_for_selector(
        f"#detail [data-test-id='{test_id}'] [data-verdict]", timeout=20_000
    )
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


def run_rig_test(
    system, sensor: str, scenario: str, *, reference: bool = True, **fields: object
) -> dict:
    """POST a corpus series (values, timestamps, reference) through the gateway; its result."""
    case = make_case(BUILTIN_SPECS[sensor], scenario, "healthy", 1.0, seed=1, n=1200)
    readings = {"values": case.values.tolist(), "timestamps": case.timestamps.tolist()}
    if reference:
        readings["reference"] = case.reference.tolist()
    body = {"device_id": f"console-{scenario}", "readings": readings, **fields}
    base = system.url("gateway")
    accepted = httpx.post(
        f"{base}/test/sensor/{sensor}", json=body, headers=system.headers(), timeout=10
    )
    assert accepted.status_code == 202, accepted.text
    url = f"{base}/test/{accepted.json()['test_id']}"

    def finished() -> dict | None:
        doc = httpx.get(url, headers=system.headers(), timeout=10).json()
        return doc if doc["status"] in {"completed", "failed"} else None

    doc = wait_for(finished, 60, interval=0.1)
    assert doc is not None, f"{url} did not finish"
    assert doc["status"] == "completed", doc
    return doc


def open_detail(page, test_id: str) -> None:
    page.click("#test-filters button")  # refresh the list now, not at the next poll
    page.click(f"#tests tr[data-test='{test_id}']", timeout=10_000)
    page.wait_for_selector(f"#detail [data-test-id='{test_id}'][data-test-status='completed']")
    page.wait_for_selector("[data-plot='test'] svg[data-series='readings']")


TICK = re.compile(r"^(\u2212?\d+(?:\.\d+)?) (\S+)$")


def assert_round_ticks(labels: list[str], unit: str | tuple[str, ...]) -> None:
    """Tick labels are evenly spaced 1-2-5 numbers, each with the unit."""
    units = (unit,) if isinstance(unit, str) else unit
    values = []
    for label in labels:
        match = TICK.match(label)
        assert match, label
        assert match.group(2) in units, label
        values.append(float(match.group(1).replace("\u2212", "-")))
    assert len(values) >= 3, labels
    steps = {round(b - a, 9) for a, b in itertools.pairwise(values)}
    assert len(steps) == 1, labels
    step = steps.pop()
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert round(mantissa, 6) in {1.0, 2.0, 5.0}, labels


def test_reference_figures(system, page):
    """A humidity sensor under a calibration sequence: every figure of the result, readable."""
    doc = run_rig_test(system, "sht31_humidity", "dwell_and_step")
    res = doc["result"]
    assert res["mode"] == "reference"
    open_detail(page, doc["test_id"])
    check_decision_rule(page, res)
    check_error_plot(page)
    check_budget(page, res)
    check_calibration(page)
    check_response(page, res)
    check_allan(page)
    page.locator("#detail-panel").screenshot(path=str(ARTIFACTS / "reference-figures.png"))


def check_decision_rule(page, res: dict) -> None:
    rule = page.locator("[data-decision-rule]")
    assert rule.get_attribute("data-decision-rule") == "guarded"
    words = rule.inner_text()
    for phrase in (
        "Guarded acceptance (ILAC-G8",
        "pass requires |error| + U \u2264 tolerance",
        "results between the guarded and simple limits are suspect",
        f"{res['decision']['points']} points (means of 10 readings)",
        "probability of false accept at the worst point: ",
    ):
        assert phrase in words, words


def check_error_plot(page) -> None:
    error = page.wait_for_selector("[data-plot='error'] svg[data-series='error']")
    assert error.query_selector("polygon.guarded-zone")
    assert len(error.query_selector_all("polygon.conditional-zone")) == 2
    assert len(error.query_selector_all("polyline.tolerance-line")) == 2
    assert error.query_selector("polyline.error-line").get_attribute("points").count(",") > 500
    assert error.query_selector(".worst-point")
    labels = [t.text_content() for t in error.query_selector_all(".legend-label")]
    assert "datasheet tolerance \u00b12.00 %RH" in labels, labels
    assert any(x.startswith("conditional zone (suspect), w = U = 0.5") for x in labels), labels
    assert_round_ticks([t.text_content() for t in error.query_selector_all(".y-tick")], "%RH")
    assert_round_ticks([t.text_content() for t in error.query_selector_all(".x-tick")], "min")
    readings = page.query_selector("[data-plot='test'] svg")
    assert_round_ticks([t.text_content() for t in readings.query_selector_all(".y-tick")], "%RH")


def check_budget(page, res: dict) -> None:
    budget = page.locator("table[data-budget='table']")
    for name in ("reference", "noise", "resolution", "combined", "expanded"):
        assert budget.locator(f"tr[data-component='{name}']").count() == 1, name
    noise = budget.locator("tr[data-component='noise'] td").all_inner_texts()
    assert noise[:3] == ["noise", "type A", "normal"], noise
    assert budget.locator("tr[data-component='resolution'] td").nth(2).inner_text() == (
        "rectangular"
    )
    expanded = budget.locator("tr[data-component='expanded']").inner_text()
    assert "k = 2" in expanded
    assert f"{res['uncertainty']['expanded']:.3f} %RH" in expanded, expanded


def check_calibration(page) -> None:
    cal = page.locator("table[data-calibration='table']")
    offset = cal.locator("tr[data-figure='offset'] td").nth(1).inner_text()
    assert re.fullmatch(r"\u2212?\d+\.\d+ \u00b1 \d+\.\d+ %RH", offset), offset
    assert "\u00b1" in cal.locator("tr[data-figure='gain'] td").nth(1).inner_text()
    assert "at reference" in cal.locator("tr[data-figure='hysteresis']").inner_text()
    repeat = cal.locator("tr[data-figure='repeatability']").inner_text()
    assert "not evaluated" in repeat
    assert "why: no set point was visited twice" in repeat, repeat
    assert page.locator("[data-correction]").inner_text().startswith("Correction to load")


def check_response(page, res: dict) -> None:
    steps = res["response"]["steps"]
    assert len(steps) >= 5
    response = page.wait_for_selector("[data-plot='response'] svg[data-series='response']")
    assert len(response.query_selector_all("circle.t63-point")) == len(steps)
    assert len(response.query_selector_all("rect.t90-point")) == len(steps)
    assert len(response.query_selector_all("line.datasheet-line")) == 3
    assert_round_ticks([t.text_content() for t in response.query_selector_all(".y-tick")], "s")
    summary = page.locator("[data-response-summary]").inner_text()
    assert f"{len(steps)} reference step(s)" in summary
    assert "datasheet \u03c463 8.00 s" in summary, summary


def check_allan(page) -> None:
    allan = page.wait_for_selector("[data-plot='allan'] svg[data-series='allan']")
    assert allan.query_selector("polyline.allan-line")
    assert allan.query_selector("circle.allan-minimum")
    x_ticks = [t.text_content() for t in allan.query_selector_all(".x-tick")]
    assert x_ticks[:3] == ["1 s", "2 s", "5 s"], x_ticks
    assert all(t.text_content().endswith(" %RH") for t in allan.query_selector_all(".y-tick"))
    legend = [t.text_content() for t in allan.query_selector_all(".legend-label")]
    assert any(re.fullmatch(r"minimum \S+ %RH at \u03c4 = \S+ s", x) for x in legend), legend


def test_simple_acceptance_in_words(system, page):
    """The simple rule reads differently and draws no guard band."""
    doc = run_rig_test(system, "ds18b20", "steps", decision_rule="simple")
    open_detail(page, doc["test_id"])
    rule = page.locator("[data-decision-rule]")
    assert rule.get_attribute("data-decision-rule") == "simple"
    assert rule.inner_text().startswith("Simple acceptance (ILAC-G8 4.2.1, shared risk)")
    error = page.wait_for_selector("[data-plot='error'] svg[data-series='error']")
    assert not error.query_selector("polygon.conditional-zone")
    assert_round_ticks([t.text_content() for t in error.query_selector_all(".y-tick")], "\u00b0C")


def test_without_a_reference_the_page_says_why(system, page):
    """Without a reference: no decision rule, no reference figures, and the page says why."""
    doc = run_rig_test(system, "ds18b20", "ramp", reference=False)
    assert doc["result"]["mode"] == "values"
    open_detail(page, doc["test_id"])
    rule = page.locator("[data-decision-rule]")
    assert rule.get_attribute("data-decision-rule") == "none"
    assert "no reference was given" in rule.inner_text()
    assert page.locator("[data-reference-figures='none']").count() == 1
    assert page.locator("[data-plot='error']").count() == 0
    readings = page.query_selector("[data-plot='test'] svg[data-series='readings']")
    assert_round_ticks(
        [t.text_content() for t in readings.query_selector_all(".y-tick")], "\u00b0C"
    )


def test_axis_ticks_are_round_numbers_with_units(page):
    """plot.js's axes in the page itself: 1-2-5 steps, decades, time units, long series."""
    got = page.evaluate(
        """() => {
        const labels = (ax) => ax.ticks.map((t) => t.label);
        const long = Array.from({ length: 600000 }, (_, i) => i % 1000);
        return {
          seconds: labels(Plot.linearAxis(0.13, 9.7, { unit: "s" })),
          error: labels(Plot.linearAxis(-0.73, 0.41, { unit: "\u00b0C" })),
          pressure: labels(Plot.linearAxis(1013.2502, 1013.2531, { unit: "hPa", ticks: 3 })),
          tau: labels(Plot.logAxis(0.99999, 256, { unit: "s" })),
          decades: labels(Plot.logAxis(0.004, 3000, { unit: "ppm" })),
          units: [100, 3600, 172800].map((t) => Plot.timeAxis([0, t], 2).unit),
          extent: Plot.extent([long]),
        };
      }"""
    )
    assert got["seconds"] == ["0 s", "2 s", "4 s", "6 s", "8 s", "10 s"]
    assert got["error"] == ["\u22121.0 \u00b0C", "\u22120.5 \u00b0C", "0 \u00b0C", "0.5 \u00b0C"]
    assert got["pressure"] == [f"1013.25{i} hPa" for i in range(5)]
    assert got["tau"] == ["1 s", "2 s", "5 s", "10 s", "20 s", "50 s", "100 s", "200 s", "500 s"]
    assert got["decades"] == [
        "0.001 ppm",
        "0.01 ppm",
        "0.1 ppm",
        "1 ppm",
        "10 ppm",
        "100 ppm",
        "1000 ppm",
        "10000 ppm",
    ]
    assert got["units"] == ["s", "min", "h"]
    assert got["extent"] == [0, 999]


def test_killed_service_turns_red(system, page):
    """A SIGKILLed sensor service turns its node on the map red within seconds."""
    page.wait_for_selector("[data-node='sensor-0'][data-state='healthy']")
    system.kill("sensor")
    page.wait_for_selector("[data-node='sensor-0'][data-state='unavailable']", timeout=6_000)
    page.wait_for_selector("[data-banner='system']:has-text('sensor')", timeout=6_000)
    shot(page, "sensor-down")


def test_page_loads_with_only_the_gateway_alive(system, browser):
    """With every service but the gateway down the page loads and says so."""
    for name in ("sensor", "auth", "events", "broker", "postgres"):
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
