"""The compare page's experiments table at scale, for bench/dashboard.py: a DVC repository with the project's
dvc.yaml, dvc.lock, params.yaml and metrics files, and ``n`` experiments made with `git fast-import` (each a commit
on the baseline under refs/exps/, with its own params.yaml and metrics/evaluate.json: what `dvc exp run` commits),
then the table's response times: DVC's first collection (nothing kept yet), the page and the table over HTTP, the
table after one more experiment, and the page in a browser until the table is drawn."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid",
       "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid", "DVC_NO_ANALYTICS": "1"}


def _run(root: Path, *args: str, text: str | None = None) -> str:
    proc = subprocess.run(args, cwd=root, env=ENV, input=text, capture_output=True, text=True, check=True)
    return proc.stdout.strip()


def _data(text: str) -> str:
    """A `git fast-import` data block (byte count, content, the optional LF)."""
    return f"data {len(text.encode())}\n{text}\n"


def add_experiments(root: Path, start: int, n: int, seed: int = 0) -> None:
    """Experiments ``exp-<start>`` … ``exp-<start + n - 1>`` on HEAD: other params and metrics each."""
    base = _run(root, "git", "rev-parse", "HEAD")
    params = yaml.safe_load((root / "params.yaml").read_text())
    metrics = json.loads((root / "metrics/evaluate.json").read_text())
    rng = np.random.default_rng(seed + start)
    stream = []
    for i in range(start, start + n):
        params["postprocess"]["steps"][0]["threshold"]["value"] = round(0.3 + 0.001 * i, 3)
        params["train"]["lr"] = round(0.0005 * (1 + i % 9), 5)
        params["arch"] = ("unet", "fpn", "deeplab")[i % 3]
        for section in ("object", "pixel"):
            metrics[section] = {k: round(float(rng.random()), 6) for k in metrics[section]}
        ref = f"refs/exps/{base[:2]}/{base[2:]}/exp-{i:04d}"
        stream += [f"commit {ref}\n", f"committer bench <bench@example.invalid> {1_800_000_000 + i} +0000\n",
                   _data(f"exp-{i:04d}"), f"from {base}\n",
                   "M 100644 inline params.yaml\n", _data(yaml.safe_dump(params, sort_keys=False)),
                   "M 100644 inline metrics/evaluate.json\n", _data(json.dumps(metrics))]
    _run(root, "git", "fast-import", "--quiet", text="".join(stream))


def make_repo(root: Path, n: int) -> None:
    """Turn the bench's project at ``root`` (params.yaml, data/) into a DVC repository with ``n`` experiments."""
    for name in ("dvc.yaml", "dvc.lock"):
        shutil.copy(ROOT / name, root / name)
    for rel in ("metrics/evaluate.json", "metrics/export.json", "dvclive/train/metrics.json"):
        if (ROOT / rel).is_file():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / rel, root / rel)
    (root / ".gitignore").write_text("/data/\n")
    _run(root, "git", "init", "-q", "-b", "main")
    _run(root, sys.executable, "-m", "dvc", "init", "-q")
    _run(root, "git", "add", "-A")
    _run(root, "git", "commit", "-qm", "baseline")
    add_experiments(root, 0, n)


def cold_collection(root: Path) -> tuple[float, int]:
    """Seconds of DVC's first collection of the table (nothing kept yet), and its rows."""
    from geofoundry.dashboard.experiments import CACHE_DIR, Experiments

    shutil.rmtree(root / ".dvc" / "tmp" / CACHE_DIR, ignore_errors=True)
    t = time.perf_counter()
    rows = Experiments(root).collect()
    return time.perf_counter() - t, len(rows)


def browser_ms(url: str, repeats: int) -> list[float] | None:
    """Milliseconds from the start of the navigation to the table drawn, as the page measures it (its
    ``performance.now()`` then), in Debian's chromium driven by Playwright; None without them."""
    chromium = shutil.which("chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if chromium is None:
        return None
    times = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1500, "height": 1000})
        for _ in range(repeats):
            page.goto(f"{url}/compare")
            page.wait_for_selector("body[data-table=ready]", timeout=120_000)
            times.append(float(page.get_attribute("body", "data-ready-ms")))
        browser.close()
    return times


def measure(url: str, root: Path, n: int, cold: tuple[float, int], get, pct, requests: int) -> list[str]:
    """The table's rows of BENCHMARKS.md: ``get(url)`` → (ms, status, bytes, server CPU ms)."""
    for _ in range(600):  # the server's own first collection (from what cold_collection kept)
        if get(f"{url}/api/compare/experiments")[1] == 200:
            break
        time.sleep(0.5)
    table = [get(f"{url}/api/compare/experiments") for _ in range(requests)]
    page = [get(f"{url}/compare")[0] for _ in range(requests)]
    add_experiments(root, n, 1)
    grown = get(f"{url}/api/compare/experiments")
    shown = browser_ms(url, 5)
    ms, cpu = [t[0] for t in table], [t[3] for t in table]
    rows = [f"| compare: the page (`GET /compare`) | {n} | {statistics.median(page):.0f} | {pct(page, 95):.0f} | |",
            f"| compare: experiments table (`GET /api/compare/experiments`, {table[0][2] / 1e6:.1f} MB of JSON "
            f"before gzip) | {n} | "
            f"{statistics.median(ms):.0f} | {pct(ms, 95):.0f} | {statistics.median(cpu):.0f} / {pct(cpu, 95):.0f} |",
            f"| compare: the table after one more experiment | {n + 1} | {grown[0]:.0f} | | {grown[3]:.0f} |",
            f"| compare: DVC's first collection, nothing kept yet (in-process) | {cold[1] - 2} | {cold[0] * 1000:.0f} "
            "| | |"]
    if shown:
        rows.append(f"| compare: the page in chromium, navigation start to the table drawn ({len(shown)} loads) | "
                    f"{n + 1} | {statistics.median(shown):.0f} | {max(shown):.0f} | |")
    return rows
