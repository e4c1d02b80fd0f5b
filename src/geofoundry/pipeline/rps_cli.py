"""``geofoundry rps``: the running point search as the stage runs it, or with ``--apply`` its best point written
into params.yaml, with the ``dvc exp run -S`` line that sets the same values."""

from __future__ import annotations

from pathlib import Path

import typer

from .paths import Paths
from .reporting import console, missing_stack, reported
from .runner import run_stage, setup_logging

PARAMS = typer.Option(Path("params.yaml"), "--params", "-p", help="parameters file")
VERBOSE = typer.Option(False, "--verbose", "-v", help="debug logging")
APPLY = typer.Option(False, "--apply", help="write the best point of reports/rps.json into the parameters file "
                                            "(no search) and print the same change as `dvc exp run -S`")


def rps_command(params: Path = PARAMS, verbose: bool = VERBOSE, apply: bool = APPLY) -> None:
    """Run the rps stage (as `dvc repro rps` does): the settings of rps.settings tried on the validation maps; or,
    with --apply, write the best point found into params.yaml."""
    setup_logging(verbose)
    with reported("rps"):
        try:
            if not apply:
                run_stage("rps", params)
                return
            from ..rps.apply import apply_best, exp_run_line
        except ModuleNotFoundError as e:
            raise missing_stack(e) from None

        changed = apply_best(params, Paths(params.parent).reports / "rps.json")
    if not changed:
        console.print(f"{params} already holds the best point of the search", highlight=False)
        return
    console.print(f"{params}: set {', '.join(changed)}; `dvc repro` re-runs what depends on them. The same as an "
                  "experiment:", highlight=False)
    print(exp_run_line(changed))
