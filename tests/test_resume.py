"""A CPU training killed mid-run resumes to the same weights, metrics and dvclive history as an uninterrupted one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from geofoundry.config import TrainConfig

CFG = TrainConfig(
    epochs=3, samples_per_epoch=6, batch_size=2, threads=1, seed=5, lr=5e-3,
    loss={"ce": 1.0, "dice": 0.5, "lovasz": 0.5},
    augment=[{"Affine": {"rotate": [-20, 20], "scale": [0.9, 1.1], "p": 0.5}},
             {"GaussNoise": {"std_range": [0.01, 0.03], "p": 0.5}}, {"RandomCrop": {"height": 64, "width": 64}}],
    device_augment={"d4": True, "brightness": 0.2, "contrast": 0.2, "noise": 0.02, "p_color": 0.5},
)
SCRIPT = """
import logging, sys
from pathlib import Path
from geofoundry import train
from geofoundry.config import TrainConfig
logging.basicConfig(level=logging.INFO)
out = Path(sys.argv[3])
train.run(TrainConfig.model_validate_json(sys.argv[1]), "linknet", Path(sys.argv[2]), out / "models", out / "live")
"""
TIMING = ("epoch_time_s", "images_per_s")


def start(chips_dir: Path, out: Path, cfg: TrainConfig = CFG) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NO_ALBUMENTATIONS_UPDATE": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, "-c", SCRIPT, cfg.model_dump_json(), str(chips_dir), str(out)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    return out


def weights(path: Path) -> dict:
    return torch.load(path, weights_only=True)["state_dict"]


def history(live: Path) -> dict[str, str]:
    """dvclive metric tables, timing left out."""
    return {str(p.relative_to(live)): p.read_text() for p in sorted((live / "plots" / "metrics").rglob("*.tsv"))
            if p.stem not in TIMING}


def same_metrics(a: dict, b: dict) -> bool:
    return {k: v for k, v in a.items() if k not in TIMING} == {k: v for k, v in b.items() if k not in TIMING}


@pytest.fixture(scope="module")
def uninterrupted(chips_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("uninterrupted")
    finish(start(chips_dir, out))
    return out


def kill_after_first_epoch(chips_dir: Path, out: Path, cfg: TrainConfig) -> int:
    """Start a run and SIGKILL it once its first ``last.pt`` exists; the epoch that checkpoint holds."""
    proc = start(chips_dir, out, cfg)
    last = out / "models" / "last.pt"
    deadline = time.monotonic() + 240
    while not last.exists():
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = torch.load(last, weights_only=True)["epoch"]
    assert 1 <= killed_at < cfg.epochs
    return killed_at


def kill_and_resume(chips_dir: Path, out: Path, cfg: TrainConfig) -> None:
    """Kill a run after its first checkpoint and run it again to the end."""
    killed_at = kill_after_first_epoch(chips_dir, out, cfg)
    assert f"after epoch {killed_at}" in finish(start(chips_dir, out, cfg))


def same_run(a: Path, b: Path, epochs: int) -> None:
    """Same checkpoint weights, final metrics and dvclive history in two run folders."""
    for name in ("last.pt", "best.pt"):
        x, y = weights(a / "models" / name), weights(b / "models" / name)
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x), name
    ref = torch.load(a / "models" / "last.pt", weights_only=True)
    got = torch.load(b / "models" / "last.pt", weights_only=True)
    assert got["epoch"] == epochs and got["done"] and same_metrics(ref["metrics"], got["metrics"])
    assert history(b / "live") == history(a / "live")
    assert all(len(t.splitlines()) == 1 + epochs for t in history(b / "live").values())


@pytest.mark.slow  # tens of seconds on two cores
def test_killed_run_resumes_to_the_same_weights(chips_dir, uninterrupted, tmp_path):
    kill_and_resume(chips_dir, tmp_path, CFG)
    same_run(uninterrupted, tmp_path, CFG.epochs)


@pytest.mark.slow  # tens of seconds on two cores
def test_weight_average_resumes_too(chips_dir, tmp_path):
    cfg = CFG.model_copy(update={"ema": 0.7})
    finish(start(chips_dir, tmp_path / "whole", cfg))
    kill_and_resume(chips_dir, tmp_path / "killed", cfg)
    same_run(tmp_path / "whole", tmp_path / "killed", cfg.epochs)
    last = torch.load(tmp_path / "killed" / "models" / "last.pt", weights_only=True)
    averaged, trained = last["state_dict"], last["trained_state_dict"]
    assert averaged.keys() == trained.keys()
    assert not all(torch.equal(averaged[k], trained[k]) for k in averaged)  # checkpoints hold the average


@pytest.mark.slow  # tens of seconds on two cores
def test_same_seed_same_metrics_and_a_finished_run_starts_afresh(chips_dir, uninterrupted, tmp_path):
    first = torch.load(uninterrupted / "models" / "last.pt", weights_only=True)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "last.pt").write_bytes((uninterrupted / "models" / "last.pt").read_bytes())
    log = finish(start(chips_dir, tmp_path))
    assert "finished: starting afresh" in log
    again = torch.load(tmp_path / "models" / "last.pt", weights_only=True)
    assert same_metrics(first["metrics"], again["metrics"])
    assert all(torch.equal(first["state_dict"][k], again["state_dict"][k]) for k in first["state_dict"])
    assert history(tmp_path / "live") == history(uninterrupted / "live")


def test_other_settings_do_not_resume(chips_dir, uninterrupted, tmp_path):
    from geofoundry.train.state import fingerprint

    same = fingerprint(CFG, "linknet", chips_dir, 1)
    assert fingerprint(CFG.model_copy(update={"num_workers": 4, "compile": True}), "linknet", chips_dir, 1) == same
    assert fingerprint(CFG.model_copy(update={"lr": 1e-3}), "linknet", chips_dir, 1) != same
    assert fingerprint(CFG, "unet", chips_dir, 1) != same and fingerprint(CFG, "linknet", chips_dir, 2) != same


@pytest.mark.slow  # tens of seconds on two cores
def test_workers_do_not_change_the_run(chips_dir, uninterrupted, tmp_path):
    finish(start(chips_dir, tmp_path, CFG.model_copy(update={"num_workers": 2, "prefetch": 2})))
    a, b = weights(uninterrupted / "models" / "last.pt"), weights(tmp_path / "models" / "last.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert history(tmp_path / "live") == history(uninterrupted / "live")
