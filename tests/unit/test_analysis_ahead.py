"""An analysis begun while a test is being stored is used only by the claim it fits."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import numpy as np
import pytest

from sensor_backend.sensor import analysis_ahead
from sensor_backend.sensor.analysis_ahead import AnalysisAhead
from sensor_backend.sensor.jobs import Readings
from sensor_backend.sensor.reading_blocks import HANDOFF, pack
from sensor_backend.sensor.runner import run_analysis
from sensor_backend.sensor.specs import get_spec

SPEC = get_spec("temperature").model_dump(mode="json")
PARAMS = {"readings": {"reference": False}}
VALUES = np.linspace(20.0, 20.1, 600)


def stored(**changes: object) -> SimpleNamespace:
    """What the repository hands its listener: a test being stored."""
    test = SimpleNamespace(
        id=uuid.uuid4(),
        spec=SPEC,
        source="readings",
        params=PARAMS,
        values=pack(VALUES),
        timestamps=pack(np.arange(600.0)),
        reference=None,
    )
    return SimpleNamespace(**{**vars(test), **changes})


def claimed(test: SimpleNamespace, **changes: object) -> SimpleNamespace:
    """The job a worker claims for it (what the committed row holds)."""
    job = {"id": test.id, "spec": test.spec, "source": test.source, "params": test.params}
    return SimpleNamespace(**{**job, **changes})


@pytest.fixture
def executor():
    with ThreadPoolExecutor(max_workers=1) as pool:
        yield pool


async def test_the_claim_that_fits_gets_the_analysis_begun_ahead(executor):
    ahead = AnalysisAhead(executor, max_indices=10, busy=lambda: False)
    test = stored()
    ahead.offer(test)
    future = ahead.take(claimed(test))
    assert future is not None
    expected = run_analysis(
        SPEC, "readings", PARAMS, Readings(VALUES, np.arange(600.0), None), max_indices=10
    )
    outcome = await future
    assert (outcome.verdict, outcome.result) == (expected.verdict, expected.result)
    assert ahead.take(claimed(test)) is None  # taken once


async def test_a_row_that_holds_something_else_is_analysed_again(executor):
    ahead = AnalysisAhead(executor, max_indices=10, busy=lambda: False)
    test = stored()
    ahead.offer(test)
    assert ahead.take(claimed(test, params={"readings": {"reference": True}})) is None
    other = stored()
    ahead.offer(other)
    assert ahead.take(claimed(other, spec={**SPEC, "tol_abs": 9.0})) is None


async def test_nothing_is_begun_while_a_worker_is_busy_or_another_is_pending(executor):
    busy = AnalysisAhead(executor, max_indices=10, busy=lambda: True)
    test = stored()
    busy.offer(test)
    assert busy.take(claimed(test)) is None
    idle = AnalysisAhead(executor, max_indices=10, busy=lambda: False)
    first, second = stored(), stored()
    idle.offer(first)
    idle.offer(second)  # one at a time
    assert idle.take(claimed(second)) is None
    assert idle.take(claimed(first)) is not None


async def test_one_never_claimed_is_dropped_after_its_ttl(executor, monkeypatch):
    ahead = AnalysisAhead(executor, max_indices=10, busy=lambda: False)
    lost = stored()  # its insert rolled back, or another replica claimed it
    ahead.offer(lost)
    monkeypatch.setattr(analysis_ahead, "TTL_S", -1.0)  # as if TTL_S had passed since
    fresh = stored()
    ahead.offer(fresh)  # the stale one no longer blocks it
    assert ahead.take(claimed(lost)) is None
    assert ahead.take(claimed(fresh)) is not None
    HANDOFF.discard(fresh.id)
