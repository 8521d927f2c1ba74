"""Events accepted by the gateway while the event service is down, durably.

The original notes' "queue events for later processing", made durable. ``POST /events``
is proxied when the event service answers. When it cannot (breaker open,
no healthy replica, connect error, timeout, 5xx) or while older events still wait, the body
is validated as the event service would (so a 202 never hides a 422) and appended to the
gateway's fsynced, bounded spool: 202 ``queued``. A forwarder drains the spool in order to
the event service as the service account; the event id dedups any resend.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import aiohttp

from sensor_backend.core.cloudevents import parse_events
from sensor_backend.core.errors import Unavailable
from sensor_backend.core.log import get_logger
from sensor_backend.core.service_token import ServiceTokenError
from sensor_backend.core.spool import SpoolFullError

if TYPE_CHECKING:
    from collections.abc import Callable

    from sensor_backend.core.service_token import ServiceTokenProvider
    from sensor_backend.core.spool import Spool, SpooledItem
    from sensor_backend.gateway.proxy import Upstream

log = get_logger("gateway.events")
MAX_BATCH = 500


class EventQueue:
    def __init__(
        self,
        spool: Spool,
        upstream: Upstream,
        session: Callable[[], aiohttp.ClientSession],
        token: ServiceTokenProvider,
        *,
        timeout_s: float,
    ) -> None:
        self.spool = spool
        self.upstream = upstream
        self._session = session
        self.token = token
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.accepted = 0
        self.forwarded = 0
        self.rejected_by_service = 0
        self.wake: Callable[[], None] = lambda: None

    async def accept(self, raw: bytes) -> dict[str, Any]:
        """Validate and spool a body of one event or a batch; the 202 answer."""
        events, is_batch = parse_events(raw, MAX_BATCH)
        try:
            stored = await self.spool.append([(e.id, e.stamped().encode()) for e in events])
        except SpoolFullError as exc:
            raise Unavailable(
                "event service down and the gateway's event spool is full",
                retry_after_s=exc.retry_after_s,
                service="kafka",
            ) from exc
        self.accepted += sum(stored)
        self.wake()
        results = [
            {"id": e.id, "status": "queued" if ok else "duplicate"}
            for e, ok in zip(events, stored, strict=True)
        ]
        doc: dict[str, Any] = {
            "status": "queued",
            "queue_depth": self.spool.depth,
            "via": "gateway",
        }
        if is_batch:
            doc["results"] = results
        else:
            doc.update(results[0])
        return doc

    async def forward(self, items: list[SpooledItem]) -> list[int]:
        """The drainer's send: one batch to the event service, all or nothing."""
        replica = self.upstream.pool.pick()
        if replica is None:
            raise ConnectionError("no healthy event-service replica")
        generation = self.upstream.breaker.acquire()
        try:
            authorization = await self.token.authorization()
        except ServiceTokenError:
            self.upstream.breaker.release(generation)
            raise
        body = b"[" + b",".join(item.payload for item in items) + b"]"
        headers = {"Authorization": authorization, "Content-Type": "application/json"}
        try:
            async with self._session().post(
                f"{replica.url}/send-event", data=body, headers=headers, timeout=self.timeout
            ) as resp:
                status = resp.status
                detail = (await resp.text())[:300]
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self.upstream.breaker.record_failure(generation)
            self.upstream.pool.failed(replica)
            raise ConnectionError(f"event service unreachable: {type(exc).__name__}") from exc
        if status >= 500:  # noqa: PLR2004 - server error: keep the batch, retry later
            self.upstream.breaker.record_failure(generation)
            self.upstream.pool.failed(replica)
            raise ConnectionError(f"event service answered {status}")
        self.upstream.breaker.record_success(generation, 0.0)
        if status == 401:  # noqa: PLR2004 - the service token expired or was revoked
            self.token.invalidate()
            raise ConnectionError("event service refused the service token")
        if status >= 400:  # noqa: PLR2004
            # Validated before spooling, so this is a contract bug; do not block the queue.
            self.rejected_by_service += len(items)
            log.error(
                "event service rejected spooled events",
                status=status,
                detail=detail,
                ids=[json.loads(i.payload).get("id") for i in items][:10],
            )
        else:
            self.forwarded += len(items)
        return [item.seq for item in items]

    def snapshot(self) -> dict[str, Any]:
        return {
            **self.spool.snapshot(),
            "accepted": self.accepted,
            "forwarded": self.forwarded,
            "rejected_by_service": self.rejected_by_service,
        }
