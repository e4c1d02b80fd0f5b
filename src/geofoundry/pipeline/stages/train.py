"""The train stage: params and paths → ``geofoundry.train.run``."""

from __future__ import annotations

from ... import train
from ...config import Params
from ..paths import Paths

NAME = "train"


def run(p: Params, d: Paths):
    return train.run(p.train, p.arch, d.chips, d.models, d.live)
