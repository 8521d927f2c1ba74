"""Score :func:`sensor_backend.sensor.analysis.analyse` on the corpus: confusion matrices.

Run: ``python -m sensor_backend.validation [--seeds N] [--sensor NAME]``. Prints, per sensor
type, the verdicts (pass / suspect / fail) per fault kind at each severity, then the targets
of issue 13: every fault at or above 2x tolerance caught (verdict not ``pass``), no healthy
sensor ``fail``, at most 2 % of healthy sensors ``suspect``.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sensor_backend.sensor.analysis import analyse
from sensor_backend.sensor.specs import BUILTIN_SPECS
from sensor_backend.validation.corpus import FAULTS, SCENARIOS, SEVERITIES, make_case

if TYPE_CHECKING:
    from collections.abc import Iterable

    from sensor_backend.validation.corpus import Case

CAUGHT_FROM = 2.0  # severity (x tolerance) from which a fault must not pass


@dataclass(slots=True)
class Score:
    # (sensor, fault, severity) -> Counter of verdicts
    cells: dict[tuple[str, str, float], Counter[str]] = field(default_factory=dict)
    missed: list[str] = field(default_factory=list)  # faults >= 2x that passed
    healthy_fail: list[str] = field(default_factory=list)  # labels of healthy cases
    healthy_suspect: list[str] = field(default_factory=list)

    def add(self, key: tuple[str, str, float], verdict: str) -> None:
        self.cells.setdefault(key, Counter())[verdict] += 1

    def healthy_total(self) -> int:
        return sum(sum(c.values()) for k, c in self.cells.items() if k[1] == "healthy")

    def rates(self) -> dict[str, float]:
        total = self.healthy_total()
        faulty = sum(
            sum(c.values())
            for k, c in self.cells.items()
            if k[1] != "healthy" and k[2] >= CAUGHT_FROM
        )
        return {
            "healthy": total,
            "healthy_fail_rate": len(self.healthy_fail) / total if total else 0.0,
            "healthy_suspect_rate": len(self.healthy_suspect) / total if total else 0.0,
            "faults_at_2x": faulty,
            "missed_at_2x_rate": len(self.missed) / faulty if faulty else 0.0,
        }


def cases(
    sensors: Iterable[str], seeds: Iterable[int], healthy_seeds: Iterable[int], n: int
) -> list[Case]:
    """Every applicable case of the corpus for ``sensors``; faulty cells use ``seeds``."""
    out: list[Case] = []
    faulty_seeds, ok_seeds = list(seeds), list(healthy_seeds)
    for name, scenario in itertools.product(sensors, SCENARIOS):
        spec = BUILTIN_SPECS[name]
        out += [make_case(spec, scenario, "healthy", 0.0, seed, n) for seed in ok_seeds]
        for fault, severity, seed in itertools.product(FAULTS, SEVERITIES, faulty_seeds):
            case = make_case(spec, scenario, fault, severity, seed, n)
            if case.applicable:
                out.append(case)
    return out


def tally(items: Iterable[tuple[Case, str]]) -> Score:
    """The confusion matrices of (case, verdict) pairs."""
    score = Score()
    for case, verdict in items:
        score.add((case.sensor, case.fault, case.severity), verdict)
        label = f"{case.sensor}/{case.scenario}/seed {case.seed}"
        if case.fault == "healthy":
            if verdict == "fail":
                score.healthy_fail.append(label)
            elif verdict == "suspect":
                score.healthy_suspect.append(label)
        elif case.severity >= CAUGHT_FROM and verdict == "pass":
            score.missed.append(f"{label}: {case.fault} {case.severity:g}x")
    return score


def verdict_of(case: Case) -> str:
    spec = BUILTIN_SPECS[case.sensor]
    return analyse(spec, case.values, case.timestamps, case.reference).verdict


def run(
    sensors: Iterable[str], seeds: Iterable[int], healthy_seeds: Iterable[int], n: int
) -> Score:
    """Analyse every case of the corpus for ``sensors`` with :func:`analyse` directly."""
    return tally((c, verdict_of(c)) for c in cases(sensors, seeds, healthy_seeds, n))


def summary(score: Score) -> str:
    """One line per sensor type: healthy verdicts, and faulty ones by severity."""
    head = "| sensor | healthy | " + " | ".join(f"faults {s:g}x tol" for s in SEVERITIES) + " |"
    lines = ["(pass / suspect / fail)\n", head, "|---" * (len(SEVERITIES) + 2) + "|"]
    for name in sorted({k[0] for k in score.cells}):
        cells = []
        for fault, sevs in (("healthy", (0.0,)), *(("faulty", (s,)) for s in SEVERITIES)):
            total: Counter[str] = Counter()
            for key, c in score.cells.items():
                if (
                    key[0] == name
                    and key[2] in sevs
                    and (key[1] == "healthy") == (fault == "healthy")
                ):
                    total += c
            cells.append(f"{total['pass']} / {total['suspect']} / {total['fail']}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table(score: Score) -> str:
    """Markdown confusion matrices: one per sensor type, fault kind x severity."""
    lines: list[str] = []
    sensors = sorted({k[0] for k in score.cells})
    header = "| fault | " + " | ".join(f"{s:g}x tol" for s in SEVERITIES) + " |"
    for name in sensors:
        lines += [f"\n**{name}** (pass / suspect / fail)\n", header]
        lines.append("|---" * (len(SEVERITIES) + 1) + "|")
        healthy = score.cells.get((name, "healthy", 0.0), Counter())
        cell = f"{healthy['pass']} / {healthy['suspect']} / {healthy['fail']}"
        lines.append(f"| healthy | {cell} |" + " |" * (len(SEVERITIES) - 1))
        for fault in FAULTS:
            row = []
            for sev in SEVERITIES:
                c = score.cells.get((name, fault, sev))
                row.append("-" if c is None else f"{c['pass']} / {c['suspect']} / {c['fail']}")
            lines.append(f"| {fault} | " + " | ".join(row) + " |")
    r = score.rates()
    lines.append(
        f"\nhealthy: {r['healthy']} series, fail {r['healthy_fail_rate']:.1%}, "
        f"suspect {r['healthy_suspect_rate']:.1%}; faults at >= {CAUGHT_FROM:g}x tolerance: "
        f"{r['faults_at_2x']} series, passed (missed) {r['missed_at_2x_rate']:.1%}"
    )
    return "\n".join(lines)
