"""Trials per minute of the running point search against the same trials as separate `dvc exp run`s.

    python bench/rps.py [--project .] [--exp-runs 3] [--json out.json]

Run in a project whose pipeline is up to date (`dvc status` clean, data/predictions/val present). Both sides try
the postprocess points of the project's ``rps.settings`` (its predict settings left out, so neither side runs the
model):

- rps: the search in this process, with an empty cache (``.rps-cache`` in a temporary folder), all points;
- dvc: a copy of the project in a temporary git repository (hard links for data/, models/ and export/, without
  the rps stage), where each of the first ``--exp-runs`` points is one `dvc exp run -S ...`: postprocess, evaluate and
  export re-run, as they do when a postprocess setting is changed by hand.

Prints a Markdown table for BENCHMARKS.md: seconds per trial, trials per minute, and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")

from geofoundry.pipeline.params import load_params  # noqa: E402
from geofoundry.pipeline.paths import Paths  # noqa: E402
from geofoundry.rps.run import run as rps_run  # noqa: E402
from geofoundry.rps.samplers import GridSampler  # noqa: E402
from geofoundry.rps.space import check_space, override_text  # noqa: E402


def sh(*args: str, cwd: Path) -> str:
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"{' '.join(args)} failed in {cwd}:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def postprocess_only(params):
    """The params with ``rps.settings`` reduced to its postprocess keys, searched by grid."""
    settings = {k: v for k, v in params.rps.settings.items() if k.startswith("postprocess.")}
    if not settings:
        sys.exit("rps.settings has no postprocess setting to time")
    rps = params.rps.model_copy(update={"settings": settings, "search": "grid", "trials": 10**6})
    return rps, check_space(rps, params.postprocess.steps, params.predict)


def bench_rps(params, rps, project: Path, tmp: Path) -> tuple[int, float]:
    d = Paths(project)
    t = time.perf_counter()
    summary = rps_run(rps, params.postprocess, params.predict, params.evaluate, d.selection, d.predictions / "val",
                      d.chips, d.models / "best.pt", tmp / ".rps-cache", tmp / "rps.json", tmp / "report.json",
                      tmp / "plots")
    return summary["trials"] + 1, time.perf_counter() - t


def copy_project(project: Path, dst: Path) -> None:
    """Tracked files, data/ and models/ (hard links) into a fresh git repository, without the rps stage."""
    for rel in sh("git", "ls-files", cwd=project).splitlines():
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(project / rel, dst / rel)

    def link(src: str, to: str) -> None:
        if not os.path.exists(to):  # tracked files (data/.gitignore) are there already
            os.link(src, to)

    for rel in ("data", "models", "export"):  # the outputs DVC caches (hard links: stages replace, never edit)
        shutil.copytree(project / rel, dst / rel, copy_function=link, dirs_exist_ok=True)
    for name in ("dvc.yaml", "dvc.lock"):
        doc = yaml.safe_load((dst / name).read_text())
        doc["stages"].pop("rps", None)
        doc.pop("plots", None)  # dvc.yaml's only top-level plot is the rps one
        if "metrics" in doc:
            doc["metrics"] = [m for m in doc["metrics"] if m != "metrics/rps.json"]
        (dst / name).write_text(yaml.safe_dump(doc, sort_keys=False))
    sh("git", "init", "-q", "-b", "main", cwd=dst)
    sh("git", "add", "-A", cwd=dst)
    sh("git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid", "commit", "-qm", "bench", cwd=dst)


def bench_dvc(project: Path, tmp: Path, overrides: list[list[str]]) -> list[float]:
    repo = tmp / "repo"
    copy_project(project, repo)
    sh("dvc", "commit", "-f", "-q", cwd=repo)  # the outputs into the copy's cache: DVC then skips their stages
    status = sh("dvc", "status", cwd=repo)
    if "up to date" not in status:
        sys.exit(f"the project's pipeline is not up to date (run `dvc repro` first):\n{status}")
    seconds = []
    for sets in overrides:
        t = time.perf_counter()
        sh("dvc", "exp", "run", *(a for s in sets for a in ("-S", s)), cwd=repo)
        seconds.append(time.perf_counter() - t)
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", type=Path, default=Path("."))
    ap.add_argument("--exp-runs", type=int, default=3, help="points run as separate `dvc exp run`s")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    project = args.project.resolve()
    params = load_params(project / "params.yaml")
    rps, settings = postprocess_only(params)
    grid = GridSampler(settings, 0)
    overrides = [[override_text(s, point[s.key]) for s in settings]
                 for point in iter(grid.ask, None)][1:args.exp_runs + 1]  # not the first: often the current params
    with tempfile.TemporaryDirectory(prefix="bench_rps_") as tmp:
        trials, rps_s = bench_rps(params, rps, project, Path(tmp))
        dvc_s = bench_dvc(project, Path(tmp), overrides)
    per_trial = {"rps": rps_s / trials, "dvc": statistics.median(dvc_s)}
    result = {"trials": trials, "rps_seconds": round(rps_s, 1), "dvc_exp_run_seconds": [round(s, 1) for s in dvc_s],
              "seconds_per_trial": {k: round(v, 3) for k, v in per_trial.items()},
              "trials_per_minute": {k: round(60 / v, 2) for k, v in per_trial.items()},
              "ratio": round(per_trial["dvc"] / per_trial["rps"], 1),
              "machine": {"host": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version()}}
    print(json.dumps(result, indent=1))
    print("\n| | trials | seconds per trial | trials per minute |\n|---|---|---|---|")
    print(f"| `geofoundry rps` (grid, empty cache) | {trials} | {per_trial['rps']:.3f} | "
          f"{60 / per_trial['rps']:.1f} |")
    print(f"| one `dvc exp run -S` per trial | {len(dvc_s)} | {per_trial['dvc']:.1f} (median) | "
          f"{60 / per_trial['dvc']:.2f} |")
    print(f"\nratio: {result['ratio']}x")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
