"""The printable test report (sensor/report*.py) rendered from stored result documents."""

from __future__ import annotations

import base64
import copy
import gzip
import hashlib
import itertools
import json
import math
import re
import uuid
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest

from sensor_backend.gateway.console_routes import CSP as CONSOLE_CSP
from sensor_backend.sensor.report import CSS, render, report_id
from sensor_backend.sensor.report_axes import linear_axis, log_axis, sig

ISSUED = datetime(2026, 11, 26, 18, 0, 0, tzinfo=UTC)
EVIL = "<script>alert(1)</script>"
STORED = json.loads(
    gzip.decompress((Path(__file__).parent / "data" / "report_results.json.gz").read_bytes())
)


def completed_doc(*, reference: bool) -> tuple[dict, dict]:
    """A completed rig test's detail document as stored, and its plot series.

    Stored results (``data/report_results.json.gz``: an SHT31 under calibration dwells and
    steps, analysed with and without its reference), so the report is tested against what
    the service stores, whatever the analysis does next.
    """
    case = STORED["reference" if reference else "values"]
    return copy.deepcopy(case["doc"]), copy.deepcopy(case["series"])


@pytest.fixture(scope="module")
def with_reference() -> tuple[dict, str]:
    doc, series = completed_doc(reference=True)
    return doc, render(doc, series, submitted_by="alice", issued_at=ISSUED)


@pytest.fixture(scope="module")
def values_only() -> tuple[dict, str]:
    doc, series = completed_doc(reference=False)
    return doc, render(doc, series, submitted_by="alice", issued_at=ISSUED)


class Texts(HTMLParser):
    """The page's visible text, and whether it holds a script or an external reference."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._skip += tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._skip -= tag == "style"

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.text.append(data)


def parse(page: str) -> Texts:
    parser = Texts()
    parser.feed(page)
    return parser


def test_report_carries_what_a_certificate_carries(with_reference):
    """Report id, device, spec with sources, reference, conditions, rule, U, budget, dates."""
    doc, page = with_reference
    text = " ".join(parse(page).text)
    result = doc["result"]
    rid = report_id(doc)
    for expected in (
        rid,
        "rig-7/sht31",
        "sht31_humidity",
        "Sensirion SHT3x-DIS datasheet",  # the spec's source
        "datasheet tolerance, ILAC-G8 guarded acceptance",  # a check's source
        "U_ref 0.5 %RH at k=2",  # the reference's uncertainty
        "1.00 Hz nominal",
        "1200 s",  # duration
        "reference-aware",
        "Guarded acceptance (ILAC-G8 4.2.2)",
        "probability of false accept",
        "expanded uncertainty U (k = 2)",
        "combined standard uncertainty",
        "2026-11-26 17:00:02 UTC",  # finished
        "2026-11-26 18:00:00 UTC",  # issued
        "alice",
        f"/test/{doc['test_id']}/readings.csv",
        "median t63",
        "datasheet \u03c463 8.00 s",
        "Correction to load into the device",
    ):
        assert expected in text, expected
    assert f'data-verdict="{result["verdict"]}"' in page
    for check in result["checks"]:
        assert f'data-check="{check}"' in page
    for label in ("sample rate", "duration", "readings", "mode", "run by", "tested", "issued"):
        assert f"<dt>{label}</dt>" in page, label
    assert "none: every check passed" in text  # the verdict's reasons
    for figure in (
        "offset",
        "gain",
        "linearity",
        "hysteresis",
        "repeatability",
        "Allan deviation minimum",
    ):
        assert f'data-figure="{figure}"' in page
    assert "0.50 %RH" in text  # U of the offset, to U's second significant digit
    for plot in ("error", "response", "allan"):
        assert f'data-series="{plot}"' in page


def test_not_evaluated_figures_say_why(with_reference, values_only):
    """A figure the data cannot support reads "not evaluated" with its reason."""
    _, page = with_reference
    row = re.search(r'<tr data-figure="repeatability"[^>]*>(.*?)</tr>', page).group(1)
    assert "not evaluated" in row
    assert "why: no set point was visited twice" in row
    _, bare = values_only
    text = " ".join(parse(bare).text)
    assert "Calibration figures not evaluated: they need a reference" in text
    assert "No uncertainty budget: it needs a reference" in text
    assert "No decision rule applied: no reference was given" in text
    assert "Response time not evaluated" in text
    assert "Allan deviation not evaluated" in text
    assert "accuracy not evaluated: it needs a reference" in text
    assert "values only (no reference)" in text
    assert 'data-series="error"' not in bare


@pytest.mark.parametrize("field", ["device_id", "sensor_type"])
def test_user_strings_are_escaped(field):
    """A device id (or any user string) with markup comes out as text, never as a tag."""
    doc, series = completed_doc(reference=True)
    doc[field] = EVIL
    doc["result"]["reasons"] = [f"accuracy [datasheet]: {EVIL}"]
    page = render(
        doc, series, submitted_by=f'"><img src=x onerror=alert(2)>{EVIL}', issued_at=ISSUED
    )
    assert "<script" not in page
    assert "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    parsed = parse(page)
    assert not [t for t, _ in parsed.tags if t in {"script", "img", "iframe", "link"}]
    assert EVIL in " ".join(parsed.text)  # shown as the text it is


def test_page_is_self_contained_and_prints_to_a4(with_reference):
    """Inline CSS with an A4 @page and no page-broken tables or figures; nothing fetched."""
    _, page = with_reference
    assert "@page { size: A4;" in CSS
    assert "break-inside: avoid" in CSS
    parsed = parse(page)
    for tag, attrs in parsed.tags:
        assert tag not in {"script", "link", "img", "iframe", "object"}
        for name in ("src", "href"):
            value = attrs.get(name) or ""
            assert not value.startswith(("http:", "https:", "//")), (tag, attrs)


def test_report_id_is_stable_per_result():
    """The same test and finish time give the same id; another finish, another id."""
    doc = {"test_id": str(uuid.UUID(int=7)), "finished_at": "2026-11-26T17:00:02+00:00"}
    assert report_id(doc) == report_id(dict(doc))
    assert re.fullmatch(r"SR-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}", report_id(doc))
    assert report_id({**doc, "finished_at": "2026-11-26T18:00:00+00:00"}) != report_id(doc)


def assert_round(values: list[float]) -> None:
    steps = {round(b - a, 9) for a, b in itertools.pairwise(values)}
    assert len(steps) == 1, values
    step = steps.pop()
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert round(mantissa, 6) in {1.0, 2.0, 5.0}, values


TICK = re.compile(r'<text[^>]*class="tick (?P<axis>[xy])-tick"[^>]*>(?P<label>[^<]*)</text>')


def test_svg_axes_tick_at_round_numbers_with_units(with_reference):
    """Every linear axis of the error plot ticks at 1-2-5 steps, each label with its unit."""
    _, page = with_reference
    svg = re.search(r'<svg[^>]*data-series="error".*?</svg>', page, re.DOTALL).group(0)
    labels: dict[str, list[str]] = {"x": [], "y": []}
    for m in TICK.finditer(svg):
        labels[m.group("axis")].append(m.group("label"))
    for axis, unit in (("x", "min"), ("y", "%RH")):
        values = []
        for label in labels[axis]:
            number, got = label.split(" ")
            assert got == unit, label
            values.append(float(number.replace("\u2212", "-")))
        assert len(values) >= 3
        assert_round(values)


@pytest.mark.parametrize(
    ("lo", "hi", "ticks"),
    [(-0.93, 1.07, 6), (0.0, 19.98, 10), (949.2, 1051.7, 5), (3e-5, 7.2e-5, 4)],
)
def test_linear_axis_is_widened_to_round_steps(lo, hi, ticks):
    """The axis covers the data and steps by 1, 2 or 5 times a power of ten."""
    axis = linear_axis(lo, hi, ticks=ticks, unit="s")
    assert axis.lo <= lo
    assert axis.hi >= hi
    assert_round([t.value for t in axis.ticks])
    assert all(t.label.endswith(" s") for t in axis.ticks)


def test_log_axis_ticks_decades_and_1_2_5():
    """Three decades or fewer: 1, 2 and 5 per decade; more: decades only."""
    short = [t.value for t in log_axis(1.0, 256.0, unit="s").ticks]
    assert short == pytest.approx([1, 2, 5, 10, 20, 50, 100, 200, 500])
    long = [t.value for t in log_axis(1e-3, 1e3).ticks]
    assert long == pytest.approx([1e-3, 1e-2, 1e-1, 1, 10, 100, 1e3])


@pytest.mark.parametrize(
    ("value", "digits", "text"),
    [
        (0.50260, 3, "0.503"),
        (-0.8850, 3, "\u22120.885"),
        (0.99999, 3, "1.00"),
        (1e-6, 2, "1.0e\u221206"),
    ],
)
def test_significant_digits_like_the_console(value, digits, text):
    """Numbers read as in the console: significant digits, a real minus sign."""
    assert sig(value, digits) == text


def test_console_policy_allows_the_report_stylesheet_by_hash():
    """The console opens the report from a blob URL under its own CSP: the hash must match."""
    digest = base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in CONSOLE_CSP
    assert "unsafe-inline" not in CONSOLE_CSP
