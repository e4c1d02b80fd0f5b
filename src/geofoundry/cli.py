"""The ``geofoundry`` command: one subcommand per pipeline stage (same code path as ``stages/``), plus tools."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from .errors import GeofoundryError
from .runner import STAGES, console, report_error, run_stage, setup_logging

app = typer.Typer(help="geofoundry: GeoTIFF scenes + vector labels → reproducible, deployable detectors.",
                  no_args_is_help=True, pretty_exceptions_enable=False)

PARAMS = typer.Option(Path("params.yaml"), "--params", "-p", help="parameters file")
VERBOSE = typer.Option(False, "--verbose", "-v", help="debug logging")


def _stage_command(name: str):
    def command(params: Path = PARAMS, verbose: bool = VERBOSE) -> None:
        setup_logging(verbose)
        try:
            run_stage(name, params)
        except GeofoundryError as e:
            report_error(name, e)
            raise typer.Exit(1) from None

    command.__doc__ = f"Run the {name} stage with the parameters file (as `dvc repro {name}` does)."
    return command


for _name in STAGES:
    if _name != "postprocess":
        app.command(_name)(_stage_command(_name))


@app.command("postprocess")
def postprocess_command(params: Path = PARAMS, verbose: bool = VERBOSE,
                        list_ops: bool = typer.Option(False, "--list", help="describe the registered operations")):
    """Run the postprocess stage, or list the operations that postprocess.steps can chain."""
    if list_ops:
        from .postprocess import format_ops_table
        console.print(format_ops_table())
        return
    _stage_command("postprocess")(params, verbose)


@app.command("models")
def models_command(count: bool = typer.Option(True, help="build each preset to count its parameters")):
    """List the model presets that `arch` can name, with their bricks and parameter counts (3 bands, 2 classes)."""
    from .models.registry import PRESETS, build_model, count_parameters

    table = Table("arch", "smp architecture", "encoder", "params (M)", "bricks")
    for p in PRESETS.values():
        n = f"{count_parameters(build_model(p.name, 3, 2)) / 1e6:.1f}" if count else "-"
        table.add_row(p.name, p.arch, p.encoder, n, p.bricks)
    console.print(table)


if __name__ == "__main__":
    app()
