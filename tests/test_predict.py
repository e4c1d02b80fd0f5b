"""Scene prediction: georeferenced masked probability COGs; tiling leaves no seam."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import torch
from rasterio.windows import from_bounds

from geofoundry import predict
from geofoundry.config import PredictConfig
from geofoundry.models.checkpoint import load_checkpoint, model_from_checkpoint
from geofoundry.models.deployed import DeployedModel
from geofoundry.models.input_spec import InputSpec
from geofoundry.predict.run import predict_scene
from geofoundry.predict.torch_model import torch_model_fn


def test_predict_stage_writes_masked_cogs(selection_dir, chips_dir, tiny_model, tmp_path):
    """The validation and test areas, each in its folder, disjoint; a map of the former flat layout goes."""
    out = tmp_path / "pred"
    out.mkdir()
    (out / "old_layout.tif").write_bytes(b"")
    result = predict.run(PredictConfig(tile=256, overlap=32), selection_dir, chips_dir, tiny_model, out,
                         tmp_path / "metrics" / "predict.json")
    assert result["scenes"]["val"] and result["scenes"]["test"] and not (out / "old_layout.tif").exists()
    assert json.loads((tmp_path / "metrics" / "predict.json").read_text()) == result  # what ran the model, and why
    assert result["engines"] == [{"model": str(tiny_model), "requested": "auto", "engine": "eager", "device": "cpu"}]
    for split, scene_id in [(s, i) for s, ids in result["scenes"].items() for i in ids]:
        with rasterio.open(out / split / f"{scene_id}.tif") as ds:
            assert ds.count == 1 and ds.dtypes[0] == "uint8" and ds.crs.to_epsg() == 3857
            assert ds.overviews(1), "COG with overviews"
            mask = ds.dataset_mask()
            assert 0 < (mask > 0).mean() < 1
            assert ds.read(1)[mask == 0].max() == 0
            assert abs(ds.transform.a - 0.3) < 0.01
            assert ds.scales == (1 / 255,) and ds.offsets == (0.0,)  # GIS software shows p in 0..1
    both = sorted(set(result["scenes"]["val"]) & set(result["scenes"]["test"]))[0]
    with rasterio.open(out / "val" / f"{both}.tif") as val, rasterio.open(out / "test" / f"{both}.tif") as test:
        same = from_bounds(*val.bounds, transform=test.transform).round_offsets().round_lengths()
        in_test = test.read_masks(1, window=same, boundless=True) > 0
        assert in_test.shape == val.shape and not (in_test & (val.dataset_mask() > 0)).any(), "disjoint areas"
    assert not list(out.rglob(".*")), "no temporary file left behind"
    scene_id = result["scenes"]["test"][0]
    predict.run(PredictConfig(tile=256, overlap=32, overviews=False), selection_dir, chips_dir, tiny_model, out,
                splits=("test",))
    with rasterio.open(out / "test" / f"{scene_id}.tif") as ds:
        assert not ds.overviews(1) and ds.profile["tiled"], "a COG without overviews"


def test_tiling_leaves_no_seam(selection_dir, chips_dir, tiny_model, tmp_path):
    """A test block predicted in one piece vs tiled: blended tiles stay close; hard-edged tiles do not."""
    spec = InputSpec.load(chips_dir / "stats.json")
    model = DeployedModel(model_from_checkpoint(load_checkpoint(tiny_model)), spec.low, spec.high)
    fn = torch_model_fn(model, "cpu")
    blocks = gpd.read_parquet(selection_dir / "blocks.parquet")
    block = blocks[blocks["split"] == "test"].sort_values("valid_area_m2").iloc[-1]  # 150 m ≈ 500 px
    scenes = pd.read_parquet(selection_dir / "scenes.parquet")
    row = scenes[scenes["site"] == block["site"]].iloc[0]
    args = (row["image_path"], row["band_names"].split("|"), float(row["gsd_m"]), block.geometry, spec, fn)
    runs = {"one": PredictConfig(tile=768, overlap=64, batch_size=1),  # the whole padded block in one tile
            "blended": PredictConfig(tile=256, overlap=64, batch_size=3),
            "hard": PredictConfig(tile=192, overlap=0, batch_size=3)}  # no overlap: tile edges meet head-on
    probs = {}
    for name, cfg in runs.items():
        predict_scene(*args, cfg, tmp_path / f"{name}.tif")
    with rasterio.open(tmp_path / "one.tif") as one:
        valid = one.dataset_mask() > 0
        for name in runs:
            with rasterio.open(tmp_path / f"{name}.tif") as ds:
                same = from_bounds(*one.bounds, transform=ds.transform).round_offsets().round_lengths()
                probs[name] = ds.read(1, window=same, boundless=True).astype(np.float32) / 255
    blended = np.abs(probs["blended"] - probs["one"])[valid].mean()
    hard = np.abs(probs["hard"] - probs["one"])[valid].mean()
    print(f"seam test: mean |dp| blended {blended:.4f}, hard-edged {hard:.4f}")
    assert blended < 0.03 and blended < 0.6 * hard


def test_tta_transforms_are_exact_inverses():
    from geofoundry.predict.combine import TTA, with_tta

    batch = np.random.default_rng(0).random((2, 3, 8, 8)).astype(np.float32)
    for xp, array in ((np, batch), (torch, torch.from_numpy(batch))):
        for mode in TTA:
            np.testing.assert_allclose(np.asarray(with_tta(lambda b: b * 2, mode, xp)(array)), batch * 2, rtol=1e-6)
    asymmetric = lambda b: np.cumsum(b, axis=-1)  # noqa: E731 - not equivariant: TTA must change it
    assert not np.allclose(with_tta(asymmetric, "d4", np)(batch), asymmetric(batch))


def brier(prob_path, truth_raster) -> float:
    with rasterio.open(prob_path) as ds:
        p = ds.read(1).astype(np.float32) / 255
        valid = ds.dataset_mask() > 0
        truth = truth_raster(ds)
    return float(((p - truth) ** 2)[valid].mean())


@pytest.mark.slow  # tens of seconds on two cores
def test_ensemble_and_tta_on_dev(selection_dir, chips_dir, tiny_model, tmp_path):
    """Two trained models averaged with D4 TTA: a valid map, no worse (Brier score) than the weaker member."""
    from rasterio.features import rasterize

    from geofoundry import train
    from geofoundry.config import EnsembleMember, TrainConfig
    from geofoundry.io.raw import read_labels

    train.run(TrainConfig(epochs=1, samples_per_epoch=8, batch_size=4, seed=1), "linknet", chips_dir,
              tmp_path / "m2", tmp_path / "live2")
    second = tmp_path / "m2" / "best.pt"
    scenes = pd.read_parquet(selection_dir / "scenes.parquet")

    def truth_raster(ds):
        row = scenes.set_index("scene_id").loc[ds.name.split("/")[-1][:-4]]
        shapes = read_labels(row["labels_path"]).to_crs(ds.crs).geometry
        return rasterize(shapes, out_shape=ds.shape, transform=ds.transform, fill=0, dtype="uint8")

    runs = {"a": PredictConfig(tile=256, overlap=32), "b": PredictConfig(tile=256, overlap=32),
            "ens": PredictConfig(tile=256, overlap=32, tta="d4",
                                 ensemble=[EnsembleMember(path=str(second), weight=1.0)])}
    models = {"a": tiny_model, "b": second, "ens": tiny_model}
    scores = {}
    for name, cfg in runs.items():
        out = predict.run(cfg, selection_dir, chips_dir, models[name], tmp_path / name, splits=("test",))
        scores[name] = np.mean([brier(tmp_path / name / "test" / f"{s}.tif", truth_raster)
                                for s in out["scenes"]["test"]])
    assert scores["ens"] <= max(scores["a"], scores["b"]) + 1e-4, scores


def test_bad_input_is_refused_clearly(selection_dir, chips_dir, tiny_model, tmp_path):
    """Wrong bands, an area with no valid pixel, and a geofence away from every test area."""
    import pytest
    import shapely

    from geofoundry.errors import GeofoundryError

    spec = InputSpec.load(chips_dir / "stats.json")
    fn = torch_model_fn(DeployedModel(model_from_checkpoint(load_checkpoint(tiny_model)), spec.low, spec.high), "cpu")
    row = pd.read_parquet(selection_dir / "scenes.parquet").iloc[0]
    cfg = PredictConfig(tile=256, overlap=32)
    with pytest.raises(GeofoundryError, match=r"missing \['red', 'green', 'blue'\]"):
        predict_scene(row["image_path"], ["b1", "b2", "b3"], float(row["gsd_m"]), None, spec, fn, cfg,
                      tmp_path / "x.tif")
    with rasterio.open(row["image_path"]) as ds:  # the top-left corner of these scenes holds no valid pixel
        corner = shapely.box(ds.bounds.left, ds.bounds.top - 30, ds.bounds.left + 30, ds.bounds.top)
        assert not (ds.dataset_mask(window=((0, 100), (0, 100))) > 0).any()
    with pytest.warns(UserWarning, match="no valid pixel"):
        assert not predict_scene(row["image_path"], row["band_names"].split("|"), float(row["gsd_m"]), corner,
                                 spec, fn, cfg, tmp_path / "empty.tif")
    assert not (tmp_path / "empty.tif").exists() and not list(tmp_path.glob(".*"))
    far = PredictConfig(tile=256, overlap=32, geofence="POLYGON((10 10, 10.01 10, 10.01 10.01, 10 10.01, 10 10))")
    with pytest.raises(GeofoundryError, match="geofence does not overlap the test area"), \
            pytest.warns(UserWarning, match="geofence does not overlap the val area of any scene: no val maps"):
        predict.run(far, selection_dir, chips_dir, tiny_model, tmp_path / "pred")
