"""The one code path of every stage: params.yaml → typed config → ``<stage>.run``. Used by stages/ and the CLI."""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.logging import RichHandler

from .config import Params
from .io.folders import writable_folder
from .io.inputs import read_json
from .params import load_params
from .paths import Paths
from .reporting import report_error, reported

STAGES = ("select", "preprocess", "train", "predict", "postprocess", "evaluate", "export")
console = Console(stderr=True)


def _select(p: Params, d: Paths):
    from . import select
    from .select.pinned import pinned_path
    return select.run(p.select, d.raw, d.selection, d.metrics / "select.json", pinned_path(p.select.split, d))


def _preprocess(p: Params, d: Paths):
    from . import preprocess
    return preprocess.run(p.preprocess, d.selection, d.chips)


def _train(p: Params, d: Paths):
    from .cpu_numerics import pin_cpu_kernels

    pin_cpu_kernels()  # before torch is imported: the same kernels, hence weights, on any AVX2 CPU
    from . import train
    return train.run(p.train, p.arch, d.chips, d.models, d.live)


def _predict(p: Params, d: Paths):
    from . import predict
    for member in p.predict.ensemble:
        d.in_stage_folder(member.path, d.ensemble, "predict.ensemble", "predict",
                          f"dvc add {d.ensemble}/<name>.pt versions it")
    return predict.run(p.predict, d.selection, d.chips, d.models / "best.pt", d.predictions)


def _postprocess(p: Params, d: Paths):
    from . import postprocess
    classes = read_json(d.selection / "classes.json", "classes (select stage)")["names"][1:]
    return postprocess.run(p.postprocess, d.predictions, d.vectors, classes)


def _evaluate(p: Params, d: Paths):
    from . import evaluate
    return evaluate.run(p.evaluate, d.selection, d.predictions, d.vectors, d.metrics / "evaluate.json",
                        d.plots / "evaluate")


def _export(p: Params, d: Paths):
    from . import export
    prov = export.Provenance(p, d.root, d.raw, {"select": d.metrics / "select.json", "train": d.live / "metrics.json",
                                                "evaluate": d.metrics / "evaluate.json"})
    return export.run(p.export, d.chips, d.models / "best.pt", d.onnx, d.metrics / "export.json",
                      d / "export/bundle", prov)


# The folders each stage writes (dvc.yaml's outs): checked to be writable before the stage starts, so that a stage
# never fails at its last write after replacing its first outputs.
OUTPUTS: dict[str, Callable[[Paths], tuple[Path, ...]]] = {
    "select": lambda d: (d.selection, d.metrics), "preprocess": lambda d: (d.chips,),
    "train": lambda d: (d.models, d.live), "predict": lambda d: (d.predictions,),
    "postprocess": lambda d: (d.vectors,), "evaluate": lambda d: (d.metrics, d.plots / "evaluate"),
    "export": lambda d: (d.onnx.parent, d.metrics),
}

RUNNERS: dict[str, Callable[[Params, Paths], object]] = {
    "select": _select, "preprocess": _preprocess, "train": _train, "predict": _predict,
    "postprocess": _postprocess, "evaluate": _evaluate, "export": _export,
}


def setup_logging(verbose: bool = False) -> None:
    """Rich log lines in a terminal; plain, unwrapped, timestamped lines in CI logs and `dvc repro` output."""
    if console.is_terminal:
        handler: logging.Handler = RichHandler(console=console, show_path=False)
        fmt = "%(message)s"
    else:
        handler, fmt = logging.StreamHandler(sys.stderr), "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format=fmt, handlers=[handler], force=True)
    logging.captureWarnings(True)
    warnings.simplefilter("default", UserWarning)


def run_stage(name: str, params_path: str | Path = "params.yaml", root: str | Path = ".") -> object:
    """Run one stage with the parameters in ``params_path`` and outputs under ``root``."""
    params = load_params(Path(root) / params_path)
    paths = Paths(Path(root))
    for folder in OUTPUTS[name](paths):
        writable_folder(folder, f"{name} output")
    return RUNNERS[name](params, paths)


def main(name: str) -> None:
    """Entry point of ``stages/<name>.py``: clear message and exit status 1 on bad input."""
    setup_logging()
    with reported(name):
        run_stage(name)
