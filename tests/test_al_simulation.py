"""The active-learning simulation (bench/active_learning.py): its summary on known curves, and a tiny run end to
end on real DEV scenes (prepare, rounds, report with the postprocess and evaluate stages)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from .project import ROOT, env, tiny_params

sys.path.insert(0, str(ROOT / "bench"))
from active_learning import markdown, summarize  # noqa: E402


def job(seed, strategy, fraction, f1):
    return {"seed": seed, "strategy": strategy, "fraction": fraction, "f1": f1}


def test_summary_of_known_curves():
    """Seed 0: full pool 0.6 (target 0.57); the strategy reaches it at 0.2, random at 0.4 → 2×. Seed 1: random never
    reaches its target within 0.4 → the saving is at least 0.4 / 0.2."""
    jobs = [job(0, "full", 1.0, 0.6), job(0, "start", 0.1, 0.3), job(0, "hybrid", 0.2, 0.58),
            job(0, "random", 0.2, 0.4), job(0, "random", 0.4, 0.57), job(0, "hybrid", 0.4, 0.59),
            job(1, "full", 1.0, 0.5), job(1, "start", 0.1, 0.2), job(1, "hybrid", 0.2, 0.49),
            job(1, "random", 0.2, 0.3), job(1, "random", 0.4, 0.4), job(1, "hybrid", 0.4, 0.5)]
    s = summarize(jobs, ["random", "hybrid"])
    assert s["full_pool_f1"]["mean"] == pytest.approx(0.55)
    assert s["f1"]["hybrid"]["0.2"]["mean"] == pytest.approx(0.535)
    assert s["f1"]["hybrid"]["0.2"]["of_full"]["mean"] == pytest.approx((0.58 / 0.6 + 0.49 / 0.5) / 2, abs=1e-4)
    assert s["f1"]["random"]["0.1"] == s["f1"]["hybrid"]["0.1"]  # the common start
    assert s["fraction_needed"]["random"]["per_seed"] == {"0": 0.4, "1": None}
    assert s["fraction_needed"]["hybrid"]["per_seed"] == {"0": 0.2, "1": 0.2}
    assert s["fraction_needed"]["hybrid"]["mean"] == pytest.approx(0.2)
    assert s["fraction_needed"]["hybrid"]["saving_vs_random"] == {
        "0": {"ratio": 2.0, "lower_bound": False}, "1": {"ratio": 2.0, "lower_bound": True}}
    table = markdown(s)
    assert "| hybrid | 20%, 20% | 2.00×, ≥ 2.00× |" in table and "| random | 40%, > 40% |" in table


@pytest.mark.slow
def test_tiny_simulation_end_to_end(tmp_path, small_raw):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params(), sort_keys=False))
    work = tmp_path / "w"
    cmd = [sys.executable, str(ROOT / "bench" / "active_learning.py"), "all", "--work", str(work), "--params",
           str(tmp_path / "params.yaml"), "--raw", str(small_raw), "--recipe", "tiny", "--seeds", "0",
           "--strategies", "random", "entropy", "--rounds", "2", "--step-fraction", "0.2", "--plot",
           str(tmp_path / "plot")]
    proc = subprocess.run(cmd, env={**env(), "PYTHONPATH": str(ROOT / "src")}, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((work / "results" / "report.json").read_text())
    keys = sorted(j["key"] for j in report["jobs"])
    assert keys == ["s0-entropy-r1", "s0-full-r0", "s0-random-r1", "s0-start-r0"]
    manifest = json.loads((work / "pack" / "manifest.json").read_text())
    pool = len(manifest["pool"])
    by_key = {j["key"]: j for j in report["jobs"]}
    assert len(by_key["s0-full-r0"]["labelled"]) == pool
    step = len(by_key["s0-start-r0"]["labelled"])
    for key in ("s0-entropy-r1", "s0-random-r1"):
        grown = by_key[key]["labelled"]
        assert len(grown) == 2 * step and set(by_key["s0-start-r0"]["labelled"]) < set(grown) <= set(manifest["pool"])
    assert all(0 <= j["object"]["f1"] <= 1 for j in report["jobs"])
    assert set(report["summary"]["f1"]) == {"random", "entropy"}
    assert (tmp_path / "plot.vl.json").is_file()
