"""Gateway throughput beside the service direct and beside nginx, in one run on one machine.

    python bench/gateway_throughput.py [--seconds 8] [--connections 32]

Needs Debian's ``wrk`` and ``nginx`` (``apt-get install wrk nginx-light``). Starts PostgreSQL,
auth and the gateway through the launcher's supervisor, then measures a GET of auth's JWKS
(an in-memory answer, so the proxy dominates):
  direct   wrk -> auth
  gateway  wrk -> gateway -> auth
  nginx    wrk -> nginx (reverse proxy, keep-alive upstream) -> auth
and prints requests/s, p50 and p99 for each and the ratios. Then it kills auth, opens the
auth breaker and times the gateway's 503 (median of 200 requests). Loopback only, bounded.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
from harness import Harness, free_offset

PATH = "/.well-known/jwks.json"
NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  upstream backend {{ server 127.0.0.1:{upstream}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
"""


def wrk(url: str, seconds: int, connections: int) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(label: str) -> float:
        match = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out)
        value, unit = float(match.group(1)), match.group(2)  # type: ignore[union-attr]
        return value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return {"rps": rps, "p50_ms": pct("50"), "p99_ms": pct("99")}


def cpu_per_request(proc: psutil.Process, url: str, seconds: int, connections: int) -> float:
    """Microseconds of the gateway's CPU (user + system) per proxied request.

    Unlike requests/s it hardly moves when other work shares the machine, so runs of two
    versions compare.
    """
    before = sum(proc.cpu_times()[:2])
    result = wrk(url, seconds, connections)
    return (sum(proc.cpu_times()[:2]) - before) / (result["rps"] * seconds) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: apt-get install wrk nginx-light")
    # The JWKS route's rate limit (per client address) raised out of the way, not switched
    # off: the limiter's own cost per request is part of what is measured.
    env = {"GATEWAY_RATE_LIMITS": "public=1000000000/60"}
    harness = Harness(
        {"postgres", "auth", "gateway"}, offset_start=free_offset(45000), env=env
    ).start()
    nginx_dir = Path(tempfile.mkdtemp(prefix="bench-nginx-"))
    nginx_port = 18080 + harness.offset % 1000
    auth_port = int(harness.url("auth").rsplit(":", 1)[1])
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (nginx_dir / sub).mkdir()
    (nginx_dir / "nginx.conf").write_text(
        NGINX_CONF.format(dir=nginx_dir, upstream=auth_port, port=nginx_port)
    )
    nginx = subprocess.Popen(
        ["nginx", "-c", str(nginx_dir / "nginx.conf")], stderr=subprocess.DEVNULL
    )
    try:
        time.sleep(1.0)
        targets = {
            "direct": f"{harness.url('auth')}{PATH}",
            "gateway": f"{harness.url('gateway')}{PATH}",
            "nginx": f"http://127.0.0.1:{nginx_port}{PATH}",
        }
        for url in targets.values():
            assert httpx.get(url).status_code == 200, url
            wrk(url, 2, args.connections)  # warm up
        gateway_proc = psutil.Process(harness.supervisor.managed["gateway"].process.pid)
        results = {name: wrk(url, args.seconds, args.connections) for name, url in targets.items()}
        cpu_us = cpu_per_request(gateway_proc, targets["gateway"], args.seconds, args.connections)
        print(f"GET {PATH}, wrk -t1 -c{args.connections} -d{args.seconds}s, one run")
        for name, r in results.items():
            latency = f"p50 {r['p50_ms']:6.2f} ms   p99 {r['p99_ms']:6.2f} ms"
            print(f"  {name:8} {r['rps']:9.0f} req/s   {latency}")
        g, d, n = results["gateway"], results["direct"], results["nginx"]
        print(
            f"  gateway/direct {g['rps'] / d['rps']:.2f}   gateway/nginx {g['rps'] / n['rps']:.2f}"
        )
        print(f"  gateway CPU per proxied request: {cpu_us:.0f} us (user + system)")

        harness.kill("auth")
        gw = harness.url("gateway")
        for _ in range(20):
            httpx.post(f"{gw}/auth/token", data={"username": "x", "password": "y"})
            if httpx.get(f"{gw}/health").json()["circuit_breakers"]["auth"]["open"]:
                break
        times = []
        with httpx.Client() as client:
            for _ in range(200):
                started = time.perf_counter()
                response = client.post(f"{gw}/auth/token", data={"username": "x", "password": "y"})
                times.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 503
        print(
            f"  503 with the auth breaker open: median {statistics.median(times):.2f} ms, "
            f"p99 {sorted(times)[197]:.2f} ms (keep-alive client)"
        )
    finally:
        nginx.terminate()
        nginx.wait()
        harness.close()
        shutil.rmtree(nginx_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
