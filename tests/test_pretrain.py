"""The pretrain stage on real DEV scenes (CPU, tiny sizes): it learns, its encoder file loads into every preset of
that encoder, evaluation ground stays out, and 0 epochs only says so."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pytest
import shapely
import torch
from rasterio.transform import xy

from geofoundry import pretrain
from geofoundry.config import PreprocessConfig, PretrainConfig
from geofoundry.io.geometry import reproject
from geofoundry.io.raw import load_scenes
from geofoundry.models.encoder_file import load_encoder, save_encoder
from geofoundry.models.input_spec import InputSpec
from geofoundry.models.registry import PRESETS, build_model
from geofoundry.preprocess.run import scene_grid
from geofoundry.pretrain.ground import read_ground

TINY = PretrainConfig(epochs=3, tile_px=128, view_px=64, batch_size=16, samples_per_epoch=64, max_tiles=64,
                      threads=1)


def family(encoder: str) -> list[str]:
    """The presets built on ``encoder``."""
    return [name for name, p in PRESETS.items() if p.encoder == encoder]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, small_raw, selection_dir, chips_dir):
    out = tmp_path_factory.mktemp("pretrain")
    summary = pretrain.run(TINY, "unet", PreprocessConfig(), small_raw, selection_dir, chips_dir / "stats.json",
                           out / "pretrained", out / "live")
    return out, summary


@pytest.mark.slow
def test_short_run_lowers_its_loss_and_loads_into_every_preset_of_its_encoder(pretrained):
    out, summary = pretrained
    assert summary["pretrained"] and summary["loss"][-1] < summary["loss"][0]
    assert (out / "live" / "plots" / "metrics" / "loss.tsv").is_file()
    assert json.loads((out / "live" / "metrics.json").read_text())["loss"] == summary["loss"][-1]
    tensors, meta = load_encoder(out / "pretrained" / "encoder.safetensors")
    assert (meta.encoder, meta.bands, meta.gsd_m, meta.method) == ("resnet18", ["red", "green", "blue"], 0.3, "simclr")
    for name in family("resnet18"):
        model = build_model(name, 3, 2)
        model.encoder.load_state_dict(tensors, strict=True)
        assert all(torch.equal(v, tensors[k]) for k, v in model.encoder.state_dict().items()), name


@pytest.mark.parametrize("encoder", ["resnet34", "efficientnet-b0"])
def test_an_encoder_file_loads_into_every_preset_of_its_encoder(tmp_path, encoder):
    source = build_model(family(encoder)[0], 3, 2).encoder
    save_encoder(tmp_path / "e.safetensors", source, encoder_name=encoder, bands=["red", "green", "blue"],
                 gsd_m=0.3, method="simclr", source="test")
    tensors, _ = load_encoder(tmp_path / "e.safetensors")
    for name in family(encoder):
        model = build_model(name, 3, 2)
        model.encoder.load_state_dict(tensors, strict=True)
        assert all(torch.equal(v, tensors[k]) for k, v in model.encoder.state_dict().items()), name


def drawn_points(ground, scenes, pcfg) -> np.ndarray:
    """EPSG:3857 (x, y) of every pixel the tiles let be drawn."""
    pts = []
    for k, row in ground.index.iterrows():
        scene = scenes.set_index("scene_id").loc[row["scene_id"]].copy()
        scene["scene_id"] = row["scene_id"]
        with scene_grid(scene, pcfg) as grid:
            r, c = np.nonzero(ground.usable[row["tile"]])
            x, y = xy(grid.transform, r + row["row_off"], c + row["col_off"])
            pts.append(shapely.get_coordinates(reproject(shapely.multipoints(np.c_[x, y]), grid.ds.crs, "EPSG:3857")))
    return np.concatenate(pts)


@pytest.mark.slow
def test_pixels_drawn_come_from_train_ground_only(small_raw, selection_dir, chips_dir):
    pcfg, spec = PreprocessConfig(), InputSpec.load(chips_dir / "stats.json")
    blocks = gpd.read_parquet(selection_dir / "blocks.parquet")
    held = shapely.union_all(blocks[blocks["split"] != "train"].geometry.values)
    scenes = load_scenes(small_raw)
    cfg = TINY.model_copy(update={"min_valid_frac": 0.05, "max_tiles": 10_000})
    ground = read_ground(small_raw, selection_dir, spec.stretch, pcfg, cfg)
    points = drawn_points(ground, scenes, pcfg)
    inside = shapely.contains_xy(held.buffer(-0.5), points[:, 0], points[:, 1])  # half a metre: resampling edges
    assert len(points) and not inside.any()
    assert (ground.tiles.max(axis=1)[~ground.usable] == 0).all()  # what is not drawn is not there either
    opened = read_ground(small_raw, selection_dir, spec.stretch, pcfg,
                         cfg.model_copy(update={"include_eval_ground": True}))
    more = drawn_points(opened, scenes, pcfg)
    assert shapely.contains_xy(held.buffer(-0.5), more[:, 0], more[:, 1]).any()


def test_zero_epochs_writes_only_that_nothing_was_pretrained(tmp_path, small_raw, selection_dir):
    summary = pretrain.run(PretrainConfig(), "unet", PreprocessConfig(), small_raw, selection_dir,
                           tmp_path / "missing-stats.json", tmp_path / "pretrained", tmp_path / "live")
    assert summary["pretrained"] is False
    assert sorted(p.name for p in (tmp_path / "pretrained").iterdir()) == ["summary.json"]
    assert (tmp_path / "live" / "plots" / "metrics").is_dir()
    assert json.loads((tmp_path / "live" / "metrics.json").read_text()) == {"epochs": 0}
