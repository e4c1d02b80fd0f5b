"""The postprocess stage: params and paths → ``geofoundry.postprocess.run``."""

from __future__ import annotations

import json

from ... import postprocess
from ...config import Params
from ..paths import Paths

NAME = "postprocess"


def run(p: Params, d: Paths):
    classes = json.loads((d.selection / "classes.json").read_text())["names"][1:]
    return postprocess.run(p.postprocess, d.predictions, d.vectors, classes)
