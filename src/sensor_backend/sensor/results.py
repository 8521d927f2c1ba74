"""What a sensor test produces: QARTOD flags per check, statistics, accuracy and the verdict.

Flags are the IOOS QARTOD ones (1 pass, 2 not evaluated, 3 suspect, 4 fail, 9 missing).
Plain frozen dataclasses, separate from the engine in :mod:`sensor_backend.sensor.analysis`
so the service can store and render results without reading the analysis code.
``AnalysisResult.to_dict`` is the JSON stored with a completed test and returned by
``GET /test/{id}``; :meth:`AnalysisResult.key_metrics` is the short form carried by the
``sensor.test.completed`` event.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Mapping

    from numpy.typing import NDArray

    from sensor_backend.sensor.calibration import Calibration
    from sensor_backend.sensor.decision import Decision
    from sensor_backend.sensor.qc import Indices
    from sensor_backend.sensor.response import StepResponse
    from sensor_backend.sensor.uncertainty import Budget

# QARTOD flags: 1 pass, 2 not evaluated, 3 suspect, 4 fail, 9 missing (IOOS QARTOD manuals).
PASS, NOT_EVALUATED, SUSPECT, FAIL, MISSING = 1, 2, 3, 4, 9
FLAG_VALUES = (PASS, NOT_EVALUATED, SUSPECT, FAIL, MISSING)

Verdict: TypeAlias = Literal["pass", "suspect", "fail"]
Mode: TypeAlias = Literal["reference", "values"]

# Where the figure that set a check's flag comes from (issue 13: every reason names it).
DATASHEET, STANDARD, RIG = "datasheet", "standard", "rig choice"


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
    source: str = ""  # datasheet / standard / rig choice, and which figure

    @property
    def reason(self) -> str:
        return f"{self.name} [{self.source}]: {self.message}" if self.source else self.message

    def to_dict(
        self, *, include_indices: bool = True, max_indices: int | None = None
    ) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "flag": self.flag,
            "message": self.message,
            "counts": {str(k): v for k, v in self.counts.items()},
            "value": self.value,
            "limit": self.limit,
            "source": self.source,
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


@dataclass(frozen=True, slots=True)
class ResponseTime:
    datasheet_tau63_s: float | None
    datasheet_t90_s: float | None
    steps: tuple[StepResponse, ...]
    why: str | None = None  # why nothing was measured


def _no_flags() -> NDArray[np.uint8]:
    return np.empty(0, dtype=np.uint8)


def _flag_counts(flags: NDArray[np.uint8]) -> dict[str, int]:
    """{flag: readings} of the flags present, in flag order.

    One compare per QARTOD flag on the uint8 array (~0.4 ms a million) rather than
    ``np.bincount``, which first widens the million bytes to int64 (~2.5 ms).
    """
    counts = {flag: int(np.count_nonzero(flags == flag)) for flag in FLAG_VALUES}
    if sum(counts.values()) != flags.size:  # some other value: count everything
        counts = dict(enumerate(np.bincount(flags).tolist()))
    return {str(k): c for k, c in sorted(counts.items()) if c}


@dataclass(frozen=True, slots=True, eq=False)
class AnalysisResult:
    spec_name: str
    verdict: Verdict
    reasons: tuple[str, ...]
    notes: tuple[str, ...]
    stats: Stats
    accuracy: Accuracy | None
    noise_rms: float | None
    noise_method: str | None  # "first_difference" (of the error, or of the values)
    drift_per_hour: float | None
    drift_stderr_per_hour: float | None
    saturation_count: int
    gaps: Gaps | None
    checks: Mapping[str, CheckResult]
    # "reference": dynamics judged on the error value - reference; "values": QARTOD on values.
    mode: Mode = "values"
    uncertainty: Budget | None = None
    decision: Decision | None = None
    decision_rule_text: str | None = None
    response: ResponseTime | None = None
    calibration: Calibration | None = None
    # Worst QARTOD flag per reading (1/2/3/4/9); kept out of to_dict (one per reading).
    aggregate_flags: NDArray[np.uint8] = field(default_factory=_no_flags, repr=False)

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
            elif f.name == "aggregate_flags":
                data["aggregate_flag_counts"] = _flag_counts(value)
                continue
            elif isinstance(value, tuple):
                value = list(value)
            elif is_dataclass(value) and not isinstance(value, type):
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
            "mode": self.mode,
            "expanded_uncertainty": self.uncertainty.expanded if self.uncertainty else None,
            "decision_rule": self.decision.rule if self.decision else None,
        }
