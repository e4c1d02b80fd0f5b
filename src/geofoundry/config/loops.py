"""Sections of the loops around the pipeline: active learning and running point search."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ..choices import RPS_OBJECTIVES, RPS_SEARCHES
from .base import Section

AL_STRATEGIES = ("random", "entropy", "margin", "tta_disagreement", "mc_dropout", "coreset", "hybrid")


class AlConfig(Section):
    """Active learning: which unlabelled train ground ``geofoundry al rank`` hands out for labelling next."""

    strategy: Literal[AL_STRATEGIES] = Field(  # type: ignore[valid-type]
        "hybrid", description="how candidate tiles are ranked (geofoundry al rank --list describes each)")
    n: int = Field(20, ge=1, description="tiles handed out per round")
    tiles_per_block: int = Field(1, ge=1, le=16, description="candidate tiles per block side: 1 = whole blocks "
                                                            "(select.split.block_size_m), 2 = quarters, ...")
    min_unlabelled_frac: float = Field(0.5, gt=0, le=1, description="a tile is a candidate when at least this "
                                                                   "share of its valid ground is unlabelled")
    chip: int = Field(512, ge=32, description="side (px, model grid) of the windows a tile is scored in")
    batch_size: int = Field(8, ge=1)
    tta: Literal["flips", "d4"] = Field("d4", description="tta_disagreement: the transforms that disagree")
    mc_samples: int = Field(8, ge=2, description="mc_dropout: forward passes with dropout on")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = Field(0, ge=0, description="random: the draw; coreset and hybrid without labelled tiles: the first")


class RpsConfig(Section):
    """Running point search: predict and postprocess settings tried on the validation maps (docs/RPS.md). What
    ``settings`` names is checked against postprocess.steps and predict when params.yaml loads (:mod:`.rps`)."""

    settings: dict[str, Any] = Field(
        {"postprocess.threshold.value": {"low": 0.1, "high": 0.6, "step": 0.05},
         "postprocess.open.radius_px": [1, 2, 3], "postprocess.min_area.area_m2": {"low": 0, "high": 60, "step": 10},
         "predict.tta": ["none", "flips", "d4"]},
        description="what varies: postprocess.<op>.<param>, postprocess.steps.<i>.<op>.<param>, predict.tta, "
                    "predict.overlap or predict.ensemble.<i>.weight -> a list of values or {low, high[, step][, log]}")
    search: Literal[RPS_SEARCHES] = Field(  # type: ignore[valid-type]
        "grid", description="grid (every point), random or tpe (optuna)")
    trials: int = Field(700, ge=1, le=1_000_000, description="budget: points tried besides the current params")
    seed: int = Field(0, ge=0, description="random and tpe draws")
    objective: Literal[RPS_OBJECTIVES] = Field(  # type: ignore[valid-type]
        "f1", description="f1, recall_at_precision or precision_at_recall (validation object figures)")
    floor: float = Field(0.5, ge=0, le=1, description="the precision (recall) recall_at_precision "
                                                      "(precision_at_recall) must keep")
    memory_gb: float = Field(2.0, gt=0, description="chain states kept in memory between trials")
    disk_gb: float = Field(4.0, gt=0, description="probability maps of other predict settings kept in .rps-cache/")
