"""Numbers of the Gatys study, read back from its CSVs: loss curves, evaluations to reach a target,
the leading optimizer at each budget, and each optimizer's best learning rate and sensitivity to it."""
from __future__ import annotations

import csv
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .optimize import read_log

NAMES = {"sgd": "SGD", "adadelta": "Adadelta", "adagrad": "Adagrad", "adam": "Adam", "rmsprop": "RMSprop",
         "lbfgs": "L-BFGS"}
TARGET_FACTOR = 1.25  # the target objective: this times the lowest final objective of any optimizer
BUDGET_FRACTIONS = (0.1, 0.25, 0.5, 1.0)  # budgets (fractions of the evaluations) at which the leader is named


@dataclass
class SweepData:
    """One experiment's summary rows, with its per-evaluation logs read on demand."""

    folder: Path
    rows: list[dict[str, str]]
    _logs: dict[str, list[dict[str, float]]] = field(default_factory=dict)

    def log(self, row: dict[str, str]) -> list[dict[str, float]]:
        if row["log"] not in self._logs:
            self._logs[row["log"]] = read_log(self.folder / row["log"])
        return self._logs[row["log"]]

    def where(self, **values: str) -> list[dict[str, str]]:
        """The rows whose columns have these values."""
        return [r for r in self.rows if all(r.get(k) == v for k, v in values.items())]


def load_sweep(folder: Path) -> SweepData | None:
    """An experiment's summary.csv, or None where it has not run."""
    try:
        with open(folder / "summary.csv", newline="", encoding="utf-8") as f:
            return SweepData(folder, list(csv.DictReader(f)))
    except OSError:
        return None


def running_min(rows: Sequence[dict[str, float]]) -> list[float]:
    """The lowest total objective reached after each evaluation."""
    return list(itertools.accumulate((r["total"] for r in rows), min))


def reached(rows: Sequence[dict[str, float]], target: float) -> tuple[int, float] | None:
    """(evaluations, seconds) when the objective first fell to `target`, or None if it never did."""
    for r in rows:
        if r["total"] <= target:
            return int(r["iteration"]), float(r["seconds"])
    return None


def budgets(evaluations: int) -> list[int]:
    """The budgets at which the leading optimizer is named: fractions of the study's evaluations."""
    return sorted({max(1, round(evaluations * f)) for f in BUDGET_FRACTIONS})


def leaders(curves: dict[str, list[float]], at: Sequence[int]) -> list[tuple[int, str, float]]:
    """(budget, optimizer, objective) of the lowest objective reached within each budget."""
    out = []
    for b in at:
        best = min(curves, key=lambda k: curves[k][min(b, len(curves[k])) - 1])
        out.append((b, best, curves[best][min(b, len(curves[best])) - 1]))
    return out


@dataclass(frozen=True)
class RateResult:
    """One optimizer's learning-rate sweep: rates tried with their final objectives, and the reference
    rate (the one it used in the optimizer comparison)."""

    optimizer: str
    points: tuple[tuple[float, float], ...]  # (rate, final objective), by rate
    reference: float

    @property
    def best(self) -> tuple[float, float]:
        return min(self.points, key=lambda p: p[1])

    @property
    def spread(self) -> float:
        """Worst over best final objective across the rates tried: 1 = insensitive."""
        finals = [p[1] for p in self.points]
        return max(finals) / min(finals)

    @property
    def at_reference(self) -> float | None:
        """The final objective at the rate nearest the reference rate (over the best one)."""
        if not self.points:
            return None
        near = min(self.points, key=lambda p: abs(p[0] / self.reference - 1))
        return near[1] / self.best[1] if abs(near[0] / self.reference - 1) < 0.01 else None


def rate_results(sweep: SweepData, reference: dict[str, float]) -> list[RateResult]:
    """Per optimizer of the learning-rate sweep, in its order."""
    out = []
    for name in dict.fromkeys(r["optimizer"] for r in sweep.rows):
        points = sorted((float(r["lr"]), float(r["objective_total"])) for r in sweep.where(optimizer=name))
        out.append(RateResult(name, tuple(points), reference.get(name, points[0][0])))
    return out


def optimizer_label(optimizer: str) -> str:
    """The optimizer as the report names it (e.g. "L-BFGS" for lbfgs)."""
    return NAMES.get(optimizer, optimizer)


def join(items: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1] if items else ""
