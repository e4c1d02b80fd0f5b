"""A client's scene as the bundle sees it: band names (descriptions, --bands, or the model's order) and its GSD."""

from __future__ import annotations

import pandas as pd
import pytest
import rasterio

from geofoundry.delivery.scene import scene_bands, scene_gsd_m
from geofoundry.errors import GeofoundryError

SCENE = "kampala_ug_z19"


def test_scene_bands_by_name_or_refused(dev_root, spacenet_root):
    rgb, dev = ["red", "green", "blue"], dev_root / "images" / f"{SCENE}.tif"
    eight = next((spacenet_root / "images").glob("*_8band.tif"))
    assert scene_bands(eight, rgb) == ["coastal", "blue", "green", "yellow", "red", "red_edge", "nir1", "nir2"]
    assert scene_bands(dev, rgb, ["Red", "green", "blue"]) == rgb
    with pytest.raises(GeofoundryError, match=r"--bands names 2 bands .* the scene has 3"):
        scene_bands(dev, rgb, ["red", "green"])
    with pytest.raises(GeofoundryError, match=r"lack \['blue'\]"):
        scene_bands(dev, rgb, ["nir", "red", "green"])
    with pytest.raises(GeofoundryError, match=r"lack \['pan'\]; the model needs"):
        scene_bands(eight, ["red", "green", "blue", "pan"])
    with pytest.warns(UserWarning, match="assuming the model's order"):
        assert scene_bands(dev, rgb) == rgb
    with pytest.raises(GeofoundryError, match="3 unnamed bands, the model needs 4"):
        scene_bands(dev, [*rgb, "nir"])
    catalog = pd.read_csv(spacenet_root / "scenes.csv").set_index("scene_id")["gsd_m"]
    for path, gsd in [(dev, 0.29858), (eight, catalog[eight.stem])]:
        with rasterio.open(path) as ds:
            assert abs(scene_gsd_m(ds) / gsd - 1) < 0.01, path
