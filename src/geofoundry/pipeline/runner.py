"""The one code path of every stage: params.yaml → typed config → the stage's module in ``pipeline.stages``. Used by
stages/ and the CLI."""

from __future__ import annotations

import importlib
import logging
import sys
import warnings
from pathlib import Path
from types import ModuleType

from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from ..errors import GeofoundryError
from .params import load_params
from .paths import Paths

STAGES = ("select", "preprocess", "train", "predict", "postprocess", "evaluate", "export")
console = Console(stderr=True)
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


def run_stage(name: str, params_path: str | Path = "params.yaml", root: str | Path = ".") -> object:
    """Run one stage with the parameters in ``params_path`` and outputs under ``root``."""
    params = load_params(Path(root) / params_path)
    return stage_module(name).run(params, Paths(Path(root)))


def report_error(name: str, err: GeofoundryError) -> None:
    """Print a bad-input error without a traceback (unwrapped, so it can be grepped and copied; brackets in it are
    text, not markup)."""
    console.print(f"[bold red]error[/] ({name}): {escape(str(err))}", soft_wrap=True, highlight=False)


def main(stage: ModuleType) -> None:
    """Entry point of ``stages/<name>.py`` (``stage``: its module in ``pipeline.stages``): clear message and exit
    status 1 on bad input."""
    setup_logging()
    try:
        stage.run(load_params("params.yaml"), Paths(Path(".")))
    except GeofoundryError as e:
        report_error(stage.NAME, e)
        sys.exit(1)
