"""Select on the real DEV dataset (9 scenes, 3 sites × 3 zooms): no ground in two splits, seeded, balanced."""

from __future__ import annotations

import itertools
import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely

from geofoundry.config import SelectConfig, SplitConfig
from geofoundry.errors import GeofoundryError
from geofoundry.io.geometry import reproject
from geofoundry.io.raster import valid_footprint
from geofoundry.pipeline.paths import Paths, pinned_path
from geofoundry.select import run as select_run
from geofoundry.select.pinned import pinned_splits
from geofoundry.select.split import SPLITS, assign_splits

CFG = SelectConfig(gsd_range=(0.0, 1.0), context_gsd_m=2.0)


@pytest.fixture(scope="module")
def dev_selection(tmp_path_factory, dev_root):
    out = tmp_path_factory.mktemp("select")
    metrics = select_run(CFG, dev_root, out / "selection", out / "select.json")
    return out, metrics


def split_grounds(scenes: pd.DataFrame, blocks: gpd.GeoDataFrame) -> dict[str, shapely.Geometry]:
    """Per split: the union over scenes of (the scene's valid footprint ∩ that split's blocks), EPSG:3857."""
    footprints = []
    for path in scenes["image_path"]:
        with rasterio.open(path) as ds:
            footprints.append(reproject(valid_footprint(ds), ds.crs, "EPSG:3857"))
    out = {}
    for split in SPLITS:
        area = shapely.union_all(blocks.loc[blocks["split"] == split].geometry.values)
        out[split] = shapely.union_all([fp.intersection(area) for fp in footprints])
    return out


def test_all_nine_scenes_and_every_split(dev_selection):
    out, metrics = dev_selection
    scenes = pd.read_parquet(out / "selection" / "scenes.parquet")
    assert len(scenes) == 9 and metrics["scenes"] == 9
    assert all(metrics["split"][s]["blocks"] > 0 and metrics["split"][s]["objects"] > 0 for s in SPLITS)
    assert set(scenes["splits"]) == {"test,train,val"}  # every scene (every zoom) holds ground of every split


def test_zero_overlap_between_split_footprints_across_zooms(dev_selection):
    out, _ = dev_selection
    scenes = pd.read_parquet(out / "selection" / "scenes.parquet")
    blocks = gpd.read_parquet(out / "selection" / "blocks.parquet")
    assert blocks.crs.to_epsg() == 3857 and not blocks["block_id"].duplicated().any()
    grounds = split_grounds(scenes, blocks)
    for a, b in itertools.combinations(SPLITS, 2):
        assert grounds[a].area > 0 and grounds[a].intersection(grounds[b]).area < 1e-6, (a, b)
    # and nothing is lost: the splits together cover every zoom's valid ground
    union = shapely.union_all(list(grounds.values()))
    assert union.area == pytest.approx(sum(g.area for g in grounds.values()), rel=1e-9)


def test_blocks_contract_and_metrics(dev_selection):
    out, metrics = dev_selection
    blocks = gpd.read_parquet(out / "selection" / "blocks.parquet")
    for col in ("block_id", "ix", "iy", "split", "valid_area_m2", "n_objects", "site", "group", "n_scenes"):
        assert col in blocks
    assert json.loads((out / "selection" / "classes.json").read_text())["paths"] == [None, "structure/building"]
    saved = json.loads((out / "select.json").read_text())
    assert saved == json.loads(json.dumps(metrics))
    for split in SPLITS:
        m = saved["split"][split]
        assert m["classes"]["building"] == m["objects"]
        assert set(m["contexts"]) == {"vegetation", "bright", "cloud_haze", "water", "nodata"}
        assert m["contexts"]["water"] is None  # RGB only: water is not computed
        assert abs(m["area_share"] - CFG.split.fractions[split]) < 0.06, (split, m["area_share"])
    assert sum(saved["split"][s]["objects"] for s in SPLITS) == blocks["n_objects"].sum()


def test_split_balances_positives_and_contexts(dev_selection):
    out, _ = dev_selection
    blocks = gpd.read_parquet(out / "selection" / "blocks.parquet")
    area = blocks["valid_area_m2"]
    for split in SPLITS:
        share = area[blocks["split"] == split].sum() / area.sum()
        objects = blocks.loc[blocks["split"] == split, "n_objects"].sum() / blocks["n_objects"].sum()
        veg = (area * blocks["vegetation"])[blocks["split"] == split].sum() / (area * blocks["vegetation"]).sum()
        assert abs(objects - share) < 0.08 and abs(veg - share) < 0.08, (split, share, objects, veg)


def test_assign_splits_is_seeded(dev_selection):
    out, _ = dev_selection
    blocks = gpd.read_parquet(out / "selection" / "blocks.parquet")
    fr = CFG.split.fractions
    a = assign_splits(blocks, fr, 0, CFG.split.balance)
    assert a.equals(assign_splits(blocks, fr, 0, CFG.split.balance))
    assert a.tolist() == blocks["split"].tolist()
    assert not a.equals(assign_splits(blocks, fr, 1, CFG.split.balance))


def test_select_run_is_reproducible(tmp_path, spacenet_root):
    cfg = SelectConfig(gsd_range=(1, 3), context_gsd_m=2.0, split={"block_size_m": 60, "seed": 3})
    runs = [select_run(cfg, spacenet_root, tmp_path / f"s{i}", tmp_path / f"m{i}.json") for i in range(2)]
    assert runs[0] == runs[1]
    a, b = (gpd.read_parquet(tmp_path / f"s{i}" / "blocks.parquet") for i in range(2))
    assert a.equals(b) and np.isin(a["split"], SPLITS).all()


def test_pinned_split_keeps_the_blocks_of_an_earlier_selection(tmp_path, dev_root):
    """All nine scenes selected with z19's blocks pinned: every z19 block keeps its split, on every zoom."""
    z19 = SelectConfig(gsd_range=(0.25, 0.35), context_gsd_m=2.0)
    select_run(z19, dev_root, tmp_path / "z19", tmp_path / "z19.json")
    pinned = tmp_path / "z19" / "blocks.parquet"
    select_run(CFG, dev_root, tmp_path / "all", tmp_path / "all.json", pinned)
    before = gpd.read_parquet(pinned).set_index("block_id")["split"]
    after = gpd.read_parquet(tmp_path / "all" / "blocks.parquet").set_index("block_id")["split"]
    assert len(before) > 20 and after[before.index].tolist() == before.tolist()
    scenes = pd.read_parquet(tmp_path / "all" / "scenes.parquet")
    assert len(scenes) == 9 and set(scenes["splits"]) == {"test,train,val"}


def test_pinned_split_refuses_bad_files(tmp_path, dev_selection):
    blocks = gpd.read_parquet(dev_selection[0] / "selection" / "blocks.parquet")
    path = dev_selection[0] / "selection" / "blocks.parquet"
    assert pinned_splits(blocks, path, 150.0).tolist() == blocks["split"].tolist()
    with pytest.raises(GeofoundryError, match="not cells of the 100 m grid .* another block size"):
        pinned_splits(blocks, path, 100.0)
    blocks.drop(columns="split").to_parquet(tmp_path / "nosplit.parquet")
    with pytest.raises(GeofoundryError, match=r"lacks the column\(s\) \['split'\]"):
        pinned_splits(blocks, tmp_path / "nosplit.parquet", 150.0)
    blocks.assign(split="holdout").to_parquet(tmp_path / "holdout.parquet")
    with pytest.raises(GeofoundryError, match=r"unknown split\(s\) \['holdout'\]"):
        pinned_splits(blocks, tmp_path / "holdout.parquet", 150.0)
    blocks.to_crs(4326).to_parquet(tmp_path / "lonlat.parquet")
    with pytest.raises(GeofoundryError, match="blocks must be in EPSG:3857, found EPSG:4326"):
        pinned_splits(blocks, tmp_path / "lonlat.parquet", 150.0)
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "text.parquet").write_text("not parquet")
    with pytest.raises(GeofoundryError, match="text.parquet: not a blocks file"):
        pinned_splits(blocks, pinned_path(SplitConfig(pinned="splits/text.parquet"), Paths(tmp_path)), 150.0)
    with pytest.raises(GeofoundryError, match="splits/none.parquet does not exist"):
        pinned_path(SplitConfig(pinned="splits/none.parquet"), Paths(tmp_path))
    with pytest.raises(GeofoundryError, match=r"\.\./x.parquet is not in .*splits/"):
        pinned_path(SplitConfig(pinned="splits/../x.parquet"), Paths(tmp_path))
    assert pinned_path(SplitConfig(), Paths(tmp_path)) is None
