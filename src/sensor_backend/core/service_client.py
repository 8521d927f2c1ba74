"""One client for every call from one service to another (docs/resilience.md).

`ServiceClient` owns what such a call needs, in one place: the target service's replica
pool (:mod:`sensor_backend.core.replicas`), its breaker, a retry budget, the retry policy and
the timeouts. The gateway's proxy, its event forwarder and the sensor service's outbox relay
all call through it, so replica choice, outcome bookkeeping and retries are the same
everywhere:

- the breaker is asked first (open: `CircuitOpenError` at once, no socket touched);
- a replica is picked (least outstanding, panic routing when all are ejected);
- the outcome is recorded **when the response headers arrive**: connect errors, timeouts and
  502/503/504 are failures of the service and its replica; a 500 is a failure of the replica
  only; anything else is a success. What happens after the headers (a slow or vanished
  client, a long body) says nothing about the upstream's health;
- a try that failed before any response was handed out is retried on another replica when
  the call is ``retryable`` (idempotent, or carrying an Idempotency-Key), the retry budget
  allows and attempts remain, after a full-jitter backoff. A response handed out is never
  retried. After the last try a 502/503/504 is handed out as it is (the caller decides:
  the proxy relays the service's own 503 and its Retry-After), and a connect error or
  timeout raises `UpstreamUnreachableError`;
- a request body that fails because of *our* client (it left, sent more than allowed,
  or stalled while the upstream waited: ``data.client_fault`` / ``waiting_on_client``,
  see ``gateway.proxy.ClientBody``) gives the breaker permit back without a verdict and
  raises that fault (`ClientDisconnect`, 413, 408).

Usage::

    async with client.call("POST", "/send-event", data=body, headers=h) as resp:
        ...  # resp is an aiohttp.ClientResponse; released on exit
"""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING, Any

import aiohttp

from sensor_backend.core import spans, tracing
from sensor_backend.core.errors import RequestTimeout
from sensor_backend.core.retry import RetryPolicy, retry_async

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

    from sensor_backend.core.breaker import CircuitBreaker
    from sensor_backend.core.replicas import Replica, ReplicaPool
    from sensor_backend.core.retry import RetryBudget

# What a replica answers when it cannot serve anyone right now: counted against the service's
# breaker and the replica, retried where safe. A 500 is one request's failure: it counts
# against the replica only (Envoy's consecutive_5xx), whose ejection a passing health check
# ends. A 4xx is the client's: a success for both.
CANNOT_SERVE = frozenset({502, 503, 504})
SERVER_ERROR = 500
_TRANSPORT_ERRORS = (aiohttp.ClientError, TimeoutError, OSError)


class UpstreamUnreachableError(ConnectionError):
    """No replica answered: connect errors or timeouts on every try."""


class ServiceClient:
    """Calls to one service: its replicas, breaker, retry budget, policy and timeouts."""

    def __init__(
        self,
        name: str,
        pool: ReplicaPool,
        breaker: CircuitBreaker,
        budget: RetryBudget,
        session: Callable[[], aiohttp.ClientSession],
        *,
        timeout_s: float,
        connect_timeout_s: float = 1.0,
        retry: RetryPolicy | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.name = name
        self.pool = pool
        self.breaker = breaker
        self.budget = budget
        self.session = session
        # A call passes its own timeout, which replaces the session's: keep the connect
        # bound in it (DESIGN.md §5), or a blackholed replica costs the whole total.
        self.timeout = aiohttp.ClientTimeout(
            total=timeout_s, connect=connect_timeout_s, sock_connect=connect_timeout_s
        )
        # Streamed calls (the proxy): no silence longer than timeout_s instead of a total,
        # so a large upload or download that keeps flowing is never cut off; time to the
        # response headers is still bounded by it.
        self.stream_timeout = aiohttp.ClientTimeout(
            total=None,
            connect=connect_timeout_s,
            sock_connect=connect_timeout_s,
            sock_read=timeout_s,
        )
        self.retry = retry or RetryPolicy()
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        # Called when a health check sees the service come back (a replica ready again, or
        # the breaker's open wait ended): queues waiting for it resume now.
        self.on_ready: list[Callable[[], None]] = []

    def call(
        self,
        method: str,
        path: str,
        *,
        headers: Any = None,  # noqa: ANN401 - whatever aiohttp takes as headers
        data: Any = None,  # noqa: ANN401 - bytes, an async iterable of bytes, or None
        retryable: bool = False,
        streamed: bool = False,
    ) -> Exchange:
        """One logical call (an async context manager yielding the response).

        ``streamed``: the body or the answer may be large and flow at the client's pace
        (the proxy): bounded by silence, not by a total.
        """
        return Exchange(
            self,
            method=method,
            path=path,
            headers=headers,
            data=data,
            retryable=retryable,
            timeout=self.stream_timeout if streamed else self.timeout,
        )

    def probed(self, url: str, ready: bool) -> None:  # noqa: FBT001 - the probe callback's shape
        """An active health check's result (``core.service_probes.add_service_probes``).

        Ready readmits the replica and ends the breaker's open wait, whatever it has grown
        to over a long outage history (docs/resilience.md); not ready withholds traffic.
        """
        returned = self.pool.probed(url, up=ready)
        if ready and (self.breaker.health_check_passed() or returned):
            for callback in self.on_ready:
                callback()

    def snapshot(self) -> dict[str, Any]:
        return {**self.pool.snapshot(), "retry_budget": self.budget.snapshot()}


class Exchange:
    """The tries of one call; holds the replica and response until the caller is done."""

    __slots__ = (
        "_client",
        "_data",
        "_headers",
        "_method",
        "_path",
        "_replica",
        "_response",
        "_retryable",
        "_span",
        "_timeout",
    )

    def __init__(
        self,
        client: ServiceClient,
        *,
        method: str,
        path: str,
        headers: Any,  # noqa: ANN401
        data: Any,  # noqa: ANN401
        retryable: bool,
        timeout: aiohttp.ClientTimeout,
    ) -> None:
        self._client = client
        self._method = method
        self._path = path
        self._headers = headers
        self._data = data
        self._retryable = retryable
        self._timeout = timeout
        self._replica: Replica | None = None
        self._response: aiohttp.ClientResponse | None = None
        self._span: spans.ClientSpan | None = None

    async def __aenter__(self) -> aiohttp.ClientResponse:
        if tracing.state.tracer is None:
            return await self._enter()
        # One client span for the call, all tries in it; the downstream's parent is it.
        span = self._span = spans.ClientSpan(self._client.name, self._method, self._path)
        self._headers = span.inject(self._headers)
        try:
            resp = await self._enter()
        except BaseException as exc:
            span.end(exc)
            raise
        span.status(resp.status)
        return resp

    async def _enter(self) -> aiohttp.ClientResponse:
        client = self._client
        last: Replica | None = None  # the replica of the latest try

        async def attempt() -> aiohttp.ClientResponse:
            nonlocal last
            generation = client.breaker.acquire()  # CircuitOpenError when open
            replica = last = client.pool.pick(last)  # a retry prefers another replica
            outcome = await self._try(replica, generation)
            if isinstance(outcome, aiohttp.ClientResponse):
                return outcome
            kind = "timed out" if isinstance(outcome, TimeoutError) else "unreachable"
            raise UpstreamUnreachableError(f"{replica.url} {kind}") from outcome

        def discard(outcome: aiohttp.ClientResponse | BaseException, _delay: float) -> None:
            if isinstance(outcome, aiohttp.ClientResponse):
                outcome.release()  # a 502/503/504 retried past: its replica is free again
                if last is not None:
                    last.outstanding -= 1

        response = await retry_async(
            attempt,
            safe=self._retryable,
            policy=client.retry,
            budget=client.budget,
            retry_on=lambda exc: isinstance(exc, UpstreamUnreachableError),
            retry_on_result=lambda resp: resp.status in CANNOT_SERVE,
            on_retry=discard,
            rng=client.rng,
        )
        # Handed out (a 502/503/504 too, after the last try): the replica stays busy with
        # it until __aexit__ releases it.
        self._replica, self._response = last, response
        return response

    async def _try(
        self, replica: Replica, generation: int
    ) -> aiohttp.ClientResponse | BaseException:
        """One try, its outcome recorded: the response, or the transport error."""
        client = self._client
        breaker = client.breaker
        replica.outstanding += 1
        replica.requests += 1
        started = time.perf_counter()
        try:
            resp = await client.session().request(
                self._method,
                replica.url + self._path,
                headers=self._headers,
                data=self._data,
                timeout=self._timeout,
                allow_redirects=False,
            )
        except _TRANSPORT_ERRORS as exc:
            replica.outstanding -= 1
            client_fault = _client_fault(self._data, exc)
            if client_fault is not None:
                # Our client left, sent too much or stalled: not the upstream's failure.
                breaker.release(generation)
                raise client_fault from exc
            breaker.record_failure(generation, time.perf_counter() - started)
            client.pool.failed(replica)
            return exc
        except BaseException:
            replica.outstanding -= 1
            breaker.release(generation)
            raise
        status = resp.status
        if status in CANNOT_SERVE:
            breaker.record_failure(generation, time.perf_counter() - started)
            client.pool.failed(replica)
            return resp
        breaker.record_success(generation, time.perf_counter() - started)
        if status == SERVER_ERROR:
            client.pool.failed(replica)
        else:
            client.pool.succeeded(replica)
        return resp

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        replica = self._replica
        if self._span is not None:
            self._span.end(exc)
        if self._response is not None:
            self._response.release()
        if replica is not None:
            replica.outstanding -= 1
            if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError):
                # The upstream broke off mid-body: the headers were fine, the replica not.
                # (A timeout mid-body is not counted: our own client may be the slow one.)
                self._client.pool.failed(replica)


def _client_fault(data: object, exc: BaseException) -> Exception | None:
    """The client's fault behind a failed upload, if it was the client's (else None)."""
    fault: Exception | None = getattr(data, "client_fault", None)
    if (
        fault is None
        and isinstance(exc, TimeoutError)
        and getattr(data, "waiting_on_client", False)
    ):
        fault = RequestTimeout("the request body stopped arriving")
    return fault
