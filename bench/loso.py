"""Leave-one-site-out: train on all sites but one, test on that one, for each site, with DVC experiments.

    python bench/loso.py --out loso.md                                   # params.yaml as it is, each site in turn
    python bench/loso.py --out loso.md -S arch=unet-seresnext50 -S train.epochs=40 ...   # e.g. the GPU recipe

Each fold is ``dvc exp run -S select.split.holdout_site=<site>`` (plus the given ``-S``), run one after the other;
its ``reports/evaluate.json`` gives the row: test object F1, recall by building size (< 50 m², 50–200 m², ≥ 200 m²)
and recall of touching and of isolated buildings. Prints and writes the table as Markdown (and JSON beside it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
from pathlib import Path

SIZES = (("lt50m2", "< 50 m²"), ("50to200m2", "50–200 m²"), ("ge200m2", "≥ 200 m²"))
COLUMNS = ["object F1", *(f"recall {label}" for _, label in SIZES), "recall touching", "recall isolated"]


def fold_figures(report: dict) -> dict[str, float]:
    """The row of one fold from its ``reports/evaluate.json``."""
    row = {"object F1": report["object"]["f1"]}
    row.update({f"recall {label}": report["by_size"][key]["recall"] for key, label in SIZES})
    row.update({f"recall {k}": report["by_touching"][k]["recall"] for k in ("touching", "isolated")})
    return row


def markdown(rows: list[dict], keys: list[str]) -> str:
    """A Markdown table: the ``keys`` columns, then the figures; a mean ± spread row per group of equal keys when
    a group has several rows."""
    lines = ["| " + " | ".join([*keys, *COLUMNS]) + " |", "|" + "---|" * (len(keys) + len(COLUMNS))]
    for r in rows:
        lines.append("| " + " | ".join([str(r[k]) for k in keys] + [f"{r[c]:.3f}" for c in COLUMNS]) + " |")
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in keys[:-1]), []).append(r)
    for group, members in groups.items():
        if len(members) > 1 and keys[:-1]:
            cells = [f"{statistics.mean(m[c] for m in members):.3f} ± {statistics.stdev(m[c] for m in members):.3f}"
                     for c in COLUMNS]
            lines.append("| " + " | ".join([*map(str, group), f"mean of {len(members)}", *cells]) + " |")
    return "\n".join(lines) + "\n"


def sites(root: Path) -> list[str]:
    """The sites of the selection's blocks (data/selection/blocks.parquet)."""
    import geopandas as gpd

    return sorted(gpd.read_parquet(root / "data/selection/blocks.parquet")["site"].astype(str).unique())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-S", "--set", action="append", default=[], help="a dvc exp run -S override for every fold")
    ap.add_argument("--sites", nargs="*", help="the held-out sites (default: every site of the current selection)")
    ap.add_argument("--out", type=Path, default=Path("loso.md"))
    args = ap.parse_args()
    rows = []
    for site in args.sites or sites(Path(".")):
        overrides = [x for s in [f"select.split.holdout_site={site}", *args.set] for x in ("-S", s)]
        subprocess.run(["dvc", "exp", "run", *overrides], check=True)
        report = json.loads(Path("reports/evaluate.json").read_text())
        rows.append({"held-out site": site, **fold_figures(report)})
        print(json.dumps(rows[-1]), flush=True)
    table = markdown(rows, ["held-out site"])
    args.out.write_text(table)
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n")
    print(table)


if __name__ == "__main__":
    main()
