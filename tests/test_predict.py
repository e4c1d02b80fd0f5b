"""Scene prediction: georeferenced masked probability COGs; tiling leaves no seam."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
from rasterio.windows import from_bounds

from geofoundry import predict
from geofoundry.config import PredictConfig
from geofoundry.models.checkpoint import load_checkpoint, model_from_checkpoint
from geofoundry.models.deployed import DeployedModel
from geofoundry.predict.run import predict_scene, torch_model_fn
from geofoundry.preprocess.stats import InputSpec


def test_predict_stage_writes_masked_cogs(selection_dir, chips_dir, tiny_model, tmp_path):
    out = tmp_path / "pred"
    result = predict.run(PredictConfig(tile=256, overlap=32), selection_dir, chips_dir, tiny_model, out)
    assert result["scenes"]
    for scene_id in result["scenes"]:
        with rasterio.open(out / f"{scene_id}.tif") as ds:
            assert ds.count == 1 and ds.dtypes[0] == "uint8" and ds.crs.to_epsg() == 3857
            assert ds.overviews(1), "COG with overviews"
            mask = ds.dataset_mask()
            assert 0 < (mask > 0).mean() < 1
            assert ds.read(1)[mask == 0].max() == 0
            assert abs(ds.transform.a - 0.3) < 0.01
    assert not list(out.glob(".*")), "no temporary file left behind"


def test_tiling_leaves_no_seam(selection_dir, chips_dir, tiny_model, tmp_path):
    spec = InputSpec.load(chips_dir / "stats.json")
    model = DeployedModel(model_from_checkpoint(load_checkpoint(tiny_model)), spec.low, spec.high)
    fn = torch_model_fn(model, "cpu")
    blocks = gpd.read_parquet(selection_dir / "blocks.parquet")
    block = blocks[blocks["split"] == "test"].sort_values("valid_area_m2").iloc[-1]  # 150 m ≈ 500 px
    scenes = pd.read_parquet(selection_dir / "scenes.parquet")
    row = scenes[scenes["site"] == block["site"]].iloc[0]
    args = (row["image_path"], row["band_names"].split("|"), float(row["gsd_m"]), block.geometry, spec, fn)
    predict_scene(*args, PredictConfig(tile=768, overlap=64, batch_size=1), tmp_path / "one.tif")  # one piece
    predict_scene(*args, PredictConfig(tile=256, overlap=64, batch_size=3), tmp_path / "tiled.tif")
    with rasterio.open(tmp_path / "one.tif") as a, rasterio.open(tmp_path / "tiled.tif") as b:
        same_area = from_bounds(*a.bounds, transform=b.transform).round_offsets().round_lengths()
        assert (same_area.width, same_area.height) == (a.width, a.height)  # same grid
        pa, pb = a.read(1).astype(int), b.read(1, window=same_area).astype(int)
        valid = a.dataset_mask() > 0
    disagree = ((pa > 127) != (pb > 127)) & valid
    print("seam test: mask disagreement", disagree.mean(), "mean |dp|", np.abs(pa - pb)[valid].mean() / 255)
    assert disagree.mean() < 0.01
    assert np.abs(pa - pb)[valid].mean() < 3
