"""The GPU recipe with and without a pretrained encoder, seeds 1–4, without DVC: the stages' own entry points run
on a params file in a work folder per fold.

    python bench/pretrain_gpu.py --raw ../shared/data/oam_buildings_eafrica_scenes --work /tmp/gf --out pre.md
    python bench/pretrain_gpu.py --raw ... --work /tmp/gf --folds kampala_ug nairobi_ke zanzibar_tz   # LOSO
    python bench/pretrain_gpu.py --raw ... --work /tmp/gf --smoke   # CPU check: tiny sizes, one seed

For each fold (``default``: the project's split; a site name: that site held out, ``select.split.holdout_site``):
select, preprocess and pretrain run once (``pretrain.epochs`` from ``--pretrain-epochs``), the encoder file is
copied into the fold's ``init/``, then for each seed the recipe trains from random weights and from that encoder
(``train.init_from``, ``train.init_parts: encoder``), each followed by predict, postprocess and evaluate. Every run
prints one JSON line (test object F1, recall by size and of touching buildings); the end prints the table, with
mean ± spread per fold and start, and writes it (Markdown, and JSON beside it). Without dvclive installed the
curves are only logged.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "bench")]

from geofoundry.pipeline.runner import run_stage, setup_logging  # noqa: E402
from loso import fold_figures, markdown  # noqa: E402

# docs/TRAINING.md, "GPU recipe"
RECIPE = {"arch": "unet-seresnext50",
          "train": {"target": "footprint_border_contact", "epochs": 40, "samples_per_epoch": 1024, "batch_size": 16,
                    "lr": 0.001, "monitor": "val/object_f1", "resume": False},
          "predict": {"tta": "d4"}}
PRETRAIN = {"epochs": 100, "batch_size": 256, "samples_per_epoch": 4096, "view_px": 128, "tile_px": 256}
SMOKE = {"select": {"sites": ["kampala_ug", "nairobi_ke"]},
         "preprocess": {"chip": {"size": 128, "stride": 128}},
         "arch": "unet", "train": {"epochs": 1, "samples_per_epoch": 8, "batch_size": 4, "threads": 2},
         "predict": {"tile": 256, "overlap": 32, "tta": "none"}}
SMOKE_PRETRAIN = {"epochs": 2, "batch_size": 8, "samples_per_epoch": 16, "view_px": 64, "tile_px": 128,
                  "threads": 2}
ENCODER = "init/pretrained.safetensors"


def merged(base: dict, update: dict) -> dict:
    out = dict(base)
    for key, value in update.items():
        out[key] = merged(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


def write_params(root: Path, params: dict) -> None:
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def prepare(work: Path, raw: Path, fold: str, params: dict) -> Path:
    """The fold's folder: data/raw linked, select, preprocess and pretrain run, the encoder file in init/."""
    root = work / fold
    (root / "data").mkdir(parents=True, exist_ok=True)
    if not (root / "data/raw").exists():
        (root / "data/raw").symlink_to(raw.resolve())
    write_params(root, params)
    for stage in ("select", "preprocess", "pretrain"):
        run_stage(stage, "params.yaml", root)
    (root / "init").mkdir(exist_ok=True)
    shutil.copy(root / "pretrained/encoder.safetensors", root / ENCODER)
    return root


def one_run(root: Path, params: dict, seed: int, pretrained: bool) -> dict:
    """Train the recipe with ``seed`` from random weights or the encoder file, then predict, postprocess and
    evaluate; the test figures."""
    init = {"init_from": ENCODER, "init_parts": "encoder"} if pretrained else {"init_from": None}
    write_params(root, merged(params, {"train": {"seed": seed, **init}}))
    t0 = time.perf_counter()
    for stage in ("train", "predict", "postprocess", "evaluate"):
        run_stage(stage, "params.yaml", root)
    report = json.loads((root / "reports/evaluate.json").read_text())
    return {**fold_figures(report), "seconds": round(time.perf_counter() - t0, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--raw", type=Path, required=True, help="a raw dataset (scenes.csv, images/, labels/)")
    ap.add_argument("--work", type=Path, required=True, help="a folder for the folds' files")
    ap.add_argument("--folds", nargs="+", default=["default"], help="default, or sites to hold out in turn")
    ap.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3, 4])
    ap.add_argument("--pretrain-epochs", type=int, default=PRETRAIN["epochs"])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes and one seed: checks the chain on a CPU")
    ap.add_argument("--out", type=Path, default=Path("pretrain_gpu.md"))
    args = ap.parse_args()
    setup_logging()
    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    params = merged(base, {**SMOKE, "pretrain": SMOKE_PRETRAIN} if args.smoke else
                    {**RECIPE, "pretrain": {**PRETRAIN, "epochs": args.pretrain_epochs}})
    seeds = args.seeds[:1] if args.smoke else args.seeds
    rows = []
    for fold in args.folds:
        fold_params = merged(params, {"select": {"split": {"holdout_site": None if fold == "default" else fold}}})
        root = prepare(args.work, args.raw, fold, fold_params)
        for seed in seeds:
            for pretrained in (False, True):
                row = {"fold": fold, "start": "pretrained encoder" if pretrained else "random", "seed": seed,
                       **one_run(root, fold_params, seed, pretrained)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    rows.sort(key=lambda r: (r["fold"], r["start"], r["seed"]))
    table = markdown(rows, ["fold", "start", "seed"])
    args.out.write_text(table)
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n")
    print(table)


if __name__ == "__main__":
    main()
