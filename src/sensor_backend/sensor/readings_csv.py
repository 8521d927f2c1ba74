"""``GET /test/{test_id}/readings.csv``: every reading of a test with its error and flag.

Columns: ``index`` (the reading's position, what a result's flagged indices refer to),
``timestamp`` (seconds, as uploaded), ``value``, ``reference``, ``error`` (value minus
reference, 12 significant digits) and ``flag``, the aggregate QARTOD flag of the reading
(1 pass, 2 not evaluated, 3 suspect, 4 fail, 9 missing; the worst of the point checks, as
stored with the result). A column the test has no data for is empty (no timestamps or
reference uploaded; no flags before the analysis completed). Numbers are written in their
shortest round-trip form, so the file reads back to the same float64 values.

A million readings make about 60 MB of text: the response is streamed in blocks of
`BLOCK` rows, each formatted in a thread, never held whole.
"""

from __future__ import annotations

import asyncio
import uuid
from itertools import repeat
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from sensor_backend.core.errors import NotFound
from sensor_backend.core.openapi import error_responses
from sensor_backend.core.security import TestsRead
from sensor_backend.sensor.analysis import analyse
from sensor_backend.sensor.series import stored_readings
from sensor_backend.sensor.simulate import parse_faults, simulate
from sensor_backend.sensor.specs import SensorSpec

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable

    import numpy as np
    from numpy.typing import NDArray

    from sensor_backend.sensor.service import SensorService

BLOCK = 50_000
HEADER = "index,timestamp,value,reference,error,flag\n"
_ROW = "{},{},{},{},{},{}\n".format

readings_csv_router = APIRouter()


class Readings:
    """A test's full series: values and, where known, timestamps, reference and flags."""

    def __init__(
        self,
        values: NDArray[np.float64],
        timestamps: NDArray[np.float64] | None,
        reference: NDArray[np.float64] | None,
        flags: NDArray[np.uint8] | None,
    ) -> None:
        self.values = values
        self.timestamps = timestamps
        self.reference = reference
        self.flags = flags if flags is not None and flags.size == values.size else None

    def block(self, start: int, stop: int) -> str:
        """Rows ``start`` to ``stop`` as CSV text."""

        def column(series: NDArray[Any] | None) -> Iterable[Any]:
            return repeat("") if series is None else series[start:stop].tolist()

        errors: Iterable[Any] = repeat("")
        if self.reference is not None:
            diff = self.values[start:stop] - self.reference[start:stop]
            errors = (f"{e:.12g}" for e in diff.tolist())
        return "".join(
            map(
                _ROW,
                range(start, stop),
                column(self.timestamps),
                self.values[start:stop].tolist(),
                column(self.reference),
                errors,
                column(self.flags),
            )
        )


def full_readings(doc: dict[str, Any], stored: Any) -> Readings | None:  # noqa: ANN401
    """Every reading of the test ``doc`` (a simulated one regenerated, seeded); None: none."""
    if doc.get("source") == "simulate":
        spec = SensorSpec.model_validate(doc["spec"])
        params = doc["params"]["simulate"]
        sim = simulate(
            spec, n=params["n"], seed=params["seed"], faults=parse_faults(params["faults"])
        )
        flags = None
        if doc.get("status") == "completed":  # seeded and deterministic: the same flags
            flags = analyse(spec, sim.values, sim.timestamps, sim.reference).aggregate_flags
        return Readings(sim.values, sim.timestamps, sim.reference, flags)
    if stored is None:
        return None
    values, timestamps, reference, flags = stored
    return Readings(values, timestamps, reference, flags)


async def csv_blocks(readings: Readings) -> AsyncIterator[str]:
    yield HEADER
    n = int(readings.values.size)
    for start in range(0, n, BLOCK):
        yield await asyncio.to_thread(readings.block, start, min(n, start + BLOCK))


@readings_csv_router.get(
    "/test/{test_id}/readings.csv",
    tags=["tests"],
    summary="A test's readings as CSV, with error and flag (an attachment)",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "every reading, with error and QARTOD flag (an attachment)",
            "content": {"text/csv": {"schema": {"type": "string"}}},
            "headers": {
                "Content-Disposition": {
                    "description": "attachment; filename=test-<id>-readings.csv",
                    "schema": {"type": "string"},
                }
            },
        },
        **error_responses(401, 403, 404, 503),
    },
)
async def get_test_readings_csv(
    request: Request, test_id: uuid.UUID, _: TestsRead
) -> StreamingResponse:
    """All readings as CSV: timestamp, value, reference, error and the aggregate flag."""
    svc: SensorService = request.app.state.sensor
    doc = await svc.tests.get(test_id)
    if doc is None:
        raise NotFound(f"no test {test_id}")
    stored = await stored_readings(svc.db, test_id) if doc.get("source") != "simulate" else None
    readings = await asyncio.to_thread(full_readings, doc, stored)
    if readings is None:
        raise NotFound(f"test {test_id} has no stored readings")
    return StreamingResponse(
        csv_blocks(readings),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="test-{test_id}-readings.csv"'},
    )
