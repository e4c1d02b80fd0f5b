"""The offline plots page: `geofoundry report` (dvc plots diff with the vendored vega template) draws every chart in
headless Chromium with the network cut off.

A throw-away DVC repo holds plot files shaped like the train stage's dvclive output and the evaluate stage's
plots/evaluate/*.json, declared with the plot definitions of this repo's dvc.yaml; a main commit and a changed
workspace (an "experiment") are compared. Needs Debian's `chromium` (.ci/run installs it): without it the test is
skipped on a workstation and fails under CI (env CI set).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import yaml

from geofoundry.report import TEMPLATE, offline_problems, render

from .project import env, sh

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  # no network at all: any http(s) request goes to a closed local port and fails
                  "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>"]
TIMEOUT_S = 60

# What the vega SVG renderer draws for each dvc-render template (linear: lines; confusion, bars: rects; scatter:
# symbols).
EXPECTED_MARK = {"linear": "mark-line", "confusion_counts": "mark-rect", "bar_horizontal": "mark-rect",
                 "scatter": "mark-symbol"}


def _sh(*args: str, cwd: Path, timeout: float = TIMEOUT_S) -> subprocess.CompletedProcess:
    return sh(*args, cwd=cwd, timeout=timeout)


def _chromium() -> str:
    exe = shutil.which("chromium")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/run must `apt-get install -y chromium` before the tests")
        pytest.skip("chromium is not installed (Debian: apt-get install -y chromium); CI installs it")
    return exe


def _png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def _write_plots(repo: Path, shift: float) -> None:
    """Plot files shaped like dvclive's (train) and geofoundry.evaluate's (evaluate); ``shift`` changes the values."""
    metrics = repo / "dvclive" / "train" / "plots" / "metrics"
    for name, values in {"train/loss.tsv": [0.9, 0.6, 0.45, 0.4], "val/f1.tsv": [0.2, 0.45, 0.55, 0.6]}.items():
        (metrics / name).parent.mkdir(parents=True, exist_ok=True)
        metric = Path(name).stem
        lines = [f"step\t{metric}"] + [f"{i}\t{v + shift * (1 if metric == 'f1' else -1):.4f}"
                                       for i, v in enumerate(values)]
        (metrics / name).write_text("\n".join(lines) + "\n")
    images = repo / "dvclive" / "train" / "plots" / "images" / "val"
    images.mkdir(parents=True, exist_ok=True)
    (images / "0.png").write_bytes(_png(32, 32, (40, 120 + int(shift * 400), 200)))

    ev = repo / "plots" / "evaluate"
    (ev / "overlays").mkdir(parents=True, exist_ok=True)
    thresholds = [0.9, 0.7, 0.5, 0.3, 0.1]
    pr = [{"recall": round(r + shift, 4), "precision": round(p, 4), "threshold": t}
          for r, p, t in zip([0.1, 0.3, 0.5, 0.65, 0.75], [0.98, 0.93, 0.85, 0.72, 0.55], thresholds)]
    per_scene = [{"scene_id": s, "f1": round(f + shift, 4), "iou": round(f * 0.8, 4)}
                 for s, f in [("kampala_ug_z19", 0.61), ("nairobi_ke_z19", 0.52), ("dar_tz_z20", 0.44)]]
    groups = [("size lt50m2", 0.16, 56), ("size ge200m2", 0.81, 19), ("vegetation ge0.3", 0.62, 31)]
    per_context = [{"group": g, "f1": round(f + shift, 4), "objects": n} for g, f, n in groups]
    tp, fp, fn = 30 + int(shift * 100), 9, 12
    confusion = ([{"actual": "building", "predicted": "building"}] * tp
                 + [{"actual": "background", "predicted": "building"}] * fp
                 + [{"actual": "building", "predicted": "background"}] * fn)
    files = {
        "object_pr.json": pr,
        "pixel_pr.json": [{**r, "precision": round(r["precision"] * 0.95, 4)} for r in pr],
        "f1_vs_threshold.json": [{"threshold": t, "f1": round(0.3 + 0.4 * t * (1 - t) + shift, 4)}
                                 for t in [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]],
        "confusion.json": confusion,
        "per_scene.json": per_scene,
        "per_context.json": per_context,
    }
    for name, records in files.items():
        (ev / name).write_text(json.dumps(records, indent=1))
    (ev / "overlays" / "kampala_ug_z19.png").write_bytes(_png(48, 32, (200, 60 + int(shift * 400), 60)))

    rps = repo / "plots" / "rps"
    (rps / "f1_by_setting").mkdir(parents=True, exist_ok=True)
    trials = [{"trial": i, "postprocess.threshold.value": t, "predict.tta": tta, "precision": round(p + shift, 4),
               "recall": round(r, 4), "f1": round(2 * p * r / (p + r) + shift, 4)}
              for i, (t, tta, p, r) in enumerate([(0.5, "none", 0.66, 0.4), (0.3, "none", 0.5, 0.55),
                                                   (0.4, "d4", 0.62, 0.5), (0.6, "d4", 0.75, 0.3)])]
    columns = list(trials[0])
    table = "\n".join([",".join(columns), *(",".join(str(t[c]) for c in columns) for t in trials)]) + "\n"
    (rps / "trials.csv").write_text(table)
    (rps / "pareto.csv").write_text("\n".join(table.splitlines()[:1] + table.splitlines()[2:]) + "\n")
    for key in ("postprocess.threshold.value", "predict.tta"):
        values = sorted({t[key] for t in trials}, key=str)
        records = [{"value": t[key] if key.startswith("postprocess") else values.index(t[key]), "f1": t["f1"],
                    "trial": t["trial"]} for t in trials]
        (rps / "f1_by_setting" / f"{key}.json").write_text(json.dumps(records, indent=1))


def _plot_definitions() -> tuple[dict[str, dict], list[dict]]:
    """This repo's train, evaluate and rps plot definitions for the files that _write_plots fakes, and its
    top-level plots."""
    dvc_yaml = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    stages = dvc_yaml["stages"]
    faked = {"dvclive/train/plots/metrics", "dvclive/train/plots/images", "plots/evaluate/overlays",
             *(f"plots/evaluate/{n}" for n in ("object_pr.json", "pixel_pr.json", "f1_vs_threshold.json",
                                                "confusion.json", "per_scene.json", "per_context.json")),
             "plots/rps/trials.csv", "plots/rps/f1_by_setting"}
    out = {}
    for stage in ("train", "evaluate", "rps"):
        plots = [p for p in stages[stage].get("plots", []) if next(iter(p) if isinstance(p, dict) else [p]) in faked]
        out[stage] = {"cmd": "true", "plots": plots}
    return out, dvc_yaml.get("plots", [])


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict:
    """Build the tiny repo, render the diff page with `geofoundry report`, load it in Chromium (DOM + screenshot)."""
    chromium = _chromium()
    tmp = tmp_path_factory.mktemp("plots_offline")
    repo = tmp / "repo"
    repo.mkdir()
    _sh("git", "init", "-q", "-b", "main", cwd=repo)
    _sh("dvc", "init", "-q", cwd=repo)
    shutil.copytree(ROOT / ".dvc" / "plots", repo / ".dvc" / "plots")  # the project's plot templates
    stages, top = _plot_definitions()
    assert all(stages[s]["plots"] for s in stages), "dvc.yaml lacks the train/evaluate/rps plots"
    assert [next(iter(p)) for p in top] == ["rps_precision_recall"]
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages, "plots": top}, sort_keys=False))
    _write_plots(repo, shift=0.0)
    _sh("git", "add", "-A", cwd=repo)
    _sh("git", "commit", "-qm", "main", cwd=repo)
    _write_plots(repo, shift=0.08)  # the workspace plays the experiment

    out = tmp / "report"
    index = render(out, ["HEAD"], repo=repo)  # what `geofoundry report HEAD` runs: dvc plots diff HEAD
    assert index == out / "index.html"
    html = index.read_text(encoding="utf-8")

    profile = tmp / "chromium-profile"
    shot = tmp / "plots.png"
    base = [chromium, *CHROMIUM_FLAGS, "--virtual-time-budget=10000"]
    # two browsers at once (separate profiles): one dumps the DOM, one takes the screenshot
    dom_proc = subprocess.Popen([*base, f"--user-data-dir={profile}-dom", "--dump-dom", index.as_uri()],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    shot_proc = subprocess.Popen([*base, f"--user-data-dir={profile}-shot", "--hide-scrollbars",
                                  "--window-size=1400,2600", f"--screenshot={shot}", index.as_uri()],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        dom, dom_err = dom_proc.communicate(timeout=TIMEOUT_S)
        _, shot_err = shot_proc.communicate(timeout=TIMEOUT_S)
    finally:
        for p in (dom_proc, shot_proc):
            if p.poll() is None:
                p.kill()
    assert dom_proc.returncode == 0 and dom.strip(), f"chromium --dump-dom failed:\n{dom_err[-2000:]}"
    assert shot_proc.returncode == 0 and shot.is_file(), f"chromium --screenshot failed:\n{shot_err[-2000:]}"
    return {"repo": repo, "out": out, "html": html, "dom": dom, "shot": shot, "stages": stages, "top": top}


def test_template_is_vendored_small_and_intact():
    text = TEMPLATE.read_text(encoding="utf-8")
    assert TEMPLATE.stat().st_size < 2 * 1024 * 1024
    assert text.count("{plot_divs}") == 1
    assert "{scripts}" not in text  # no placeholder: DVC then leaves out its CDN <script src> tags
    assert offline_problems(text) == []
    header = dict(re.findall(r"file package/build/(\S+?)\.min\.js \(sha256 ([0-9a-f]{64})", text))
    assert set(header) == {"vega", "vega-lite", "vega-embed"}
    for name, sha in header.items():
        body = re.search(rf'<script data-package="{name}" data-version="[^"]+">\n(.*?)</script>', text, re.S)
        assert body and hashlib.sha256(body.group(1).encode()).hexdigest() == sha, f"{name} differs from its header"
    assert "5.23.0" in re.search(r'data-package="vega-lite" data-version="([^"]+)"', text).group(1)


def test_repo_config_names_the_template():
    from configobj import ConfigObj

    value = ConfigObj(str(ROOT / ".dvc" / "config"))["plots"]["html_template"]
    assert (ROOT / ".dvc" / value).resolve() == TEMPLATE.resolve()  # DVC resolves it relative to .dvc/


def test_page_needs_no_network(rendered):
    html = rendered["html"]
    assert offline_problems(html) == []
    assert not re.search(r"<script[^>]+src=", html, re.I)
    assert "cdn.jsdelivr" not in html


def test_plain_dvc_plots_show_uses_configured_template(rendered):
    repo, out = rendered["repo"], rendered["out"].parent / "show"
    _sh("dvc", "config", "plots.html_template", str(TEMPLATE), cwd=repo)
    _sh("dvc", "plots", "show", "-o", str(out), cwd=repo)
    html = (out / "index.html").read_text(encoding="utf-8")
    assert offline_problems(html) == [] and "window.vegaEmbed" in html


def test_report_command(rendered, tmp_path):
    """`geofoundry report` without revisions: dvc plots show of the workspace; a repo without plots fails cleanly."""
    out = tmp_path / "show"
    proc = _sh(sys.executable, "-m", "geofoundry", "report", "--out", str(out), "--repo", str(rendered["repo"]),
               cwd=tmp_path)
    assert (out / "index.html").as_uri() in proc.stdout
    html = (out / "index.html").read_text(encoding="utf-8")
    assert offline_problems(html) == [] and '"rev": "HEAD"' not in html and "plots_evaluate_confusion_json" in html

    empty = tmp_path / "empty"
    empty.mkdir()
    _sh("git", "init", "-q", cwd=empty)
    _sh("dvc", "init", "-q", cwd=empty)
    proc = subprocess.run([sys.executable, "-m", "geofoundry", "report", "--out", str(tmp_path / "none")],
                          cwd=empty, env=env(), capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "error (report): no plots were loaded" in proc.stderr


def test_every_chart_drew_in_chromium(rendered):
    html, dom = rendered["html"], rendered["dom"]
    assert 'class="plot-error"' not in dom, re.findall(r'<pre class="plot-error">([^<]*)', dom)
    assert 'class="plot-empty"' not in dom, re.findall(r'<p class="plot-empty">([^<]*)', dom)
    ids = re.findall(r'<div id = "([^"]+)">\s*<script', html)
    templates = {}
    for stage in rendered["stages"].values():
        for p in stage["plots"]:
            path, props = next(iter(p.items())) if isinstance(p, dict) else (p, {})
            templates[re.sub(r"\W", "_", path)] = (props or {}).get("template", "linear")
    for p in rendered["top"]:
        [(name, props)] = p.items()
        templates[name] = props.get("template", "linear")
    starts = sorted((dom.index(f'<div id="{i}"'), i) for i in ids)
    assert len(starts) == len(ids) >= 5
    drawn = []
    for (start, plot_id), (end, _) in zip(starts, [*starts[1:], (len(dom), None)]):
        part = dom[start:end]
        if 'class="vega-embed' not in part[:300]:
            continue  # an image plot (dvclive images, overlays): <img> tags, checked below
        assert "<svg" in part and "role-mark" in part, f"{plot_id}: no vega marks drawn"
        template = next((t for prefix, t in templates.items() if plot_id.startswith(prefix)), "linear")
        mark = EXPECTED_MARK.get(template, "role-mark")
        marks = re.findall(rf'<g class="{mark} role-mark[^"]*"[^>]*>(.*?)</g>', part, re.S)
        assert marks, f"{plot_id}: no {mark} group"
        shapes = re.findall(r'<path[^>]*\bd="M[^"]+"', "".join(marks))
        # the diff compares two revisions: a line per revision, or several rects
        assert len(shapes) >= 2, f"{plot_id}: {len(shapes)} drawn {mark} shapes"
        if template == "confusion_counts":  # every cell shows its count
            texts = re.findall(r'<g class="mark-text role-mark[^"]*"[^>]*>(.*?)</g>', part, re.S)
            assert re.findall(r"<text[^>]*>\s*(\d+)\s*</text>", "".join(texts)), f"{plot_id}: no counts drawn"
        drawn.append(plot_id)
    evaluate_ids = [i for i in drawn if i.startswith("plots_evaluate")]
    train_ids = [i for i in drawn if i.startswith("dvclive_train")]
    assert len(evaluate_ids) == len([p for p in rendered["stages"]["evaluate"]["plots"]
                                     if not next(iter(p) if isinstance(p, dict) else [p]).endswith("overlays")])
    assert len(train_ids) == 2  # train/loss.tsv and val/f1.tsv
    rps_ids = [i for i in drawn if i.startswith(("plots_rps", "rps_"))]
    assert len(rps_ids) == 4, rps_ids  # trials.csv, the two f1_by_setting files, the precision-recall cloud
    imgs = re.findall(r'<img[^>]+src="([^"]+)"', dom[dom.index("<body"):])
    assert imgs and all(not s.startswith(("http:", "https:", "//")) for s in imgs)
    assert all((rendered["out"] / s).is_file() for s in imgs), imgs


def test_screenshot_is_not_blank(rendered):
    from PIL import Image

    with Image.open(rendered["shot"]) as im:
        rgb = im.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 16)
        non_white = sum(n for n, c in colours or [] if c != (255, 255, 255)) if colours else rgb.width * rgb.height
    assert colours is None or len(colours) > 20, "screenshot is (nearly) one colour"
    assert non_white > 0.01 * rgb.width * rgb.height
