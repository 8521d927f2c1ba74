"""Debian's Chromium driven by Playwright, for the console and report tests.

Never ``playwright install``: the browser is the system's ``/usr/bin/chromium``; a test
module without it (or without the playwright package) is skipped with the reason.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

CHROMIUM = Path("/usr/bin/chromium")
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
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

NEEDS_CHROMIUM = [
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"{CHROMIUM} missing (apt-get install chromium)"
    ),
    pytest.mark.skipif(
        importlib.util.find_spec("playwright") is None,
        reason="the playwright package is missing (pip install playwright)",
    ),
]


def launched_chromium(artifacts: Path) -> Iterator[Any]:
    """A headless Chromium for a module's tests (a fixture's body); ``artifacts`` created."""
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - optional dependency

    artifacts.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
