"""The one code path of every stage: params.yaml → typed config → the stage's module in ``pipeline.stages``. Used by
stages/ and the CLI."""

from __future__ import annotations

import importlib
import logging
import os
import sys
import warnings
from pathlib import Path
from types import ModuleType

from rich.logging import RichHandler

from ..io.folders import writable_folder
from ..io.lock import output_locks
from ..io.signals import handle_signals
from .params import load_params
from .paths import Paths
from .reporting import console, exit_process, reported

STAGES = ("select", "preprocess", "pretrain", "train", "predict", "postprocess", "evaluate", "export", "rps")
# Library warnings that say nothing a user can act on: (message regex, category)
HARMLESS = (
    ("Use `@` matmul instead of `\\*` mul operator", PendingDeprecationWarning),  # rasterio under affine >= 3
)
QUIET_LOGGERS = ("numexpr",)  # INFO lines about their own setup ("NumExpr defaulting to 2 threads")


def setup_logging(verbose: bool = False) -> None:
    """Rich log lines in a terminal; plain, unwrapped, timestamped lines in CI logs and `dvc repro` output. Warnings
    become one log line each (:func:`log_warning`); :data:`HARMLESS` ones and :data:`QUIET_LOGGERS`' INFO lines are
    not shown."""
    if console.is_terminal:
        handler: logging.Handler = RichHandler(console=console, show_path=False)
        fmt = "%(message)s"
    else:
        handler, fmt = logging.StreamHandler(sys.stderr), "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format=fmt, handlers=[handler], force=True)
    warnings.simplefilter("default", UserWarning)
    for message, category in HARMLESS:
        warnings.filterwarnings("ignore", message=message, category=category)
    warnings.showwarning = log_warning
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def log_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning as one log line: its message, and for a library's, the category and the library (instead of the
    file, line number and source line that Python prints)."""
    text = " ".join(str(message).split())
    package = top_package(filename)
    if package != "geofoundry":
        text += f" ({category.__name__} from {package})"
    logging.getLogger("warnings").warning(text)


def top_package(filename: str) -> str:
    """The top-level package a source file belongs to (its folder under site-packages or src), else its name."""
    parts = Path(filename).parts
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] in ("site-packages", "dist-packages", "src"):
            return Path(parts[i + 1]).stem
    return Path(filename).stem


def stage_module(name: str) -> ModuleType:
    """``geofoundry.pipeline.stages.<name>``: the stage's ``NAME`` and ``run(params, paths)``."""
    return importlib.import_module(f"{__package__}.stages.{name}")


def run(stage: ModuleType, params_path: str | Path = "params.yaml", root: str | Path = ".") -> object:
    """Run ``stage`` (its module in ``pipeline.stages``) with the parameters in ``params_path`` and outputs under
    ``root``. The folders it writes are checked to be writable first, so that a stage never fails at its last write
    after replacing its first outputs, and locked while it runs: a second run that would write them stops at once,
    naming the first (:mod:`..io.lock`)."""
    params = load_params(Path(root) / params_path)
    paths = Paths(Path(root))
    folders = stage.outputs(paths)
    for folder in folders:
        writable_folder(folder, f"{stage.NAME} output")
    writer = os.environ.get("RANK", "0") == "0"  # under torchrun, only rank 0 writes outputs
    with output_locks(folders if writer else ()):
        return stage.run(params, paths)


def run_stage(name: str, params_path: str | Path = "params.yaml", root: str | Path = ".") -> object:
    """Run the stage ``name`` with the parameters in ``params_path`` and outputs under ``root``."""
    return run(stage_module(name), params_path, root)


def main(stage: ModuleType) -> None:
    """Entry point of ``stages/<name>.py`` (``stage``: its module in ``pipeline.stages``): clear message and exit
    status 1 on bad input (128 + n on signal n, after its cleanups)."""
    setup_logging()
    handle_signals()
    try:
        with reported(stage.NAME):
            run(stage)
    except SystemExit as e:
        exit_process(e.code)
