"""The train stage: params and paths → ``geofoundry.train.run``."""

from __future__ import annotations

from pathlib import Path

from ...cpu_numerics import pin_cpu_kernels

pin_cpu_kernels()  # before torch is imported: the same kernels, hence weights, on any AVX2 CPU

from ...config import Params  # noqa: E402
from ..paths import Paths  # noqa: E402

NAME = "train"


def run(p: Params, d: Paths):
    from ... import train  # here: params.yaml is read and checked before torch loads (bad params fail in a second)

    if p.train.init_from is not None:
        d.in_stage_folder(p.train.init_from, d.init, "train.init_from", "train",
                          f"cp models/best.pt {d.init}/<name>.pt, then dvc add {d.init}/<name>.pt versions it")
    return train.run(p.train, p.arch, d.chips, d.models, d.live, d.root)


def outputs(d: Paths) -> tuple[Path, ...]:
    """The folders this stage writes (its outs in dvc.yaml)."""
    return (d.models, d.live)
