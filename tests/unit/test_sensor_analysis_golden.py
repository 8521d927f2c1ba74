"""Golden results of ``analyse()``: performance work must not change a verdict or a figure.

Runs the analysis on a fixed set of seeded series (with and without a reference, without
timestamps, healthy and every fault kind of the simulator, every built-in sensor type, a
slice of the validation corpus, the bench's 1,000,000-reading series) and compares the whole
result document with the stored one: verdicts, reasons, notes and messages exactly, floats to
a relative 1e-7, flagged-index lists and the per-reading aggregate flags exactly (long lists
by their SHA-256). Regenerate (only when a result is meant to change):
``python tests/unit/test_sensor_analysis_golden.py --regenerate``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from sensor_backend.sensor.analysis import analyse
from sensor_backend.sensor.response import first_order
from sensor_backend.sensor.simulate import simulate
from sensor_backend.sensor.specs import BUILTIN_SPECS, get_spec
from sensor_backend.validation.corpus import FAULTS as CORPUS_FAULTS
from sensor_backend.validation.corpus import SCENARIOS, make_case

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

GOLDEN = Path(__file__).parent / "data" / "sensor_analysis_golden.json.gz"
# 1e-7, not 1e-9: the one-pass scan (error_checks.scan) sums block by block, centred on each
# block's mean. The values' trend of a nearly flat series far from zero (a BME280 at
# ~1014 hPa: a slope of 4e-4 hPa/h) moved by 1.2e-8 relative, to the exact figure (checked
# with exact rational arithmetic: the golden one had lost those digits to the uncentred
# t.x sum); every other figure moved by under 1e-9 (drift fits of such series: ~8e-10).
REL_TOL = 1e-7
ABS_TOL = 1e-15
SIM_FAULTS = ("spikes", "stuck_at", "dropouts", "saturation", "drift", "bias", "noise")
LONG_LIST = 32  # index lists longer than this are stored as count, head and SHA-256

Case = tuple[str, "Callable[[], dict[str, Any]]"]


def _sim(spec_name: str, n: int, seed: int, faults: tuple[str, ...], **kw: Any) -> dict[str, Any]:
    spec = get_spec(spec_name)
    r = simulate(spec, n=n, seed=seed, faults=faults)
    ts = None if kw.pop("no_time", False) else r.timestamps
    ref = None if kw.pop("no_ref", False) else r.reference
    return analyse(spec, r.values, ts, ref, **kw).to_dict()


def _short(n: int) -> dict[str, Any]:
    spec = get_spec("temperature")
    r = simulate(spec, n=20, seed=8)
    return analyse(spec, r.values[:n], r.timestamps[:n], r.reference[:n]).to_dict()


def _sweep(spec_name: str, n: int, seed: int, tau: float) -> dict[str, Any]:
    spec = get_spec(spec_name)
    tt = np.arange(n, dtype=np.float64)
    sweep = 50.0 + 30.0 * np.sin(2 * math.pi * tt / 3600.0)
    noise = np.random.default_rng(seed).normal(0.0, 0.05, n)
    lagged = np.round(first_order(sweep, tt, tau) + noise, 2)
    return analyse(spec, lagged, tt, sweep).to_dict()


def _corpus(spec_name: str, scenario: str, fault: str, severity: float, seed: int) -> Any:
    spec = get_spec(spec_name)
    c = make_case(spec, scenario, fault, severity, seed, n=600)  # type: ignore[arg-type]
    return analyse(spec, c.values, c.timestamps, c.reference).to_dict()


def cases() -> Iterator[Case]:
    # The bench's three series, at full size.
    yield "bench/healthy-1M", lambda: _sim("temperature", 1_000_000, 1, ())
    yield "bench/sht31-sweep-1M", lambda: _sweep("sht31_humidity", 1_000_000, 1, 7.0)
    faults = ("spikes", "stuck_at", "dropouts", "saturation", "drift")
    yield "bench/faulty-1M", lambda: _sim("temperature", 1_000_000, 1, faults)
    # Every built-in type, healthy and each fault, long and short, with and without reference.
    for name in sorted(BUILTIN_SPECS):
        for n, seed in ((2_000, 3), (200_000, 4)):
            yield f"sim/{name}/{n}/healthy", lambda a=(name, n, seed): _sim(*a, ())
            yield f"sim/{name}/{n}/no-ref", lambda a=(name, n, seed): _sim(*a, (), no_ref=True)
            yield (
                f"sim/{name}/{n}/no-time",
                lambda a=(name, n, seed): _sim(*a, ("spikes",), no_time=True),
            )
            yield (
                f"sim/{name}/{n}/all-faults",
                lambda a=(name, n, seed): _sim(*a, SIM_FAULTS[:5]),
            )
            yield (
                f"sim/{name}/{n}/all-faults-no-ref",
                lambda a=(name, n, seed): _sim(*a, SIM_FAULTS[:5], no_ref=True),
            )
        for fault in SIM_FAULTS:
            yield f"sim/{name}/5000/{fault}", lambda a=(name, fault): _sim(a[0], 5_000, 5, (a[1],))
        yield (
            f"sim/{name}/5000/simple-rule",
            lambda a=name: _sim(a, 5_000, 6, ("bias",), decision_rule="simple"),
        )
        yield (
            f"sim/{name}/5000/u-ref",
            lambda a=name: _sim(a, 5_000, 7, (), reference_uncertainty=0.5),
        )
    for n in (0, 1, 2, 3, 5, 17):
        yield f"sim/short/{n}", lambda a=n: _short(a)
    yield "sweep/sht31-20k", lambda: _sweep("sht31_humidity", 20_000, 2, 7.0)
    yield "sweep/sht31-slow-20k", lambda: _sweep("sht31_humidity", 20_000, 2, 30.0)
    yield "sweep/sht45-200k", lambda: _sweep("sht45_humidity", 200_000, 3, 5.0)
    # A slice of the validation corpus: every type, scenario and fault kind (at 0.5x to 4x).
    severities = (0.5, 1.0, 2.0, 4.0)
    for i, name in enumerate(sorted(BUILTIN_SPECS)):
        for j, scenario in enumerate(SCENARIOS):
            yield (
                f"corpus/{name}/{scenario}/healthy",
                lambda a=(name, scenario): _corpus(*a, "healthy", 0.0, 101),
            )
            for k, fault in enumerate(CORPUS_FAULTS):
                if (i + j + k) % 2:
                    continue
                sev = severities[(i + j + k) // 2 % len(severities)]
                yield (
                    f"corpus/{name}/{scenario}/{fault}@{sev:g}",
                    lambda a=(name, scenario, fault, sev): _corpus(*a, 101),
                )


def normalise(value: Any) -> Any:
    """JSON-ready: long index lists become count, head and hash; tuples lists."""
    if isinstance(value, dict):
        return {str(k): normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        if len(value) > LONG_LIST and all(isinstance(v, int) for v in value):
            digest = hashlib.sha256(np.asarray(value, dtype=np.int64).tobytes()).hexdigest()
            return {"n": len(value), "head": list(value[:8]), "sha256": digest}
        return [normalise(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def document(make: Callable[[], dict[str, Any]]) -> Any:
    return normalise(make())


def _compare(got: Any, want: Any, path: str, out: list[str]) -> None:
    if isinstance(want, float) and isinstance(got, float | int) and not isinstance(got, bool):
        if not math.isclose(got, want, rel_tol=REL_TOL, abs_tol=ABS_TOL):
            out.append(f"{path}: {got!r} != {want!r}")
    elif isinstance(want, dict) and isinstance(got, dict):
        if got.keys() != want.keys():
            out.append(f"{path}: keys {sorted(got)} != {sorted(want)}")
        for k in want.keys() & got.keys():
            _compare(got[k], want[k], f"{path}.{k}", out)
    elif isinstance(want, list) and isinstance(got, list):
        if len(got) != len(want):
            out.append(f"{path}: length {len(got)} != {len(want)}")
        for i, (g, w) in enumerate(zip(got, want, strict=False)):
            _compare(g, w, f"{path}[{i}]", out)
    elif type(got) is not type(want) or got != want:
        out.append(f"{path}: {got!r} != {want!r}")


@pytest.fixture(scope="module")
def golden() -> dict[str, Any]:
    with gzip.open(GOLDEN, "rt") as f:
        data: dict[str, Any] = json.load(f)
    return data


CASES = dict(cases())


def test_every_case_has_a_stored_result(golden: dict[str, Any]) -> None:
    assert sorted(k for k in golden if k != "_aggregate_flags") == sorted(CASES)


@pytest.mark.parametrize("name", list(CASES))
def test_result_document_is_unchanged(name: str, golden: dict[str, Any]) -> None:
    diffs: list[str] = []
    _compare(json.loads(json.dumps(document(CASES[name]))), golden[name], name, diffs)
    assert not diffs, "\n".join(diffs[:20])


def _flags_digest(spec_name: str, n: int, seed: int, faults: tuple[str, ...]) -> str:
    spec = get_spec(spec_name)
    r = simulate(spec, n=n, seed=seed, faults=faults)
    res = analyse(spec, r.values, r.timestamps, r.reference)
    return hashlib.sha256(res.aggregate_flags.tobytes()).hexdigest()


FLAG_CASES = {
    f"{name}/{faults}": (name, 50_000, 9, faults)
    for name in sorted(BUILTIN_SPECS)
    for faults in ((), SIM_FAULTS[:5])
}


@pytest.mark.parametrize("name", list(FLAG_CASES))
def test_aggregate_flags_are_unchanged(name: str, golden: dict[str, Any]) -> None:
    assert _flags_digest(*FLAG_CASES[name]) == golden["_aggregate_flags"][name]


def regenerate() -> None:
    data = {name: json.loads(json.dumps(document(make))) for name, make in CASES.items()}
    data["_aggregate_flags"] = {name: _flags_digest(*a) for name, a in FLAG_CASES.items()}
    with gzip.open(GOLDEN, "wt") as f:
        json.dump(data, f, sort_keys=True, indent=0)


if __name__ == "__main__" and sys.argv[1:] == ["--regenerate"]:
    regenerate()
