"""The GPU recipe from random weights and from a pretrained encoder, and the CPU default's schedule fine-tuned from
the recipe's checkpoint, seeds 1–4, without DVC: the stages' own entry points run on a params file, each run in a
folder of its own, several at once on one GPU (``--jobs``).

    python bench/pretrain_gpu.py --raw ../shared/data/oam_buildings_eafrica_scenes --work /tmp/gf --jobs 8 --out pre.md
    python bench/pretrain_gpu.py --raw ... --work /tmp/gf --folds kampala_ug nairobi_ke zanzibar_tz --seeds 1 \
        --starts random pretrained --jobs 6 --out loso.md                                # leave-one-site-out
    python bench/pretrain_gpu.py --raw ... --work /tmp/gf --smoke                        # CPU check: tiny sizes

For each fold (``default``: the project's split; a site name: that site held out, ``select.split.holdout_site``):
select, preprocess and pretrain run once (``pretrain.epochs``: ``--pretrain-epochs``; folds at once). Then each
seed's runs, each followed by predict, postprocess and evaluate (``--starts``):

- ``random``: the recipe from random weights;
- ``pretrained``: the recipe from the fold's pretrained encoder (``train.init_from``, ``train.init_parts: encoder``);
- ``finetune``: params.yaml's ``train`` section (the CPU default's schedule and target) with the recipe's preset,
  started from the same seed's ``random`` checkpoint (every tensor that fits; the head of other classes is new);
- ``short``: the same schedule from random weights, the reference of ``finetune``.

Every run prints one JSON line (test object F1, recall by size and of touching buildings); the end prints the table,
with mean ± spread per fold and start, and writes it (Markdown, and JSON beside it); ``--add`` puts the rows of earlier
invocations' JSON files into it (seeds split over several calls). A ``finetune`` run without ``random`` in
``--starts`` starts from the ``random`` checkpoint an earlier invocation left in the same ``--work``. Without dvclive
installed the curves are only logged.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
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
          # accuracy is measured here, not speed: eager spares each run the compiled engine's build (over a minute)
          "predict": {"tta": "d4", "engine": "eager"}}
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


STARTS = ("random", "pretrained", "finetune", "short")


def prepare(work: Path, raw: Path, fold: str, params: dict) -> Path:
    """The fold's folder: data/raw linked, select, preprocess and pretrain run, the encoder file in init/.

    A fold prepared earlier with the same params is reused as it is (its runs then share one pretrained encoder
    across calls, e.g. seeds split over several invocations)."""
    setup_logging()
    root = work / fold
    if (root / ENCODER).is_file() and (root / "params.yaml").read_text() == yaml.safe_dump(params, sort_keys=False):
        print(f"{fold}: reusing {root} (prepared with the same params)", flush=True)
        return root
    (root / "data").mkdir(parents=True, exist_ok=True)
    if not (root / "data/raw").exists():
        (root / "data/raw").symlink_to(raw.resolve())
    write_params(root, params)
    for stage in ("select", "preprocess", "pretrain"):
        run_stage(stage, "params.yaml", root)
    (root / "init").mkdir(exist_ok=True)
    shutil.copy(root / "pretrained/encoder.safetensors", root / ENCODER)
    return root


def run_folder(fold_root: Path, start: str, seed: int) -> Path:
    """A run's own folder: the fold's data linked, and in its init/ the file its start needs."""
    root = fold_root / "runs" / f"{start}-s{seed}"
    shutil.rmtree(root, ignore_errors=True)
    (root / "data").mkdir(parents=True)
    for name in ("raw", "selection", "chips"):
        (root / "data" / name).symlink_to((fold_root / "data" / name).resolve())
    (root / "init").mkdir()  # train.init_from must lie in the run's own init/
    if start == "finetune":
        shutil.copy(fold_root / "runs" / f"random-s{seed}" / "models/best.pt", root / "init/recipe.pt")
    elif start == "pretrained":
        shutil.copy(fold_root / ENCODER, root / ENCODER)
    return root


def one_run(fold_root: Path, params: dict, short: dict, start: str, seed: int) -> dict:
    """Train with ``seed`` from the ``start``, then predict, postprocess and evaluate; the test figures."""
    setup_logging()
    root = run_folder(fold_root, start, seed)
    train = {"random": {"init_from": None}, "pretrained": {"init_from": ENCODER, "init_parts": "encoder"},
             "finetune": {**short, "init_from": "init/recipe.pt", "init_parts": "all"},
             "short": {**short, "init_from": None}}[start]
    write_params(root, merged(params, {"train": {"seed": seed, **train}}))
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
    ap.add_argument("--starts", nargs="+", choices=STARTS, default=list(STARTS))
    ap.add_argument("--pretrain-epochs", type=int, default=PRETRAIN["epochs"])
    ap.add_argument("--jobs", type=int, default=1, help="runs at once (processes sharing the device)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes and one seed: checks the chain on a CPU")
    ap.add_argument("--out", type=Path, default=Path("pretrain_gpu.md"))
    ap.add_argument("--add", type=Path, nargs="*", default=[], help="earlier invocations' JSON rows for the table")
    args = ap.parse_args()
    setup_logging()
    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    params = merged(base, {**SMOKE, "pretrain": SMOKE_PRETRAIN} if args.smoke else
                    {**RECIPE, "pretrain": {**PRETRAIN, "epochs": args.pretrain_epochs}})
    short = {k: base["train"][k] for k in ("epochs", "samples_per_epoch", "batch_size", "lr", "target", "monitor")}
    if args.smoke:
        short = {**short, **SMOKE["train"]}
    seeds = args.seeds[:1] if args.smoke else args.seeds
    folds = {fold: merged(params, {"select": {"split": {"holdout_site": None if fold == "default" else fold}}})
             for fold in args.folds}
    if "finetune" in args.starts and "random" not in args.starts:
        checkpoints = [args.work / f / "runs" / f"random-s{s}" / "models/best.pt" for f in folds for s in seeds]
        missing = [str(path) for path in checkpoints if not path.is_file()]
        if missing:
            raise SystemExit(f"--starts finetune needs random (or its earlier checkpoints): missing {missing}")
    rows = [row for path in args.add for row in json.loads(path.read_text())]
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=get_context("spawn")) as ex:
        roots = dict(zip(folds, ex.map(prepare, *zip(*[(args.work, args.raw, f, p) for f, p in folds.items()]))))
        for wave in (("random", "pretrained", "short"), ("finetune",)):
            runs = [(f, start, seed) for f in folds for seed in seeds for start in wave if start in args.starts]
            futures = [ex.submit(one_run, roots[f], folds[f], short, start, seed) for f, start, seed in runs]
            for (fold, start, seed), fut in zip(runs, futures):
                rows.append({"fold": fold, "start": start, "seed": seed, **fut.result()})
                print(json.dumps(rows[-1]), flush=True)
    rows.sort(key=lambda r: (r["fold"], STARTS.index(r["start"]), r["seed"]))
    table = markdown(rows, ["fold", "start", "seed"])
    args.out.write_text(table)
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n")
    print(table)


if __name__ == "__main__":
    main()
