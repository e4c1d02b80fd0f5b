"""Objectives by name (``rps.objective``): what the search maximises, from a trial's validation object figures.

- ``f1``: object F1;
- ``recall_at_precision``: recall, among points whose precision is at least ``rps.floor``;
- ``precision_at_recall``: precision, among points whose recall is at least ``rps.floor``.

A point below the floor is infeasible: its value is how far it falls short (negative), so the best point is a
feasible one whenever any is, and a model-based sampler is drawn towards the floor until it reaches it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..choices import RPS_OBJECTIVES


@dataclass(frozen=True)
class Objective:
    name: str
    summary: str
    value: Callable[[dict, float], float]  # (figures, floor) -> value to maximise
    feasible: Callable[[dict, float], bool]
    floored: bool = False  # reads rps.floor


def _at_floor(target: str, floored: str) -> Objective:
    def value(figures: dict, floor: float) -> float:
        return figures[target] if figures[floored] >= floor else figures[floored] - floor

    return Objective(f"{target}_at_{floored}", f"{target} where {floored} >= rps.floor", value,
                     lambda figures, floor: figures[floored] >= floor, floored=True)


OBJECTIVES: dict[str, Objective] = {
    "f1": Objective("f1", "object F1", lambda figures, _: figures["f1"], lambda figures, _: True),
    "recall_at_precision": _at_floor("recall", "precision"),
    "precision_at_recall": _at_floor("precision", "recall"),
}
assert tuple(OBJECTIVES) == RPS_OBJECTIVES  # choices.RPS_OBJECTIVES validates rps.objective when params load
