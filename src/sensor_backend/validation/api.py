"""Score the corpus end to end through the HTTP API: ``POST /test/{type}``, then poll.

``python -m sensor_backend.validation --url http://localhost:8002/test --token $TOKEN``
(straight to a sensor service) or ``--url http://localhost:8000/test/sensor`` (through the
gateway). Each case is sent as a rig's readings (values, timestamps, reference); the verdict
is read from ``GET /test/{id}``. Plain ``urllib`` and a thread pool: no client library
beyond the standard one.
"""

from __future__ import annotations

import json
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from sensor_backend.validation.corpus import Case

POLL_S = 0.1
TIMEOUT_S = 120.0


@dataclass(frozen=True, slots=True)
class Client:
    base: str  # POST {base}/{sensor_type}
    token: str

    def _call(self, method: str, url: str, body: dict[str, Any] | None = None) -> Any:  # noqa: ANN401
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - our URL
        req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
            return json.loads(resp.read())

    def verdict(self, case: Case) -> str:
        """Submit ``case`` as a rig's readings and wait for its verdict."""
        body = {
            "device_id": f"corpus-{case.sensor}-{case.seed}",
            "readings": {
                "values": case.values.tolist(),
                "timestamps": case.timestamps.tolist(),
                "reference": case.reference.tolist(),
            },
        }
        accepted = self._call("POST", f"{self.base}/{case.sensor}", body)
        parts = urlsplit(self.base)
        url = f"{parts.scheme}://{parts.netloc}{accepted['links']['self']}"
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            doc = self._call("GET", url)
            if doc["status"] == "completed":
                return str(doc["verdict"])
            if doc["status"] == "failed":
                return "error"
            time.sleep(POLL_S)
        return "timeout"

    def verdicts(self, cases: list[Case], workers: int = 8) -> list[str]:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(self.verdict, cases))
