"""``geofoundry al``: the active-learning loop's commands, ``rank`` (tiles worth labelling next) and ``import``
(annotators' labels back into the raw dataset)."""

from __future__ import annotations

from pathlib import Path

import typer
from pydantic import ValidationError
from rich.table import Table

from ..config import AlConfig
from ..errors import GeofoundryError
from ..config import format_validation_error
from .params import load_params
from .paths import Paths
from .reporting import console, report_error
from .runner import setup_logging

app = typer.Typer(help="Active learning: rank unlabelled ground for labelling, import the labels back.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
PARAMS = typer.Option(Path("params.yaml"), "--params", "-p", help="parameters file")
VERBOSE = typer.Option(False, "--verbose", "-v", help="debug logging")


def _config(params_al: AlConfig, **changes) -> AlConfig:
    """``al:`` with the command line's changes, validated like params.yaml."""
    try:
        return AlConfig.model_validate({**params_al.model_dump(), **{k: v for k, v in changes.items() if v is not None}})
    except ValidationError as e:
        raise GeofoundryError(format_validation_error(e, "command line (al)")) from None


def _strategies_table() -> Table:
    from ..al.strategies import STRATEGIES

    table = Table("strategy", "ranks by")
    for s in STRATEGIES.values():
        table.add_row(s.name, s.summary)
    return table


@app.command("rank")
def rank_command(
    params: Path = PARAMS, verbose: bool = VERBOSE,
    out: Path = typer.Option(Path("build/al"), "--out", "-o", help="handout folder: tiles.gpkg, imagery/, ranking.csv",
                             file_okay=False),
    strategy: str = typer.Option(None, help="al.strategy for this run (see --list)"),
    n: int = typer.Option(None, "--n", "-n", help="al.n: tiles to hand out"),
    bundle: Path = typer.Option(None, "--bundle", "-b", help="rank with a delivered bundle's ONNX model instead of "
                                "models/best.pt (entropy, margin, tta_disagreement, random)", file_okay=False),
    threads: int = typer.Option(0, help="with --bundle: onnxruntime CPU threads, 0 = all cores"),
    list_strategies: bool = typer.Option(False, "--list", help="describe the strategies and exit"),
):
    """Rank the unlabelled ground of the train blocks with the model and hand out the best tiles: a GeoPackage and
    the imagery of each tile, ready for QGIS."""
    if list_strategies:
        console.print(_strategies_table())
        return
    setup_logging(verbose)
    try:
        from ..al.models import bundle_prober, checkpoint_prober
        from ..al.rank import rank
        from ..models.input_spec import InputSpec

        p, paths = load_params(params), Paths(params.parent)
        cfg = _config(p.al, strategy=strategy, n=n)
        if bundle is not None:
            from ..bundle import open_bundle

            found = open_bundle(bundle)
            spec, prober = found.spec, bundle_prober(found, cfg, threads)
        else:
            spec = InputSpec.load(paths.chips / "stats.json")
            prober = checkpoint_prober(paths.models / "best.pt", spec, p.predict, cfg)
        tiles = rank(cfg, prober, spec, paths.selection, paths.chips, p.select.split.block_size_m,
                     p.preprocess.rpc, out)
    except GeofoundryError as e:
        report_error("al rank", e)
        raise typer.Exit(1) from None
    table = Table("rank", "tile", "scene", "score", "unlabelled m²", "reason", title=f"al rank: {cfg.strategy}")
    for rec in tiles.itertuples():
        table.add_row(str(rec.rank), rec.tile_id, rec.scene_id, f"{rec.score:.4f}", f"{rec.unlabelled_m2:,.0f}",
                      rec.reason)
    console.print(table)
    console.print(f"open {out / 'tiles.gpkg'} and {out / 'imagery'}/ in QGIS, draw the objects of each tile in the "
                  f"'labels' layer, then: geofoundry al import {out / 'tiles.gpkg'}")


@app.command("import")
def import_command(
    labels: Path = typer.Argument(..., help="vector file of the new polygons (the handout's tiles.gpkg: its labels "
                                  "layer)", dir_okay=False, exists=True),
    area: Path = typer.Option(None, help="vector file of the ground the labels cover completely (default: the "
                              "handout's tiles layer)", dir_okay=False, exists=True),
    class_path: str = typer.Option(None, "--class-path", help="class path of polygons without one (default: the "
                                   "target class when select.classes names just one)"),
    raw: Path = typer.Option(None, help="raw dataset folder (default data/raw)", file_okay=False),
    params: Path = PARAMS, verbose: bool = VERBOSE,
):
    """Merge annotators' polygons into the raw dataset's labels and grow its labelled area; refuses bad geometries
    (naming their feature ids), files without a CRS and anything on test ground. Nothing is written unless all is
    right."""
    setup_logging(verbose)
    try:
        from ..al.importer import import_labels

        p, paths = load_params(params), Paths(params.parent)
        default = class_path or (p.select.classes[0] if len(p.select.classes) == 1 else None)
        result = import_labels(labels, raw or paths.raw, paths.selection / "blocks.parquet", area, default)
    except GeofoundryError as e:
        report_error("al import", e)
        raise typer.Exit(1) from None
    table = Table("scene", "labels added", "duplicates skipped", "labelled m² added", title=f"al import: {labels}")
    for scene_id, r in result["scenes"].items():
        grown = "labelled everywhere" if r["labelled_everywhere"] else f"{r['labelled_m2_added']:,.0f}"
        table.add_row(scene_id, str(r["labels_added"]), str(r["duplicates_skipped"]), grown)
    console.print(table)
    root = raw or paths.raw
    console.print(f"{root} is ready for DVC: `dvc add {root}` (it updates the .dvc file that tracks it), commit that "
                  "file with git, then `dvc repro` retrains on the grown labels")
