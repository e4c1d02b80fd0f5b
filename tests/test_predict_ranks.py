"""The predict stage under torchrun: two CPU ranks (gloo) share the scenes by valid pixels and write what one
process writes, maps and metrics alike."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import rasterio

from .project import ROOT, env

SCRIPT = """import sys
from pathlib import Path
import torch
torch.set_num_threads(1)
from geofoundry import predict
from geofoundry.config import PredictConfig
selection, chips, model, out = map(Path, sys.argv[1:5])
predict.run(PredictConfig(tile=256, overlap=32, batch_size=4, device="cpu"), selection, chips, model, out,
            out / "predict.json")
"""


@pytest.mark.slow
def test_two_ranks_write_what_one_process_writes(tmp_path, selection_dir, chips_dir, tiny_model):
    script = tmp_path / "predict_stage.py"
    script.write_text(SCRIPT)
    args = [str(selection_dir), str(chips_dir), str(tiny_model)]
    run_env = {**env(), "PYTHONPATH": str(ROOT / "src")}
    for cmd in ([sys.executable, str(script), *args, str(tmp_path / "one")],
                [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", str(script),
                 *args, str(tmp_path / "two")]):
        proc = subprocess.run(cmd, env=run_env, capture_output=True, text=True, timeout=900, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    one, two = (json.loads((tmp_path / n / "predict.json").read_text()) for n in ("one", "two"))
    assert one["scenes"] == two["scenes"] and sum(map(len, one["scenes"].values())) >= 2
    maps = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*.tif"))
    assert maps == sorted(p.relative_to(tmp_path / "two") for p in (tmp_path / "two").rglob("*.tif"))
    for rel in maps:
        with rasterio.open(tmp_path / "one" / rel) as a, rasterio.open(tmp_path / "two" / rel) as b:
            assert a.transform == b.transform
            np.testing.assert_array_equal(a.read(), b.read())
            np.testing.assert_array_equal(a.read_masks(1), b.read_masks(1))
