"""Run one service process under uvicorn (uvloop + httptools, our JSON logging)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import uvicorn

if TYPE_CHECKING:
    from fastapi import FastAPI

    from sensor_backend.core.settings import ServiceSettings


# The server must keep an idle connection open longer than any client pool keeps one idle
# (http_client.CLIENT_KEEPALIVE_S), or a pooled connection is reused just as the server
# closes it and the request fails with a reset (the rule Envoy and AWS ALB document:
# the upstream's idle timeout exceeds the proxy's). docs/resilience.md.
SERVER_KEEPALIVE_S = 75


def serve(app: FastAPI, settings: ServiceSettings) -> None:
    """Serve until SIGINT/SIGTERM; uvicorn then runs the lifespan shutdown hooks."""
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        # uvloop + httptools: plain asyncio + h11 is about 4x slower (DESIGN.md §9).
        loop="uvloop",
        http="httptools",
        lifespan="on",
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=10,
        timeout_keep_alive=SERVER_KEEPALIVE_S,
        backlog=2048,
    )
    uvicorn.Server(config).run()
