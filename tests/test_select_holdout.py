"""Leave-one-site-out (select.split.holdout_site) on the real DEV scenes: exactly that site is the test split."""

from __future__ import annotations

import geopandas as gpd
import pytest

from geofoundry import select
from geofoundry.config import SelectConfig, SplitConfig
from geofoundry.errors import GeofoundryError


@pytest.mark.slow
def test_holdout_site_is_the_whole_test_split_and_nothing_else(tmp_path, dev_root):
    cfg = SelectConfig(context_gsd_m=2.0, split=SplitConfig(holdout_site="nairobi_ke"))
    metrics = select.run(cfg, dev_root, tmp_path / "selection", tmp_path / "select.json")
    blocks = gpd.read_parquet(tmp_path / "selection" / "blocks.parquet")
    assert set(blocks["site"]) == {"kampala_ug", "nairobi_ke", "zanzibar_tz"}
    assert (blocks["split"] == "test").eq(blocks["site"] == "nairobi_ke").all()
    others = blocks[blocks["site"] != "nairobi_ke"]
    assert set(others["split"]) == {"train", "val"}
    assert metrics["split"]["test"]["blocks"] == (blocks["site"] == "nairobi_ke").sum()
    with pytest.raises(GeofoundryError, match="no selected block is of site 'lagos_ng'"):
        select.run(SelectConfig(context_gsd_m=2.0, split=SplitConfig(holdout_site="lagos_ng")), dev_root,
                   tmp_path / "s2", tmp_path / "s2.json")
