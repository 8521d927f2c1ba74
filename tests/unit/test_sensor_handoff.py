"""The in-process handoff of stored readings to the accepting replica's workers."""

from __future__ import annotations

import uuid

from sensor_backend.sensor.reading_blocks import BLOCK_BYTES, Handoff, blocks


def test_handoff_is_taken_once():
    """A worker takes a test's arrays once; a second claim (a retry) reads the database."""
    handoff = Handoff(max_bytes=100)
    test_id = uuid.uuid4()
    handoff.put(test_id, (b"v" * 8, None, b"r" * 8))
    assert handoff.take(test_id) == (b"v" * 8, None, b"r" * 8)
    assert handoff.take(test_id) is None


def test_handoff_drops_the_oldest_beyond_its_bytes():
    """Past the byte bound the oldest entries go, and an oversized one is never kept."""
    handoff = Handoff(max_bytes=40)
    first, second, third, huge = (uuid.uuid4() for _ in range(4))
    for test_id in (first, second, third):
        handoff.put(test_id, (b"x" * 16, None, None))
    handoff.put(huge, (b"x" * 41, None, None))
    assert handoff.take(first) is None
    assert handoff.take(huge) is None
    assert handoff.take(second) is not None
    assert handoff.take(third) is not None


def test_a_process_without_workers_keeps_nothing():
    """Serving only (SENSOR_WORKERS=0), nothing would take the arrays: none are kept."""
    handoff = Handoff(max_bytes=100)
    handoff.enabled = False
    test_id = uuid.uuid4()
    handoff.put(test_id, (b"v" * 8, None, None))
    assert handoff.take(test_id) is None


def test_blocks_cover_each_array_in_order_without_copies():
    """Block rows of 1,000 readings, the last one short, absent series skipped."""
    test_id = uuid.uuid4()
    values = bytes(range(256)) * 70  # 17,920 bytes: two whole blocks and a short one
    rows = blocks(test_id, (values, None, b"\x01" * 8))
    assert [(s, n, len(d)) for _, s, n, d in rows] == [
        (0, 0, BLOCK_BYTES),
        (0, 1, BLOCK_BYTES),
        (0, 2, len(values) - 2 * BLOCK_BYTES),
        (2, 0, 8),
    ]
    assert b"".join(d for _, s, _, d in rows if s == 0) == values
    assert all(isinstance(d, memoryview) for *_, d in rows)
