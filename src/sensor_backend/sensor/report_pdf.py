"""``GET /test/{test_id}/report.pdf``: the printable report as an A4 PDF (issue 14).

WeasyPrint lays out the very page ``GET /test/{test_id}/report`` serves (`sensor.report`:
its ``@page`` rule makes it A4, its SVG plots carry their own paint for WeasyPrint); it is
the optional ``pdf`` extra and needs pango, so it is imported late, in a thread.

    PdfUnsupported (501)        the extra or pango is missing: no render is possible here
    TooManyRequests (429)       every render slot of this process is taken (`RenderGate`)

A render is pure-Python layout, about a second of one core per report (README "Test
reports"), so it runs in a worker thread, at most `SLOTS` at a time per process. Nothing is
cached: the page states when it was issued, so a kept PDF would state a stale time.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from sensor_backend.core.errors import ServiceError, TooManyRequests
from sensor_backend.sensor import report

if TYPE_CHECKING:
    import uuid

    from sensor_backend.sensor.service import SensorService

EXTRA = "pdf"
# One render at a time per process: layout holds the GIL, so a second thread would not
# finish sooner, it would only slow the event loop (and /health) further.
SLOTS = 1
RETRY_AFTER_S = 2.0  # about one render (README "Test reports")


class PdfUnsupported(ServiceError):
    """501, not 503 (RFC 9110 §15.6.2): this deployment cannot render PDFs at all.

    Waiting would not help (a 503 with Retry-After invites retries), and the gateway counts
    a service's 502/503/504 against its breaker and replica (core.service_client), which a
    missing optional package must not trip.
    """

    status_code = 501
    code = "not_implemented"


def _renderer() -> Any:  # noqa: ANN401 - weasyprint.HTML: the package ships no types
    try:
        from weasyprint import HTML  # type: ignore[import-untyped]  # noqa: PLC0415 - optional
    except (ImportError, OSError) as exc:  # OSError: pango missing (cffi's dlopen)
        raise PdfUnsupported(
            f"PDF reports need the optional '{EXTRA}' extra (WeasyPrint and pango): "
            f"pip install 'sensor-backend[{EXTRA}]'; GET /test/{{test_id}}/report and the "
            "browser's Print to PDF still work",
            extra=EXTRA,
        ) from exc
    return HTML


def render_pdf(page: str) -> bytes:
    """The PDF of one report page; CPU-bound (about a second), so call it in a thread."""
    from weasyprint.urls import URLFetcher  # type: ignore[import-untyped]  # noqa: PLC0415

    # The page fetches nothing; should markup ever slip through, WeasyPrint fetches nothing
    # either (the HTML route's CSP is default-src 'none'; WeasyPrint's own security notes).
    fetcher = URLFetcher(allowed_protocols=(), allow_redirects=False)
    pdf = _renderer()(string=page, url_fetcher=fetcher).write_pdf()
    return bytes(pdf)


class RenderGate:
    """At most ``slots`` renders at once; one more is refused (429), never queued.

    A slot is held from `reserve` until the render's thread ends, even when the request
    that started it is cancelled (the thread cannot be stopped), so ``slots`` bounds the
    threads that render, not just the requests waiting for them.

    429, not 503: the gateway counts a service's 503 against its breaker and ejects the
    replica (core.service_client.CANNOT_SERVE; five in a row open the breaker for every
    sensor route), and a busy renderer is not a failing service.
    """

    def __init__(self, slots: int = SLOTS, *, retry_after_s: float = RETRY_AFTER_S) -> None:
        self.slots = slots
        self.retry_after_s = retry_after_s
        self.busy = 0

    def reserve(self) -> None:
        if self.busy >= self.slots:
            raise TooManyRequests(
                f"the PDF renderer is busy ({self.slots} at a time); retry shortly",
                retry_after_s=self.retry_after_s,
            )
        self.busy += 1

    def release(self) -> None:
        self.busy -= 1

    async def run(self, page: str) -> bytes:
        """Render a reserved slot's page in a thread; the slot is freed when it ends."""
        rendering = asyncio.ensure_future(asyncio.to_thread(render_pdf, page))
        rendering.add_done_callback(self._ended)
        return await asyncio.shield(rendering)

    def _ended(self, task: asyncio.Future[bytes]) -> None:
        self.release()
        if not task.cancelled():
            task.exception()  # retrieved: its request may have gone (logged there if not)


GATE = RenderGate()


async def check_renderer() -> None:
    """501 unless WeasyPrint loads; in a thread: the first import (pango via cffi) is ~0.3 s."""
    await asyncio.to_thread(_renderer)


async def build(
    svc: SensorService, test_id: uuid.UUID, gate: RenderGate = GATE
) -> tuple[str, bytes]:
    """(report id, PDF) of a completed test: 429 when busy, then 404 or 409 as the HTML."""
    gate.reserve()
    try:
        rid, page = await report.build(svc, test_id)
    except BaseException:
        gate.release()
        raise
    return rid, await gate.run(page)
