"""The pretrain stage: params and paths → ``geofoundry.pretrain.run``."""

from __future__ import annotations

from pathlib import Path

from ...cpu_numerics import pin_cpu_kernels

pin_cpu_kernels()  # before torch is imported, as for train: the same kernels, hence weights, on any AVX2 CPU

from ...config import Params  # noqa: E402
from ..paths import Paths  # noqa: E402

NAME = "pretrain"


def run(p: Params, d: Paths):
    from ... import pretrain  # here: params.yaml is read and checked before torch loads (bad params fail in a second)

    return pretrain.run(p.pretrain, p.arch, p.preprocess, d.raw, d.selection, d.chips / "stats.json", d.pretrained,
                        d.pretrain_live)


def outputs(d: Paths) -> tuple[Path, ...]:
    """The folders this stage writes (its outs in dvc.yaml)."""
    return (d.pretrained, d.pretrain_live)
