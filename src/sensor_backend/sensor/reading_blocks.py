"""How a test's readings are stored: packed float64, in blocks of 1,000, handed over in-process.

Readings travel as little-endian float64 ``bytea`` (:func:`pack` / :func:`unpack`): a million
readings is 8 MB per array, written and read without any per-number work. They are
written by ``COPY`` as blocks of 1,000 readings (:func:`blocks`, migration 0006: a third
to a half of the server's work of one TOASTed value per array) and read back by
:func:`read_arrays` (the worker) or whole through the ``test_readings`` view (routes).

Readings just stored are also handed to this process's own workers (:data:`HANDOFF`), so
the replica that accepted a test and claims it next does not read 24 MB back from the
database it has just written them to (issue 14: 30-50 ms of a million-reading test).
The queue is untouched by it: a test is still claimed through its row and lease, by any
replica; one that finds nothing here reads the database as before.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import uuid
    from collections.abc import Callable

    from numpy.typing import NDArray

    from sensor_backend.core.db import Connection
    from sensor_backend.sensor.repository import NewTest

F64 = np.dtype("<f8")


def pack(array: NDArray[np.float64] | None) -> bytes | None:
    return None if array is None else array.astype(F64, copy=False).tobytes()


def unpack(raw: bytes | None) -> NDArray[np.float64] | None:
    return None if raw is None else np.frombuffer(raw, dtype=F64)


StoredArrays = tuple[bytes, bytes | None, bytes | None]  # values, timestamps, reference
# Rows of test_reading_blocks (migration 0006): 1,000 float64 each, so that a row fits in
# a page and is never TOASTed; ``series`` is the position in `StoredArrays`.
BLOCK_BYTES = 8000
BLOCK_COLUMNS = ("test_id", "series", "block", "data")


def blocks(
    test_id: uuid.UUID, arrays: StoredArrays
) -> list[tuple[uuid.UUID, int, int, memoryview]]:
    """The rows of ``test_reading_blocks`` for a test's packed arrays (views, no copies)."""
    rows = []
    for series, raw in enumerate(arrays):
        if raw is None:
            continue
        view = memoryview(raw)
        starts = range(0, max(len(raw), 1), BLOCK_BYTES)
        rows += [(test_id, series, n, view[at : at + BLOCK_BYTES]) for n, at in enumerate(starts)]
    return rows


class ReadingsMissingError(LookupError):
    """A test's stored readings are gone or do not fit together: no retry will find them."""


class Handoff:
    """The packed readings of tests this process stored, until one of its workers takes them.

    Bounded by bytes, oldest dropped first: a test claimed by another replica, or waiting
    behind a long queue, just falls out and is read from the database when claimed. An
    entry is the very ``bytea`` the INSERT sent, so the analysis sees the same float64
    values either way; it is added inside the insert transaction (its row is not visible
    to any claim before COMMIT) and removed again if that transaction fails.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[uuid.UUID, StoredArrays] = OrderedDict()
        self._size = 0  # only ever used on the event loop: no lock
        # Told of each test as it is being stored (the worker pool analyses it meanwhile).
        self.listener: Callable[[NewTest], None] | None = None
        # Off in a process without workers (SENSOR_WORKERS=0): nothing would ever take them.
        self.enabled = True

    def put(self, test_id: uuid.UUID, arrays: StoredArrays, *, test: NewTest | None = None) -> None:
        if not self.enabled:
            return
        size = sum(len(a) for a in arrays if a is not None)
        if test is not None and self.listener is not None:
            self.listener(test)
        if size > self.max_bytes:
            return
        self._drop(test_id)
        self._entries[test_id] = arrays
        self._size += size
        while self._size > self.max_bytes:
            self._drop(next(iter(self._entries)))

    def take(self, test_id: uuid.UUID) -> StoredArrays | None:
        arrays = self._entries.get(test_id)
        self._drop(test_id)
        return arrays

    def discard(self, test_id: uuid.UUID) -> None:
        self._drop(test_id)

    def _drop(self, test_id: uuid.UUID) -> None:
        arrays = self._entries.pop(test_id, None)
        if arrays is not None:
            self._size -= sum(len(a) for a in arrays if a is not None)


# Room for two uploads of a million readings with timestamps and reference (24 MB each):
# a worker of the accepting process normally takes its test within milliseconds.
HANDOFF = Handoff(max_bytes=48 << 20)


async def read_arrays(
    conn: Connection, test_id: uuid.UUID
) -> tuple[NDArray[np.float64] | None, ...] | None:
    """(values, timestamps, reference) of a stored test from its blocks; None without any.

    Each block is copied to its place by its number, so no ORDER BY (a plan that sorts 24 MB
    of blocks is slower than the whole read), and a series whose blocks do not add up to
    one array is an error, never zeros in a gap.
    """
    rows = await conn.fetch(
        "SELECT series, block, data FROM test_reading_blocks WHERE test_id = $1", test_id
    )
    if not rows:
        return None
    extent, filled, present = [0, 0, 0], [0, 0, 0], set()
    for series, block, data in rows:
        extent[series] = max(extent[series], block * BLOCK_BYTES + len(data))
        filled[series] += len(data)
        present.add(series)
    if extent != filled or any(len(data) > BLOCK_BYTES for *_, data in rows):
        raise ReadingsMissingError(f"test {test_id}: its stored reading blocks do not fit together")
    out = [bytearray(size) for size in extent]
    for series, block, data in rows:
        at = block * BLOCK_BYTES
        out[series][at : at + len(data)] = data
    arrays: list[NDArray[np.float64] | None] = []
    for series, raw in enumerate(out):
        array = np.frombuffer(raw, dtype=F64) if series in present else None
        if array is not None:
            array.flags.writeable = False  # as read from bytes: the analysis only reads
        arrays.append(array)
    return tuple(arrays)
