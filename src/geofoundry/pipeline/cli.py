"""The ``geofoundry`` command: one subcommand per pipeline stage (same code path as ``stages/``), plus tools."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from ..errors import GeofoundryError
from .al_cli import app as al_app
from .runner import STAGES, console, report_error, run_stage, setup_logging

app = typer.Typer(help="geofoundry: GeoTIFF scenes + vector labels → reproducible, deployable detectors.",
                  no_args_is_help=True, pretty_exceptions_enable=False)

app.add_typer(al_app, name="al")

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
    if _name not in ("postprocess", "predict", "select", "evaluate"):
        app.command(_name)(_stage_command(_name))


def _fail(name: str, e: GeofoundryError) -> typer.Exit:
    report_error(name, e)
    return typer.Exit(1)


BUNDLE = typer.Option(None, "--bundle", "-b", help="a delivered bundle folder (export/bundle)", file_okay=False)


@app.command("predict")
def predict_command(
    scenes: list[Path] = typer.Argument(None, help="with --bundle: GeoTIFF scenes to predict", dir_okay=False),
    bundle: Path | None = BUNDLE,
    out: Path = typer.Option(Path("predictions"), "--out", "-o", help="with --bundle: output folder"),
    bands: str | None = typer.Option(None, help="with --bundle: the scene's band names in order, e.g. red,green,blue"),
    sha256: str | None = typer.Option(None, help="with --bundle: expected sha256 of its SHA256SUMS (registry)"),
    threads: int = typer.Option(0, help="with --bundle: onnxruntime CPU threads, 0 = all cores"),
    params: Path = PARAMS, verbose: bool = VERBOSE,
):
    """Run the predict stage; or, with --bundle, predict scenes on CPU with a delivered bundle (onnxruntime only,
    no params.yaml): writes OUT/<scene>.tif (probabilities) and OUT/<scene>.gpkg (objects)."""
    if bundle is None:
        if scenes:
            raise _fail("predict", GeofoundryError("scene files need --bundle <dir>; without it the stage runs"))
        return _stage_command("predict")(params, verbose)
    if not scenes:
        raise _fail("predict", GeofoundryError("--bundle needs at least one scene file"))
    setup_logging(verbose)
    try:
        from ..bundle import open_bundle
        from ..delivery.predict import predict_bundle

        names = [b for b in bands.split(",") if b.strip()] if bands else None
        result = predict_bundle(open_bundle(bundle, sha256), scenes, out, names, threads)
    except GeofoundryError as e:
        raise _fail("predict", e) from None
    console.print(f"predicted {len(result['scenes'])} scene(s), {result['objects']} objects → {out}")


@app.command("evaluate")
def evaluate_command(
    bundle: Path | None = BUNDLE,
    data: Path | None = typer.Option(None, "--data", "-d", help="with --bundle: a raw dataset root (scenes.csv, "
                                     "images/, labels/)", file_okay=False),
    out: Path = typer.Option(Path("acceptance"), "--out", "-o", help="with --bundle: output folder"),
    iou: float = typer.Option(0.5, help="with --bundle: IoU threshold for object matching"),
    threads: int = typer.Option(0, help="with --bundle: onnxruntime CPU threads, 0 = all cores"),
    params: Path = PARAMS, verbose: bool = VERBOSE,
):
    """Run the evaluate stage; or, with --bundle and --data, evaluate a delivered bundle on any raw-layout dataset
    (a client's acceptance test): OUT/evaluate.json with the keys of metrics/evaluate.json, plots and overlays."""
    if bundle is None:
        if data is not None:
            raise _fail("evaluate", GeofoundryError("--data needs --bundle <dir>; without it the stage runs"))
        return _stage_command("evaluate")(params, verbose)
    if data is None:
        raise _fail("evaluate", GeofoundryError("--bundle needs --data <raw dataset root>"))
    setup_logging(verbose)
    try:
        from ..bundle import open_bundle
        from ..config import EvaluateConfig
        from ..delivery.acceptance import evaluate_bundle

        metrics = evaluate_bundle(open_bundle(bundle), data, out, EvaluateConfig(iou_threshold=iou), threads)
    except GeofoundryError as e:
        raise _fail("evaluate", e) from None
    console.print(f"object F1 {metrics['object']['f1']:.3f}, pixel IoU {metrics['pixel']['iou']:.3f} → {out}")


@app.command("compile-gpu")
def compile_gpu_command(
    checkpoint: Path = typer.Option(Path("models/best.pt"), help="trained checkpoint"),
    stats: Path = typer.Option(Path("data/chips/stats.json"), help="input spec (bands, stretch) of the model"),
    out: Path = typer.Option(Path("export/model.pt2"), "--out", "-o", help="AOTInductor package to write"),
    max_batch: int = typer.Option(64, help="largest batch the package accepts"),
):
    """Compile the delivered model for this machine's GPU: torch.export + AOTInductor package (.pt2, bf16), loadable
    with torch._inductor.aoti_load_package and no geofoundry code. Build it on the target GPU, like a TensorRT engine."""
    setup_logging(False)
    try:
        import torch

        if not torch.cuda.is_available():
            raise GeofoundryError("no CUDA device: the AOTInductor package is compiled for the GPU it runs on")
        from ..export.aoti import export_aoti
        from ..models.checkpoint import load_checkpoint, model_from_checkpoint
        from ..models.deployed import DeployedModel
        from ..models.input_spec import InputSpec

        spec = InputSpec.load(stats)
        model = DeployedModel(model_from_checkpoint(load_checkpoint(checkpoint, spec.bands)), spec.low, spec.high)
        export_aoti(model.cuda(), len(spec.bands), out, max_batch=max_batch)
    except GeofoundryError as e:
        raise _fail("compile-gpu", e) from None
    console.print(f"wrote {out} for {torch.cuda.get_device_name()}")


@app.command("build-engine")
def build_engine_command(
    bundle: Path = typer.Option(..., "--bundle", "-b", help="a delivered bundle folder", file_okay=False),
    int8: bool = typer.Option(False, "--int8", help="int8 (entropy calibration on train chips) besides fp16"),
    calib_chips: int = typer.Option(64, "--calib-chips", min=1, help="train chips for int8 calibration"),
    chips: Path = typer.Option(Path("data/chips"), help="preprocess output: train (calibration) and val (check)"),
    out: Path | None = typer.Option(None, "--out", "-o", help="engine file (default model_<precision>.plan)"),
    min_agreement: float = typer.Option(0.98, help="fail below this mask agreement with onnxruntime"),
    verbose: bool = VERBOSE,
):
    """Build a TensorRT engine for this GPU from a bundle's ONNX model and check its masks against onnxruntime."""
    setup_logging(verbose)
    try:
        from ..bundle import open_bundle
        from ..bundle.engine import build_and_check, tensorrt_missing

        found = open_bundle(bundle)
        if reason := tensorrt_missing():
            raise GeofoundryError(reason)
        out = out or Path(f"model_{'int8' if int8 else 'fp16'}.plan")
        cfg = found.predict
        result = build_and_check(found.model, found.spec, cfg.tile, cfg.batch_size, chips, out, int8, calib_chips,
                                 min_agreement=min_agreement)
        if not result["passed"]:
            raise GeofoundryError(f"engine masks agree with onnxruntime on {result['mask_agreement']:.4f} of pixels "
                                  f"(< {min_agreement}): {out} is not fit for use")
    except GeofoundryError as e:
        raise _fail("build-engine", e) from None
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
    try:
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
    except GeofoundryError as e:
        console.print(f"[bold red]error[/] (select): {e}")
        raise typer.Exit(1) from None


@app.command("catalog")
def catalog_command(
    params: Path = PARAMS, verbose: bool = VERBOSE,
    raw: Path = typer.Option(None, help="raw dataset folder (default data/raw)"),
    out: Path = typer.Option(Path("data/catalog"), help="output folder: scenes.parquet, blocks.parquet"),
):
    """Build the catalog (GeoParquet of scenes and blocks: contexts, label counts per class level) of a raw dataset."""
    from ..catalog import run as build
    from .params import load_params
    from .paths import Paths

    setup_logging(verbose)
    try:
        cfg = load_params(params).select
        summary = build(raw or Paths(params.parent).raw, out, cfg.split.block_size_m, cfg.context_gsd_m)
        console.print(f"catalog: {summary['scenes']} scenes, {summary['blocks']} scene blocks in {out}")
    except GeofoundryError as e:
        console.print(f"[bold red]error[/] (catalog): {e}")
        raise typer.Exit(1) from None


@app.command("models")
def models_command(count: bool = typer.Option(True, help="build each preset to count its parameters")):
    """List the model presets that `arch` can name, with their bricks and parameter counts (3 bands, 2 classes)."""
    from ..models.registry import PRESETS, build_model, count_parameters

    table = Table("arch", "smp architecture", "encoder", "params (M)", "bricks")
    for p in PRESETS.values():
        n = f"{count_parameters(build_model(p.name, 3, 2)) / 1e6:.1f}" if count else "-"
        table.add_row(p.name, p.arch, p.encoder, n, p.bricks)
    console.print(table)


@app.command("report")
def report_command(
    revs: list[str] = typer.Argument(None, help="git revisions or experiment names to compare (none: the workspace)"),
    out: Path = typer.Option(Path("build/plots"), "--out", "-o", help="output folder: OUT/index.html, OUT/static/",
                             file_okay=False),
    targets: list[str] = typer.Option(None, "--target", "-t", help="only this plot file or name (repeat)"),
    repo: Path = typer.Option(Path("."), "--repo", help="the DVC repository", exists=True, file_okay=False),
):
    """Write the training and evaluation plots as an offline HTML page (vega inlined, no network): `dvc plots diff
    REVS` with the vendored template, or `dvc plots show` without REVS. Opens nothing."""
    from ..report import render

    try:
        index = render(out, revs or (), targets or (), repo)
    except GeofoundryError as e:
        report_error("report", e)
        raise typer.Exit(1) from None
    console.print(f"plots of {', '.join(revs) if revs else 'the workspace'} → {index}")
    print(index.as_uri())
