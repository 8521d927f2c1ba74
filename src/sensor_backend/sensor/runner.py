"""One job's CPU work: simulate or take the stored readings, analyse, shape the result.

A plain synchronous function so the worker can run it off the event loop (a thread: NumPy
releases the GIL in its array loops, and the rest is short). It raises :class:`InvalidJob`
for input that can never be analysed (a fault that does not fit the series, a spec that no
longer validates): retrying that would only fail again, so the test ends ``failed`` at once.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from sensor_backend.sensor.analysis import analyse
from sensor_backend.sensor.jobs import Outcome
from sensor_backend.sensor.notifications import finite
from sensor_backend.sensor.simulate import parse_faults, simulate
from sensor_backend.sensor.specs import SensorSpec

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from sensor_backend.sensor.jobs import Job, Readings


class InvalidJob(ValueError):
    """The job's input cannot be analysed; not worth a retry."""


def run_job(job: Job, readings: Readings | None, *, max_indices: int) -> Outcome:
    return run_analysis(job.spec, job.source, job.params, readings, max_indices=max_indices)


def run_analysis(
    spec_doc: dict[str, Any],
    source: str,
    params_doc: dict[str, Any],
    readings: Readings | None,
    *,
    max_indices: int,
) -> Outcome:
    """A test's outcome from what its row stores (spec, source, params) and its readings."""
    started = time.perf_counter()
    try:
        spec = SensorSpec.model_validate(spec_doc)
        extra: dict[str, Any] = {}
        timestamps: NDArray[np.float64] | None
        reference: NDArray[np.float64] | None
        if source == "simulate":
            params = params_doc["simulate"]
            sim = simulate(
                spec, n=params["n"], seed=params["seed"], faults=parse_faults(params["faults"])
            )
            values, timestamps, reference = sim.values, sim.timestamps, sim.reference
            extra["simulation"] = {
                **params,
                "readings_after_dropouts": int(sim.values.size),
                "injected": {kind: int(idx.size) for kind, idx in sim.injected.items()},
            }
        else:
            if readings is None:
                raise InvalidJob("no readings stored for this test")
            values, timestamps, reference = readings.values, readings.timestamps, readings.reference
        result = analyse(spec, values, timestamps, reference)
    except (ValueError, ValidationError) as exc:
        # simulate() and analyse() raise ValueError only for input they cannot use.
        raise InvalidJob(str(exc)) from exc
    doc = finite({**result.to_dict(max_indices=max_indices), **extra})
    return Outcome(
        verdict=result.verdict,
        reasons=list(result.reasons),
        result=doc,
        metrics=result.key_metrics(),
        processing_ms=round((time.perf_counter() - started) * 1000, 3),
        flags=result.aggregate_flags.tobytes(),
    )
