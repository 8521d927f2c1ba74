"""``python -m sensor_backend.validation``: score the analysis on the corpus (see score.py)."""

from __future__ import annotations

import argparse
import sys
import time

from sensor_backend.sensor.specs import BUILTIN_SPECS
from sensor_backend.validation.api import Client
from sensor_backend.validation.corpus import N
from sensor_backend.validation.score import cases, summary, table, tally, verdict_of


def main() -> int:
    parser = argparse.ArgumentParser(description="Score the sensor analysis on the corpus")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per faulty cell")
    parser.add_argument("--healthy-seeds", type=int, default=20, help="seeds per healthy cell")
    parser.add_argument("--sensor", action="append", help="only this type (repeatable)")
    parser.add_argument("--n", type=int, default=N, help="readings per series")
    parser.add_argument("--list", action="store_true", help="list misses and false alarms")
    parser.add_argument("--url", help="score through the HTTP API: POST {url}/{sensor_type}")
    parser.add_argument("--token", help="bearer token for --url")
    args = parser.parse_args()
    started = time.perf_counter()
    corpus = cases(
        args.sensor or sorted(BUILTIN_SPECS), range(args.seeds), range(args.healthy_seeds), args.n
    )
    if args.url:
        verdicts = Client(args.url.rstrip("/"), args.token or "").verdicts(corpus)
    else:
        verdicts = [verdict_of(c) for c in corpus]
    score = tally(zip(corpus, verdicts, strict=True))
    out = [summary(score), table(score)]
    if args.list:
        for label, items in (
            ("missed", score.missed),
            ("healthy fail", score.healthy_fail),
            ("healthy suspect", score.healthy_suspect),
        ):
            out += [f"{label}: {item}" for item in items]
    out.append(f"({time.perf_counter() - started:.1f} s)")
    sys.stdout.write("\n".join(out) + "\n")
    r = score.rates()
    ok = r["missed_at_2x_rate"] == 0 and r["healthy_fail_rate"] == 0
    return 0 if ok and r["healthy_suspect_rate"] <= 0.02 else 1  # noqa: PLR2004


if __name__ == "__main__":
    sys.exit(main())
