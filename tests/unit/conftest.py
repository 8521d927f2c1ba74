"""Fixtures shared by the unit tests that talk HTTP to an in-process fake server."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

from sensor_backend.core.clock import ManualClock
from sensor_backend.core.http_client import HttpClientConfig, make_session

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import aiohttp


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    client = make_session(HttpClientConfig(total_timeout_s=5.0, connect_timeout_s=1.0))
    yield client
    await client.close()


@pytest.fixture
def clock() -> ManualClock:
    # Wall time starts at the real time: caches cap entries at a token's real exp.
    return ManualClock(start_monotonic=1000.0, start_time=time.time())
