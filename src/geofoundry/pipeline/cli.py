"""The ``geofoundry`` command: one subcommand per pipeline stage (same code path as ``stages/``), plus tools."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from .. import __version__
from ..errors import GeofoundryError
from ..io.signals import handle_signals
from .al_cli import app as al_app
from .archive_cli import archive_summary, is_archive
from .dashboard_cli import dashboard_command
from .reporting import console, missing_stack, report_error, reported
from .rps_cli import rps_command
from .runner import STAGES, run_stage, setup_logging

app = typer.Typer(help="geofoundry: GeoTIFF scenes + vector labels → reproducible, deployable detectors.",
                  no_args_is_help=True, pretty_exceptions_enable=False)


def versions() -> str:
    """geofoundry's version, and those of the libraries its results depend on (for bug reports)."""
    from importlib.metadata import PackageNotFoundError, version

    import rasterio

    found = [f"GDAL {rasterio.__gdal_version__}"]
    for name in ("rasterio", "onnxruntime", "torch", "dvc"):
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} not installed")
    return f"geofoundry {__version__} ({', '.join(found)})"


def _print_version(value: bool) -> None:
    if value:
        print(versions())
        raise typer.Exit()


@app.callback()
def main(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                      help="print the versions of geofoundry, GDAL and the main libraries, and exit")):
    """geofoundry: GeoTIFF scenes + vector labels → reproducible, deployable detectors."""
    handle_signals()  # SIGINT/SIGTERM/SIGHUP end any command with its cleanups and an error line


app.add_typer(al_app, name="al")
app.command("dashboard")(dashboard_command)
app.command("rps")(rps_command)

PARAMS = typer.Option(Path("params.yaml"), "--params", "-p", help="parameters file")
VERBOSE = typer.Option(False, "--verbose", "-v", help="debug logging")


def _stage_command(name: str):
    def command(params: Path = PARAMS, verbose: bool = VERBOSE) -> None:
        setup_logging(verbose)
        with reported(name):
            try:
                run_stage(name, params)
            except ModuleNotFoundError as e:
                raise missing_stack(e) from None

    command.__doc__ = f"Run the {name} stage with the parameters file (as `dvc repro {name}` does)."
    return command


for _name in STAGES:
    if _name not in ("postprocess", "predict", "select", "evaluate", "rps"):
        app.command(_name)(_stage_command(_name))


def _fail(name: str, e: GeofoundryError) -> typer.Exit:
    report_error(name, e)
    return typer.Exit(1)


BUNDLE = typer.Option(None, "--bundle", "-b", help="a delivered bundle folder (export/bundle)")


@app.command("predict")
def predict_command(
    scenes: list[str] = typer.Argument(None, help="with --bundle: scenes: files, folders, .txt lists, globs, STAC "
                                       "ItemCollections (.json), URLs or GDAL /vsi… paths"),
    bundle: Path | None = BUNDLE,
    out: Path = typer.Option(Path("predictions"), "--out", "-o", help="with --bundle: output folder"),
    bands: str | None = typer.Option(None, help="with --bundle: the scene's band names in order, e.g. red,green,blue"),
    sha256: str | None = typer.Option(None, help="with --bundle: expected sha256 of its SHA256SUMS (registry)"),
    threads: int = typer.Option(0, help="with --bundle: onnxruntime CPU threads, 0 = all cores"),
    engine: str = typer.Option("auto", help="with --bundle: auto | compiled | onnx. auto runs model.pt2 on a GPU it "
                               "was compiled for when the bundle is pinned with --sha256, else model.onnx on the CPU"),
    archive: bool = typer.Option(False, "--archive", help="with --bundle: an archive run (resumable, OUT/scenes/, "
                                 "OUT/objects.gpkg, OUT/stac/, OUT/run.json) even for scene files; always for "
                                 "folders, lists, globs, STAC, URLs, /vsi… paths and under torchrun"),
    iou: float = typer.Option(0.5, "--dedup-iou", min=0.0, max=1.0, help="archive runs: objects of overlapping "
                              "scenes at this IoU or more are one object (the higher score stays)"),
    params: Path = PARAMS, verbose: bool = VERBOSE,
):
    """Run the predict stage; or, with --bundle, predict scenes with a delivered bundle (no params.yaml; onnxruntime
    on the CPU, or its compiled package on a GPU): writes OUT/<scene>.tif (probabilities) and OUT/<scene>.gpkg
    (objects)."""
    if bundle is None:
        if scenes:
            raise _fail("predict", GeofoundryError("scene files need --bundle <dir>; without it the stage runs"))
        return _stage_command("predict")(params, verbose)
    if not scenes:
        raise _fail("predict", GeofoundryError("--bundle needs at least one scene file"))
    setup_logging(verbose)
    with reported("predict"):
        from ..bundle import open_bundle

        found = open_bundle(bundle, sha256)  # verified before the prediction code is even imported
        from ..delivery.predict import predict_bundle
        from ..models.engines import ENGINES

        if engine not in ENGINES:
            raise GeofoundryError(f"--engine {engine}: not one of {', '.join(ENGINES)}")
        names = [b for b in bands.split(",") if b.strip()] if bands else None
        if archive or is_archive(scenes):
            from ..archive.run import predict_archive
            from ..archive.sources import find_scenes

            return archive_summary(predict_archive(found, find_scenes(scenes), out, names, threads, engine, iou), out)
        result = predict_bundle(found, [Path(s) for s in scenes], out, names, threads, engine)
    ran = result["engines"][0]
    parity = f", max |Δp| {ran['parity']['max_abs_diff']:.3g} against the ONNX model" if "parity" in ran else ""
    console.print(f"predicted {len(result['scenes'])} scene(s), {result['objects']} objects → {out} "
                  f"({ran['engine']} engine{parity})")


@app.command("evaluate")
def evaluate_command(
    bundle: Path | None = BUNDLE,
    data: Path | None = typer.Option(None, "--data", "-d", help="with --bundle: a raw dataset root (scenes.csv, "
                                     "images/, labels/)"),
    out: Path = typer.Option(Path("acceptance"), "--out", "-o", help="with --bundle: output folder"),
    iou: float = typer.Option(0.5, help="with --bundle: IoU threshold for object matching"),
    threads: int = typer.Option(0, help="with --bundle: onnxruntime CPU threads, 0 = all cores"),
    params: Path = PARAMS, verbose: bool = VERBOSE,
):
    """Run the evaluate stage; or, with --bundle and --data, evaluate a delivered bundle on any raw-layout dataset
    (a client's acceptance test): OUT/evaluate.json with the keys of metrics/evaluate.json, OUT/report.json with
    the breakdowns of reports/evaluate.json, plots and overlays."""
    if bundle is None:
        if data is not None:
            raise _fail("evaluate", GeofoundryError("--data needs --bundle <dir>; without it the stage runs"))
        return _stage_command("evaluate")(params, verbose)
    if data is None:
        raise _fail("evaluate", GeofoundryError("--bundle needs --data <raw dataset root>"))
    setup_logging(verbose)
    with reported("evaluate"):
        from pydantic import ValidationError

        from ..bundle import open_bundle
        from ..config import EvaluateConfig
        from ..delivery.acceptance import evaluate_bundle
        from .stages.evaluate import headline_table

        try:
            cfg = EvaluateConfig(iou_threshold=iou)
        except ValidationError as e:
            raise GeofoundryError(f"--iou {iou}: {e.errors()[0]['msg']}") from None
        report = evaluate_bundle(open_bundle(bundle), data, out, cfg, threads)
    console.print(headline_table(report))
    console.print(f"→ {out}/evaluate.json, {out}/report.json, {out}/plots/")


@app.command("compile-gpu")
def compile_gpu_command(
    checkpoint: Path = typer.Option(Path("models/best.pt"), help="trained checkpoint"),
    stats: Path = typer.Option(Path("data/chips/stats.json"), help="input spec (bands, stretch) of the model"),
    out: Path = typer.Option(Path("export/model.pt2"), "--out", "-o", help="AOTInductor package to write"),
    max_batch: int = typer.Option(64, help="largest batch the package accepts"),
    tile: int = typer.Option(0, help="the one tile side (px) it takes, as predict.tile; 0: any multiple of 32"),
):
    """Compile the delivered model for this machine's GPU: torch.export + AOTInductor package (.pt2, bf16), loadable
    with torch._inductor.aoti_load_package and no geofoundry code. Build it on the target GPU, like a TensorRT engine."""
    setup_logging(False)
    with reported("compile-gpu"):
        import torch

        if not torch.cuda.is_available():
            raise GeofoundryError("no CUDA device: the AOTInductor package is compiled for the GPU it runs on")
        from ..models.checkpoint import load_checkpoint, model_from_checkpoint
        from ..models.compiled import compile_package
        from ..models.deployed import DeployedModel
        from ..models.input_spec import InputSpec

        spec = InputSpec.load(stats)
        model = DeployedModel(model_from_checkpoint(load_checkpoint(checkpoint, spec.bands)), spec.low, spec.high)
        compile_package(model, out, tile=tile or None, max_batch=max_batch, device="cuda")
    console.print(f"wrote {out} for {torch.cuda.get_device_name()}")


@app.command("build-engine")
def build_engine_command(
    bundle: Path = typer.Option(..., "--bundle", "-b", help="a delivered bundle folder", file_okay=False),
    int8: bool = typer.Option(False, "--int8", help="int8 (calibrated on train chips by polygraphy) besides fp16"),
    calib_chips: int = typer.Option(64, "--calib-chips", min=1, help="train chips for int8 calibration"),
    chips: Path = typer.Option(Path("data/chips"), help="preprocess output: train (calibration) and val (check)"),
    out: Path | None = typer.Option(None, "--out", "-o", help="engine file (default model_<precision>.plan)"),
    min_agreement: float = typer.Option(0.98, help="fail below this mask agreement with onnxruntime"),
    verbose: bool = VERBOSE,
):
    """Build a TensorRT engine for this GPU from a bundle's ONNX model (trtexec; int8: polygraphy) and check its
    masks against onnxruntime on val chips (polygraphy run). Needs trtexec, polygraphy and TensorRT's Python
    bindings."""
    setup_logging(verbose)
    with reported("build-engine"):
        from ..bundle import open_bundle
        from ..bundle.engine import build_and_check, tools_missing

        found = open_bundle(bundle)
        if reason := tools_missing():
            raise GeofoundryError(reason)
        out = out or Path(f"model_{'int8' if int8 else 'fp16'}.plan")
        cfg = found.predict
        result = build_and_check(found.model, found.spec, cfg.tile, cfg.batch_size, chips, out, int8, calib_chips,
                                 min_agreement=min_agreement)
        if not result["passed"]:
            raise GeofoundryError(f"engine masks agree with onnxruntime on {result['mask_agreement']:.4f} of pixels "
                                  f"(< {min_agreement}): {out} is not fit for use")
    console.print(result)


@app.command("postprocess")
def postprocess_command(params: Path = PARAMS, verbose: bool = VERBOSE,
                        list_ops: bool = typer.Option(False, "--list", help="describe the registered operations")):
    """Run the postprocess stage, or list the operations that postprocess.steps can chain."""
    if list_ops:
        from ..postprocess import format_ops_table
        console.print(format_ops_table())
        return
    _stage_command("postprocess")(params, verbose)


@app.command("select")
def select_command(
    params: Path = PARAMS, verbose: bool = VERBOSE,
    classes: list[str] = typer.Option(None, "--class", help="target class path prefix (repeat; any level, 1-4)"),
    sites: list[str] = typer.Option(None, "--site", help="keep this site (repeat)"),
    sensors: list[str] = typer.Option(None, "--sensor", help="keep this sensor (repeat)"),
    gsd: str = typer.Option(None, help="GSD range in metres, MIN:MAX"),
    dates: str = typer.Option(None, help="acquisition dates FIRST:LAST (ISO); ':' clears"),
    contexts: list[str] = typer.Option(None, "--context", help="NAME=MIN:MAX fraction range per block (repeat)"),
    include: str = typer.Option(None, help="geofence: GeoJSON file or WKT (lon/lat) to keep; '' clears"),
    exclude: str = typer.Option(None, help="geofence: GeoJSON file or WKT (lon/lat) to drop; '' clears"),
    min_valid_frac: float = typer.Option(None, help="minimum valid fraction of a scene"),
    block_size: float = typer.Option(None, help="split block size in metres"),
    seed: int = typer.Option(None, help="split seed"),
    write: bool = typer.Option(False, "--write", help="write the query into params.yaml, then run the stage"),
):
    """Run the select stage; with query options, preview the selection (no output written) or --write it to params."""
    from .select_query import overrides, preview, query_config, write_select

    setup_logging(verbose)
    with reported("select"):
        changes = overrides(classes, sites, sensors, gsd, dates, contexts, include, exclude, min_valid_frac,
                            block_size, seed)
        if not changes or write:
            query_config(params, changes)  # validate before touching params.yaml
            if changes:
                write_select(params, changes)
            run_stage("select", params)
            return
        console.print_json(data=preview(params, changes))
        console.print("preview only: add --write to store this query in params.yaml and write data/selection")


@app.command("catalog")
def catalog_command(
    params: Path = PARAMS, verbose: bool = VERBOSE,
    raw: Path = typer.Option(None, help="raw dataset folder (default data/raw)"),
    out: Path = typer.Option(Path("data/catalog"), help="output folder: scenes.parquet, blocks.parquet"),
    formats: list[str] = typer.Option(None, "--format", help="also write the layers as gpkg (catalog.gpkg) or fgb "
                                      "(scenes.fgb, blocks.fgb), for QGIS and GDAL older than 3.5 (repeat)"),
):
    """Build the catalog (GeoParquet of scenes and blocks: contexts, label counts per class level) of a raw dataset."""
    from ..catalog import run as build
    from ..io.folders import writable_folder
    from .params import load_params
    from .paths import Paths

    setup_logging(verbose)
    with reported("catalog"):
        cfg = load_params(params).select
        summary = build(raw or Paths(params.parent).raw, writable_folder(out, "--out"), cfg.split.block_size_m,
                        cfg.context_gsd_m, tuple(formats or ()))
        console.print(f"catalog: {summary['scenes']} scenes, {summary['blocks']} scene blocks in {out}"
                      + "".join(f", {p}" for p in summary["exported"]))


@app.command("ingest")
def ingest_command(
    scenes: list[Path] = typer.Argument(..., help="scene files (GeoTIFF, JPEG2000, VRT, …), folders of them, or "
                                        ".txt lists of them"),
    labels: Path = typer.Option(..., "--labels", "-l", help="one labels file in any vector format GDAL reads "
                                "(GeoPackage, GeoJSON, Shapefile, FlatGeobuf, …), in any CRS", dir_okay=False),
    out: Path = typer.Option(Path("data/raw"), "--out", "-o", help="the dataset folder to write", file_okay=False),
    class_column: str = typer.Option(None, "--class-column", help="the labels' column of class names or paths "
                                     "(default: class_path or class)"),
    class_path: str = typer.Option(None, "--class", help="one class path for every label, e.g. structure/building"),
    layer: str = typer.Option(None, help="the labels file's layer, when it has several"),
    bands: str = typer.Option(None, help="band names of every scene, in order, e.g. red,green,blue,nir (default: "
                              "the files' band descriptions or colour interpretation)"),
    site: str = typer.Option(None, help="site of every scene (default: each scene's id, its file name)"),
    country: str = typer.Option("", help="ISO 3166-1 alpha-2 country code of every scene"),
    sensor: str = typer.Option("unknown", help="sensor of every scene, e.g. aerial-rgb, worldview-3"),
    group: str = typer.Option(None, help="group of every scene: scenes over the same ground (default: the site)"),
    acquired: str = typer.Option(None, help="ISO acquisition date of every scene (default: the TIFF date tag)"),
    labelled_area: Path = typer.Option(None, "--labelled-area", help="polygons where the labels are complete "
                                       "(default: every scene's whole valid area)", dir_okay=False),
    licence: str = typer.Option(None, help="licence and attribution of the data (DATASET.md, the model card)"),
    force: bool = typer.Option(False, "--force", help="replace OUT if it exists"),
    verbose: bool = VERBOSE,
):
    """Bring your own data: scenes and one labels file → a dataset in the raw layout (docs/RAW_LAYOUT.md): scenes.csv
    from the files, tiled GeoTIFFs, labels per scene in lon/lat. Then version it with DVC (the command is printed)."""
    from ..ingest import IngestOptions, ingest

    setup_logging(verbose)
    names = [b.strip().lower() for b in bands.split(",")] if bands else None
    opts = IngestOptions(class_column=class_column, class_path=class_path, layer=layer, bands=names, site=site,
                         country=country, sensor=sensor, group=group, acquired=acquired,
                         labelled_area=labelled_area, licence=licence, force=force)
    try:
        summary = ingest(scenes, labels, out, opts)
    except GeofoundryError as e:
        raise _fail("ingest", e) from None
    track = "dvc commit -f data.dvc" if Path("data.dvc").is_file() and out.resolve() == Path("data/raw").resolve() \
        else f"dvc add {out}"
    console.print(f"ingest: {summary['scenes']} scenes, {summary['labels']} labels {summary['classes']} → {out}\n"
                  f"next: {track} && dvc push, then geofoundry catalog / geofoundry select --class <path> --write",
                  highlight=False)


@app.command("models")
def models_command(count: bool = typer.Option(True, help="build each preset to count its parameters")):
    """List the model presets that `arch` can name, with their bricks and parameter counts (3 bands, 2 classes)."""
    try:
        from ..models.registry import PRESETS, build_model, count_parameters
    except ModuleNotFoundError as e:
        raise _fail("models", missing_stack(e)) from None

    table = Table("arch", "smp architecture", "encoder", "params (M)", "bricks")
    for p in PRESETS.values():
        n = f"{count_parameters(build_model(p.name, 3, 2)) / 1e6:.1f}" if count else "-"
        table.add_row(p.name, p.arch, p.encoder, n, p.bricks)
    console.print(table)


@app.command("report")
def report_command(
    revs: list[str] = typer.Argument(None, help="git revisions or experiment names to compare (none: the workspace)"),
    out: Path = typer.Option(Path("build/plots"), "--out", "-o", help="output folder: OUT/index.html, OUT/static/"),
    targets: list[str] = typer.Option(None, "--target", "-t", help="only this plot file or name (repeat)"),
    repo: Path = typer.Option(Path("."), "--repo", help="the DVC repository"),
):
    """Write the training and evaluation plots as an offline HTML page (vega inlined, no network): `dvc plots diff
    REVS` with the vendored template, or `dvc plots show` without REVS. Opens nothing."""
    from ..report import render

    with reported("report"):
        from ..io.folders import existing_folder, writable_folder

        index = render(writable_folder(out, "--out"), revs or (), targets or (), existing_folder(repo, "--repo"))
    console.print(f"plots of {', '.join(revs) if revs else 'the workspace'} → {index}")
    print(index.as_uri())
