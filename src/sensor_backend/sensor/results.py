"""What a sensor test produces: QARTOD flags per check, statistics, accuracy and the verdict.

Flags are the IOOS QARTOD ones (1 pass, 2 not evaluated, 3 suspect, 4 fail, 9 missing).
Plain frozen dataclasses, separate from the engine in :mod:`sensor_backend.sensor.analysis`
so the service can store and render results without reading the analysis code.
``AnalysisResult.to_dict`` is the JSON stored with a completed test and returned by
``GET /test/{id}``; :meth:`AnalysisResult.key_metrics` is the short form carried by the
``sensor.test.completed`` event.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sensor_backend.sensor.qc import Indices

# QARTOD flags: 1 pass, 2 not evaluated, 3 suspect, 4 fail, 9 missing (IOOS QARTOD manuals).
PASS, NOT_EVALUATED, SUSPECT, FAIL, MISSING = 1, 2, 3, 4, 9
FLAG_VALUES = (PASS, NOT_EVALUATED, SUSPECT, FAIL, MISSING)

Verdict: TypeAlias = Literal["pass", "suspect", "fail"]


@dataclass(frozen=True, slots=True, eq=False)
class CheckResult:
    """One check's outcome: summary flag, per-flag counts and the indices of flagged points.

    For point checks ``counts`` maps each flag to its number of readings. For statistic checks
    (accuracy, noise, drift) ``flag`` judges ``value`` against ``limit``; accuracy still lists
    the readings outside tolerance in ``fail_indices``.
    """

    name: str
    flag: int
    message: str
    counts: dict[int, int]
    suspect_indices: Indices
    fail_indices: Indices
    value: float | None = None
    limit: float | None = None

    def to_dict(
        self, *, include_indices: bool = True, max_indices: int | None = None
    ) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "flag": self.flag,
            "message": self.message,
            "counts": {str(k): v for k, v in self.counts.items()},
            "value": self.value,
            "limit": self.limit,
        }
        if include_indices:
            for key, idx in (("suspect", self.suspect_indices), ("fail", self.fail_indices)):
                cut = idx if max_indices is None else idx[:max_indices]
                entry[f"{key}_indices"] = cut.tolist()
                entry[f"{key}_truncated"] = cut.size < idx.size
        return entry


@dataclass(frozen=True, slots=True)
class Stats:
    count: int
    min: float | None
    max: float | None
    mean: float | None
    std: float | None  # sample standard deviation (ddof=1)
    trend_per_hour: float | None  # least-squares slope of the values themselves
    smallest_step: float | None  # smallest non-zero change between readings


@dataclass(frozen=True, slots=True)
class Accuracy:
    bias: float
    max_abs_error: float
    rmse: float
    fraction_within_tolerance: float
    outside_count: int


@dataclass(frozen=True, slots=True)
class Gaps:
    duration_s: float
    mean_interval_s: float
    max_interval_s: float
    gap_count: int  # intervals above the suspect factor
    missing_estimate: int  # readings the gaps should have held at the nominal rate


@dataclass(frozen=True, slots=True, eq=False)
class AnalysisResult:
    spec_name: str
    verdict: Verdict
    reasons: tuple[str, ...]
    notes: tuple[str, ...]
    stats: Stats
    accuracy: Accuracy | None
    noise_rms: float | None
    noise_method: str | None  # "detrended_error" (with reference) or "first_difference"
    drift_per_hour: float | None
    drift_stderr_per_hour: float | None
    saturation_count: int
    gaps: Gaps | None
    checks: Mapping[str, CheckResult]

    @property
    def flag(self) -> int:
        return {"pass": PASS, "suspect": SUSPECT, "fail": FAIL}[self.verdict]

    def to_dict(
        self, *, include_indices: bool = True, max_indices: int | None = None
    ) -> dict[str, Any]:
        """JSON-friendly dict; index lists are cut to ``max_indices`` (with ``*_truncated``)."""
        data: dict[str, Any] = {"flag": self.flag}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "checks":
                value = {
                    k: c.to_dict(include_indices=include_indices, max_indices=max_indices)
                    for k, c in value.items()
                }
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Stats | Accuracy | Gaps):
                value = asdict(value)
            data[f.name] = value
        return data

    def key_metrics(self) -> dict[str, Any]:
        """The figures a consumer of the completion event needs without the full result."""
        acc = self.accuracy
        return {
            "count": self.stats.count,
            "flag": self.flag,
            "checks": {name: c.flag for name, c in self.checks.items()},
            "bias": acc.bias if acc else None,
            "max_abs_error": acc.max_abs_error if acc else None,
            "rmse": acc.rmse if acc else None,
            "fraction_within_tolerance": acc.fraction_within_tolerance if acc else None,
            "noise_rms": self.noise_rms,
            "drift_per_hour": self.drift_per_hour,
            "gap_count": self.gaps.gap_count if self.gaps else None,
            "saturation_count": self.saturation_count,
        }
