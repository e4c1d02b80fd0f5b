"""Active learning, simulated on a labelled dataset (DEV): how many labelled train blocks each strategy needs to
reach the object F1 of the whole train pool, against random choice.

The labels of the train pool are hidden: a seeded 10 % of its blocks (``--step``) start labelled; each round adds
another 10 %, picked by each strategy (``geofoundry.al``: the chips of the unlabelled blocks scored with the last
round's model) or at random, and the model is trained again from scratch with the train stage's own loop on the chips
of the labelled blocks (hiding a block's labels equals leaving its chips out: preprocess masks every chip to its
block). Every round's model predicts the test blocks with the predict stage's model function and sliding window, and
the object F1 on the test split comes from the postprocess and evaluate stages. Each seed also trains on the whole
pool (the reference).

Three steps, because the middle one runs where only torch is installed (a GPU machine without rasterio):

    python bench/active_learning.py prepare --work W                  # select + preprocess (params.yaml) → W/pack
    python bench/active_learning.py run --pack W/pack --out R --recipe gpu --device cuda --workers 6 \\
        --seeds 0 1 2 --strategies random entropy coreset hybrid --rounds 6 --deadline 480
    python bench/active_learning.py report --work W --results R --write BENCHMARKS.md
    python bench/active_learning.py all --work W --recipe cpu ...     # the three in one go (CPU)

``report`` writes ``R/report.json`` (object F1 of every job; per strategy and labelled fraction the mean ± sd over
seeds; the fraction each strategy needs to reach 95 % of the full pool's F1, and the saving against random), the
curves as a vega-lite spec and an SVG rendered offline with the project's vendored vega (``--plot docs/img/...``),
and with ``--write`` the table into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
if importlib.util.find_spec("geofoundry") is None:
    sys.path.insert(0, str(ROOT / "src"))

from al_rounds import load_array, save_array, simulate

# training and prediction of each round; "gpu" is the GPU recipe (TRAINING.md) with unet-r34 and a quarter of its
# epochs (tens of runs fit in minutes of a GPU), "cpu" a short run of params.yaml's model, "tiny" a smoke run (tests)
RECIPES = {
    "gpu": {"arch": "unet-r34",
            "train": {"epochs": 10, "samples_per_epoch": 1024, "batch_size": 16, "lr": 0.001,
                      "target": "footprint_border_contact", "monitor": "val/object_f1"},
            "predict": {"tile": 512, "overlap": 128, "batch_size": 8, "tta": "d4"}},
    "cpu": {"arch": "unet",
            "train": {"epochs": 4, "samples_per_epoch": 256, "batch_size": 8, "lr": 0.002,
                      "monitor": "val/object_f1"},
            "predict": {"tile": 512, "overlap": 128, "batch_size": 4, "tta": "none"}},
    "tiny": {"arch": "unet",
             "train": {"epochs": 1, "samples_per_epoch": 8, "batch_size": 4},
             "predict": {"tile": 256, "overlap": 32, "batch_size": 4, "tta": "none"}},
}
TARGET = 0.95  # of the full pool's object F1


# --- prepare (CPU, rasterio) ---------------------------------------------------------------------------------------


def test_regions(selection: Path, spec, tile: int, overlap: int, pack: Path) -> list[dict]:
    """Each test block of each scene as the predict stage reads it: the region around the block (``overlap`` pixels
    of context) on the model grid, its bands (raw values) and its flags (0 invalid, 1 valid, 3 valid and in the
    block), padded to the rows and columns the sliding window reads. Saved as ``region<k>_{bands,flags}``."""
    import geopandas as gpd
    import pandas as pd
    from rasterio.features import geometry_mask
    from rasterio.windows import Window
    from rasterio.windows import transform as window_transform

    from geofoundry.io.geometry import reproject
    from geofoundry.io.raster import band_indexes, open_model_grid
    from geofoundry.io.tiling import block_window, starts

    scenes = pd.read_parquet(selection / "scenes.parquet")
    blocks = gpd.read_parquet(selection / "blocks.parquet")
    test = blocks[blocks["split"] == "test"]
    regions = []
    for _, row in scenes.iterrows():
        indexes = band_indexes(row["image_path"], row["band_names"].split("|"), spec.bands)
        with open_model_grid(row["image_path"], float(row["gsd_m"]), spec.gsd_m, indexes, spec.resampling) as grid:
            for _, block in test.iterrows():
                area = reproject(block.geometry, "EPSG:3857", grid.ds.crs, densify_parts=64)
                region = block_window(area.buffer(overlap * abs(grid.transform.a)), grid.transform, grid.shape)
                if region is None:
                    continue
                h, w = int(region.height), int(region.width)
                rows = starts(0, h, tile, tile - overlap)
                win = Window(region.col_off, region.row_off, max(w, tile), rows[-1] + tile)
                mask = grid.mask(win)
                inside = geometry_mask([area], out_shape=mask.shape, transform=window_transform(win, grid.transform),
                                       invert=True)
                flags = mask & (np.uint8(1) + np.uint8(2) * inside)
                flags[:, w:] = 0
                flags[h:] &= 1
                if not (flags == 3).any():
                    continue
                k = len(regions)
                save_array(pack / f"region{k}_bands.npy.xz", grid.bands(win))
                save_array(pack / f"region{k}_flags.npy.xz", flags)
                regions.append({"scene_id": row["scene_id"], "block_id": block["block_id"], "height": h, "width": w,
                                "col_off": int(region.col_off), "row_off": int(region.row_off),
                                "crs": grid.ds.crs.to_string(), "transform": list(grid.transform)[:6]})
    return regions


def prepare(params_path: Path, raw: Path, work: Path, step: float, recipe: dict) -> Path:
    """Select and preprocess with ``params_path`` into ``work``; write what the rounds need into ``work/pack``."""
    import pandas as pd

    from geofoundry import preprocess, select
    from geofoundry.models.input_spec import InputSpec
    from geofoundry.pipeline.params import load_params

    p = load_params(params_path)
    select.run(p.select, raw, work / "selection", work / "select.json")
    preprocess.run(p.preprocess, work / "selection", work / "chips")
    spec = InputSpec.load(work / "chips" / "stats.json")
    if len(spec.classes) != 2:
        raise SystemExit(f"the simulation scores one target class; select.classes gives {spec.classes[1:]}")
    pack = work / "pack"
    shutil.rmtree(pack, ignore_errors=True)
    pack.mkdir(parents=True)
    for split in ("train", "val"):
        for name in ("images", "labels", "instances"):
            save_array(pack / f"{split}_{name}.npy.xz", np.load(work / "chips" / split / f"{name}.npy"))
    shutil.copy(work / "chips" / "stats.json", pack / "stats.json")
    index = pd.read_parquet(work / "chips" / "index.parquet")
    chip_blocks = index[index["split"] == "train"].sort_values("index")["block_id"].tolist()
    tile, overlap = recipe["predict"]["tile"], recipe["predict"]["overlap"]
    regions = test_regions(work / "selection", spec, tile, overlap, pack)
    manifest = {"pool": sorted(set(chip_blocks)), "chip_blocks": chip_blocks, "step": step, "regions": regions,
                "classes": spec.classes, "tile": tile, "overlap": overlap}
    (pack / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return pack


# --- report (CPU, rasterio) ----------------------------------------------------------------------------------------


def read_jobs(dirs: list[Path]) -> list[dict]:
    return [j for d in dirs for j in json.loads((d / "results.json").read_text())["jobs"]]


def read_results(dirs: list[Path]) -> tuple[dict, list[dict], dict[str, np.ndarray]]:
    """Jobs and test-pixel maps of one or more ``run`` outputs (later ones add jobs)."""
    meta, maps = {}, {}
    jobs = read_jobs(dirs)
    for d in dirs:
        meta = meta or {k: v for k, v in json.loads((d / "results.json").read_text()).items() if k != "jobs"}
        for path in sorted(d.glob("maps_*.npz")):
            with np.load(path) as z:
                maps.update({k: z[k] for k in z.files})
    return meta, jobs, maps


def job_rasters(job: dict, manifest: dict, pack: Path, maps: dict, out: Path) -> None:
    """One probability GeoTIFF per scene (``p(<class>)``, masked to the test pixels): the job's footprint
    probabilities placed back into the scene's model grid, over the extent of its test regions."""
    import rasterio
    from affine import Affine

    regions = manifest["regions"]
    by_scene: dict[str, list[int]] = {}
    for k, reg in enumerate(regions):
        by_scene.setdefault(reg["scene_id"], []).append(k)
    out.mkdir(parents=True, exist_ok=True)
    for scene_id, ks in by_scene.items():
        c0 = min(regions[k]["col_off"] for k in ks)
        r0 = min(regions[k]["row_off"] for k in ks)
        c1 = max(regions[k]["col_off"] + regions[k]["width"] for k in ks)
        r1 = max(regions[k]["row_off"] + regions[k]["height"] for k in ks)
        values, mask = np.zeros((r1 - r0, c1 - c0), np.uint8), np.zeros((r1 - r0, c1 - c0), bool)
        for k in ks:
            reg = regions[k]
            wanted = load_array(pack / f"region{k}_flags.npy.xz")[:reg["height"], :reg["width"]] == 3
            rows = slice(reg["row_off"] - r0, reg["row_off"] - r0 + reg["height"])
            cols = slice(reg["col_off"] - c0, reg["col_off"] - c0 + reg["width"])
            values[rows, cols][wanted] = maps[f"{job['key']}.region{k}"]
            mask[rows, cols] |= wanted
        transform = Affine(*regions[ks[0]]["transform"]) @ Affine.translation(c0, r0)
        profile = {"driver": "GTiff", "width": c1 - c0, "height": r1 - r0, "count": 1, "dtype": "uint8",
                   "crs": regions[ks[0]]["crs"], "transform": transform, "tiled": True, "compress": "deflate"}
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(out / f"{scene_id}.tif", "w", **profile) as ds:
            ds.write(values, 1)
            ds.write_mask(mask)
            ds.set_band_description(1, f"p({manifest['classes'][1]})")


def object_f1(job: dict, manifest: dict, work: Path, maps: dict, params) -> dict:
    """The postprocess and evaluate stages on one job's test rasters: ``metrics["object"]``."""
    from geofoundry import evaluate, postprocess

    with tempfile.TemporaryDirectory(dir=work) as tmp:
        tmp = Path(tmp)
        job_rasters(job, manifest, work / "pack", maps, tmp / "predictions")
        postprocess.run(params.postprocess, tmp / "predictions", tmp / "vectors", manifest["classes"][1:])
        metrics = evaluate.run(params.evaluate, work / "selection", tmp / "predictions", tmp / "vectors",
                               tmp / "evaluate.json", tmp / "plots", tmp / "report.json")
    return metrics["object"]


def needed(curve: dict[float, float], target: float) -> float | None:
    """The smallest labelled fraction whose F1 reaches ``target`` (None: none does)."""
    return next((f for f in sorted(curve) if curve[f] >= target), None)


def _mean_sd(values: list[float]) -> dict:
    return {"mean": round(float(np.mean(values)), 4), "sd": round(float(np.std(values, ddof=1)), 4)
            if len(values) > 1 else None, "n": len(values)}


def _saving(mine: float | None, base: float | None, base_max: float) -> dict | None:
    """Random's fraction over the strategy's (a lower bound when random never reached the target)."""
    if mine is None:
        return None
    return {"ratio": round((base or base_max) / mine, 3), "lower_bound": base is None}


def summarize(jobs: list[dict], strategies: list[str]) -> dict:
    """Per strategy and labelled fraction: F1 (and F1 / the seed's full-pool F1) mean ± sd over seeds; per seed and
    strategy: the smallest fraction that reaches 95 % of that seed's full-pool F1, and the saving against random."""
    full = {j["seed"]: j["f1"] for j in jobs if j["strategy"] == "full"}
    curves: dict[str, dict[int, dict[float, float]]] = {s: {} for s in strategies}
    for j in sorted(jobs, key=lambda j: j["seed"]):
        names = strategies if j["strategy"] == "start" else [j["strategy"]] if j["strategy"] in curves else []
        for name in names:
            curves[name].setdefault(j["seed"], {})[round(j["fraction"], 4)] = j["f1"]
    table, reach = {}, {}
    for name, seeds in curves.items():
        fractions = sorted({f for c in seeds.values() for f in c})
        table[name] = {str(f): {**_mean_sd([c[f] for c in seeds.values() if f in c]),
                                "of_full": _mean_sd([c[f] / full[s] for s, c in seeds.items() if f in c and s in full])}
                       for f in fractions}
        per_seed = {s: needed(c, TARGET * full[s]) for s, c in seeds.items() if s in full}
        reached = [v for v in per_seed.values() if v is not None]
        every = len(reached) == len(per_seed) > 0
        reach[name] = {"per_seed": {str(s): v for s, v in per_seed.items()},
                       "max_fraction": {str(s): max(c) for s, c in seeds.items()},
                       "mean": round(float(np.mean(reached)), 4) if every else None,
                       "sd": round(float(np.std(reached, ddof=1)), 4) if every and len(reached) > 1 else None}
    base = reach.get("random")
    for name, r in reach.items():
        r["saving_vs_random"] = None if base is None else {
            s: _saving(v, base["per_seed"].get(s), base["max_fraction"].get(s, 0.0)) for s, v in r["per_seed"].items()}
    return {"full_pool_f1": {"per_seed": {str(k): v for k, v in sorted(full.items())},
                             **(_mean_sd(list(full.values())) if full else {})},
            "target": TARGET, "f1": table, "fraction_needed": reach}


def vega_spec(summary: dict) -> dict:
    """Object F1 against the labelled fraction: mean ± sd over seeds per strategy, and the 95 % target."""
    rows = [{"strategy": s, "fraction": float(f), "f1": v["mean"], "lo": v["mean"] - (v["sd"] or 0),
             "hi": v["mean"] + (v["sd"] or 0)} for s, curve in summary["f1"].items() for f, v in curve.items()]
    full = summary["full_pool_f1"].get("mean") or 0.0
    target = [{"y": TARGET * full, "label": f"95 % of the full pool's F1 ({full:.3f})"}]
    color = {"field": "strategy", "type": "nominal", "title": "strategy"}
    ticks = sorted({r["fraction"] for r in rows})
    x = {"field": "fraction", "type": "quantitative", "title": "labelled share of the train blocks",
         "axis": {"format": ".0%", "values": ticks}, "scale": {"domain": [0, max(ticks) * 1.04]}}
    y = {"type": "quantitative", "title": "object F1 on the test blocks", "scale": {"domain": [0, 0.6]}}
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "title": "Active learning on DEV: object F1 against labelled train blocks (mean ± sd, seeds)",
        "width": 520, "height": 320, "data": {"values": rows},
        "layer": [
            {"mark": {"type": "errorband", "opacity": 0.15},
             "encoding": {"x": x, "y": {**y, "field": "lo"}, "y2": {"field": "hi"}, "color": color}},
            {"mark": {"type": "line", "point": True},
             "encoding": {"x": x, "y": {**y, "field": "f1"}, "color": color}},
            {"data": {"values": target}, "mark": {"type": "rule", "strokeDash": [4, 4], "color": "gray"},
             "encoding": {"y": {**y, "field": "y"}}},
            {"data": {"values": target}, "mark": {"type": "text", "align": "left", "dx": 4, "dy": -6, "color": "gray"},
             "encoding": {"y": {**y, "field": "y"}, "x": {"value": 0}, "text": {"field": "label"}}},
        ],
    }


def render_svg(spec: dict, out: Path) -> None:
    """The spec as SVG, rendered with node and the vega and vega-lite builds inlined in the project's offline plot
    template (no network)."""
    from geofoundry.report import TEMPLATE

    html = TEMPLATE.read_text(encoding="utf-8")
    code = [re.search(rf'<script data-package="{name}" data-version="[^"]+">\n(.*?)</script>', html, re.DOTALL).group(1)
            for name in ("vega", "vega-lite")]
    js = """
const vm = require("vm"), fs = require("fs");
const [libs, spec, out] = JSON.parse(fs.readFileSync(0, "utf8"));
const ctx = {console, setTimeout, clearTimeout, structuredClone};
ctx.globalThis = ctx; ctx.window = ctx; ctx.self = ctx;
vm.createContext(ctx);
for (const lib of libs) vm.runInContext(lib, ctx);
new ctx.vega.View(ctx.vega.parse(ctx.vegaLite.compile(spec).spec), {renderer: "none"}).toSVG()
  .then(svg => fs.writeFileSync(out, svg));
"""
    subprocess.run(["node", "-e", js], input=json.dumps([code, spec, str(out)]), text=True, check=True)


def _cell(v: dict | None, seeds: int, share: bool = False) -> str:
    if v is None:
        return "–"
    text = f"{v['mean']:.3f}" + (f" ± {v['sd']:.3f}" if v["sd"] is not None else "")
    text += f" ({v['of_full']['mean']:.0%})" if share and v.get("of_full") else ""
    return text + (f", {v['n']} of {seeds} seeds" if v["n"] < seeds else "")


def markdown(summary: dict) -> str:
    """The results as BENCHMARKS.md tables."""
    strategies = list(summary["f1"])
    fractions = sorted({float(f) for c in summary["f1"].values() for f in c})
    full = summary["full_pool_f1"]
    seeds = full["n"]
    out = "| labelled blocks | " + " | ".join(strategies) + " |\n|---|" + "---|" * len(strategies) + "\n"
    for f in fractions:
        out += f"| {f:.0%} | " + " | ".join(_cell(summary["f1"][s].get(str(f)), seeds, True) for s in strategies)
        out += " |\n"
    out += "| 100 % (the full pool) | " + " | ".join([_cell(full, seeds)] * len(strategies)) + " |\n"
    out += ("\n| strategy | labelled blocks reaching 95 % of the seed's full-pool F1, seeds "
            + ", ".join(full["per_seed"]) + " | saving against random, per seed |\n|---|---|---|\n")
    for s, r in summary["fraction_needed"].items():
        per = ", ".join(f"> {r['max_fraction'][k]:.0%}" if v is None else f"{v:.0%}" for k, v in r["per_seed"].items())
        savings = r["saving_vs_random"] or {}
        saving = ", ".join("–" if v is None else f"{'≥ ' if v['lower_bound'] else ''}{v['ratio']:.2f}×"
                           for v in savings.values()) if s != "random" else "(the baseline)"
        out += f"| {s} | {per} | {saving} |\n"
    return out


def report(work: Path, results: list[Path], params_path: Path, plot: Path | None) -> dict:
    from geofoundry.pipeline.params import load_params

    params = load_params(params_path)
    manifest = json.loads((work / "pack" / "manifest.json").read_text())
    meta, jobs, maps = read_results(results)
    done = results[0] / "report.json"  # jobs evaluated by an earlier report are not evaluated again
    known = {j["key"]: j["object"] for j in json.loads(done.read_text())["jobs"]} if done.is_file() else {}
    for job in jobs:
        job["object"] = known.get(job["key"]) or object_f1(job, manifest, work, maps, params)
        job["f1"] = job["object"]["f1"]
        print(f"{job['key']}: {len(job['labelled'])} blocks → object F1 {job['f1']:.3f}", flush=True)
    summary = summarize(jobs, meta["strategies"])
    out = {"meta": meta, "summary": summary, "markdown": markdown(summary),
           "jobs": [{k: v for k, v in j.items() if k != "picks"} for j in jobs]}
    (results[0] / "report.json").write_text(json.dumps(out, indent=1))
    if plot is not None:
        spec = vega_spec(summary)
        plot.with_suffix(".vl.json").write_text(json.dumps(spec, indent=1))
        if shutil.which("node"):
            render_svg(spec, plot.with_suffix(".svg"))
        else:
            print(f"node not found: {plot.with_suffix('.svg')} not rendered (the vega-lite spec is written)")
    return out


def write_benchmarks(path: Path, out: dict) -> None:
    """Replace (or add) the results between the markers of BENCHMARKS.md's ``## Active learning`` section."""
    begin, end = "<!-- active-learning results -->", "<!-- /active-learning results -->"
    meta, m = out["meta"], out["meta"]["machine"]
    stopped = ", then stopped at its time limit (`--deadline`)" if meta.get("stopped_early") else ""
    block = (f"{begin}\nRounds: {m['device']}, {m['cpus']} CPU cores, torch {m['torch']}, {meta['workers']} jobs at "
             f"a time; {len(out['jobs'])} jobs in {meta.get('elapsed_s', 0):.0f} s{stopped}. Recipe: "
             f"`{json.dumps({k: v for k, v in meta['recipe'].items() if k != 'name'})}`.\n\n{out['markdown']}{end}")
    text = path.read_text()
    if begin in text:
        text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, text, flags=re.DOTALL)
    else:
        text = text.rstrip() + "\n\n## Active learning\n\n" + block + "\n"
    path.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", choices=["prepare", "run", "report", "all"])
    ap.add_argument("--work", type=Path, help="prepare, report, all: working folder (selection, chips, pack)")
    ap.add_argument("--pack", type=Path, help="run: the folder prepare wrote (default WORK/pack)")
    ap.add_argument("--out", type=Path, help="run, all: results folder (default WORK/results)")
    ap.add_argument("--results", type=Path, nargs="+", help="report: results folder(s) of run")
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    ap.add_argument("--raw", type=Path, default=ROOT.parent / "shared/data/oam_buildings_eafrica_scenes")
    ap.add_argument("--recipe", choices=sorted(RECIPES), default="cpu")
    ap.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                    help="override the recipe, e.g. train.epochs=10 predict.tta=none (values as YAML)")
    ap.add_argument("--step-fraction", type=float, default=0.1, help="share of the pool blocks labelled per round")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--strategies", nargs="+", default=["random", "entropy", "coreset", "hybrid"])
    ap.add_argument("--rounds", type=int, default=6, help="points per curve, the first round included")
    ap.add_argument("--workers", type=int, default=1, help="jobs at a time (processes)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads per job")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--deadline", type=float, default=float("inf"), help="run: start no job past these seconds")
    ap.add_argument("--resume", type=Path, nargs="+", help="run: go on from these results folders' chains")
    ap.add_argument("--only", nargs="+", help="run with --resume: only these chains, e.g. s0-random s2-hybrid")
    ap.add_argument("--plot", type=Path, help="report: write PLOT.vl.json (vega-lite) and PLOT.svg")
    ap.add_argument("--write", type=Path, help="report: put the tables into this BENCHMARKS.md")
    args = ap.parse_args()
    recipe = json.loads(json.dumps(RECIPES[args.recipe]))
    for item in args.set:
        key, value = item.split("=", 1)
        section, name = key.split(".", 1)
        recipe[section][name] = yaml.safe_load(value)
    recipe["name"] = args.recipe
    if args.step in ("prepare", "all"):
        prepare(args.params, args.raw, args.work, args.step_fraction, recipe)
    if args.step in ("run", "all"):
        pack = args.pack or args.work / "pack"
        out = args.out or args.work / "results"
        with tempfile.TemporaryDirectory(prefix="al-sim-") as tmp:
            earlier = read_jobs(args.resume) if args.resume else None
            simulate(pack, out, Path(tmp), recipe, args.seeds, args.strategies, args.rounds, args.workers,
                     args.device, args.threads, args.deadline, earlier, args.only)
        args.results = [out]
    if args.step in ("report", "all"):
        out = report(args.work, args.results, args.params, args.plot)
        print(out["markdown"])
        if args.write:
            write_benchmarks(args.write, out)


if __name__ == "__main__":
    main()
