"""A test's readings for plotting: values, timestamps, reference, tolerance band and flags.

Rig readings come from ``test_readings``; a simulated test's series is regenerated from its
stored parameters (the simulation is seeded and deterministic, so it is the series that was
analysed). Long series are thinned to at most ``max_points`` evenly spaced readings, always
keeping the ones a check flagged; ``index`` maps each point back to the reading's position,
which is what the result's flagged indices refer to. ``flags`` is the aggregate QARTOD flag
of each point (worst of the point tests, stored with the result in ``test_reading_flags``;
for a simulated test without stored flags, recomputed from the regenerated series).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from sensor_backend.sensor.analysis import analyse
from sensor_backend.sensor.reading_blocks import unpack
from sensor_backend.sensor.simulate import parse_faults, simulate
from sensor_backend.sensor.specs import SensorSpec

if TYPE_CHECKING:
    import uuid

    from numpy.typing import NDArray

    from sensor_backend.core.db import Connection, Database


async def stored_readings(
    db: Database, test_id: uuid.UUID
) -> tuple[Any, Any, Any, NDArray[np.uint8] | None] | None:
    """(values, timestamps, reference, aggregate flags or None) as stored for the test."""

    async def read(conn: Connection) -> Any:  # noqa: ANN401 - an asyncpg Record
        return await conn.fetchrow(
            "SELECT r.values_f64, r.timestamps_f64, r.reference_f64, f.flags_u8"
            " FROM test_readings r LEFT JOIN test_reading_flags f USING (test_id)"
            " WHERE r.test_id = $1",
            test_id,
        )

    row = await db.run(read)
    if row is None:
        return None
    raw = row["flags_u8"]
    flags = None if raw is None else np.frombuffer(raw, dtype=np.uint8)
    return (
        unpack(row["values_f64"]),
        unpack(row["timestamps_f64"]),
        unpack(row["reference_f64"]),
        flags,
    )


def flagged_indices(result: dict[str, Any] | None) -> set[int]:
    flagged: set[int] = set()
    for check in ((result or {}).get("checks") or {}).values():
        flagged.update(check.get("suspect_indices") or [])
        flagged.update(check.get("fail_indices") or [])
    return flagged


def build_series(
    doc: dict[str, Any],
    stored: tuple[Any, Any, Any, NDArray[np.uint8] | None] | None,
    max_points: int,
) -> dict[str, Any] | None:
    """The plot document for a test's detail ``doc``; None when it has no readings."""
    spec = SensorSpec.model_validate(doc["spec"])
    values: NDArray[np.float64]
    timestamps: NDArray[np.float64] | None
    reference: NDArray[np.float64] | None
    flags: NDArray[np.uint8] | None = None
    if doc.get("source") == "simulate":
        params = doc["params"]["simulate"]
        sim = simulate(
            spec, n=params["n"], seed=params["seed"], faults=parse_faults(params["faults"])
        )
        values, timestamps, reference = sim.values, sim.timestamps, sim.reference
        if doc.get("status") == "completed":  # seeded and deterministic: the same flags
            flags = analyse(spec, values, timestamps, reference).aggregate_flags
    elif stored is not None:
        values, timestamps, reference, flags = stored
    else:
        return None
    n = int(values.size)
    keep = (
        np.unique(np.linspace(0, n - 1, num=min(n, max_points)).astype(np.int64))
        if n
        else values[:0]
    )
    flagged = np.fromiter(
        (i for i in flagged_indices(doc.get("result")) if 0 <= i < n), dtype=np.int64
    )
    index: NDArray[np.int64] = np.union1d(keep, flagged).astype(np.int64)

    def pick(series: NDArray[np.float64] | None) -> list[float] | None:
        return None if series is None else series[index].round(9).tolist()

    tolerance = spec.tolerance(reference) if reference is not None else None
    return {
        "test_id": doc["test_id"],
        "unit": spec.unit,
        "count": n,
        "index": index.tolist(),
        "values": pick(values),
        "timestamps": pick(timestamps),
        "reference": pick(reference),
        "tolerance": pick(tolerance),
        "flags": None if flags is None or flags.size != n else flags[index].tolist(),
    }
