"""params.yaml validation: a typo or a bad value fails with a message that names the key."""

from __future__ import annotations

import pytest
import yaml

from geofoundry.errors import GeofoundryError
from geofoundry.pipeline.params import load_params

from .project import ROOT


def write(tmp_path, mutate) -> str:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    mutate(params)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_project_params_are_valid():
    params = load_params(ROOT / "params.yaml")
    assert params.arch == "unet" and params.postprocess.steps


@pytest.mark.parametrize("mutate, expected", [
    (lambda p: p["train"].update(epocs=3), "train.epocs: unknown key"),
    (lambda p: p["pretrain"].update(method="mae"), "pretrain.method"),
    (lambda p: p["pretrain"].update(view_px=100), "pretrain.view_px"),
    (lambda p: p["pretrain"].update(view_px=512), "view_px 512 is larger than tile_px 256"),
    (lambda p: p["pretrain"].update(scale=[0.8, 0.2]), "scale [0.8, 0.2] must satisfy"),
    (lambda p: p["pretrain"].update(epochs=-1), "pretrain.epochs"),
    (lambda p: p["select"].update(sites=["nairobi_ke"], split={**p["select"]["split"], "holdout_site": "kampala_ug"}),
     "split.holdout_site 'kampala_ug' is not among the selected sites"),
    (lambda p: p["select"]["split"].update(holdout_site="kampala_ug", fractions={"train": 0, "val": 0.5, "test": 0.5}),
     "holdout_site needs fractions.train > 0"),
    (lambda p: p["train"].update(lr="fast"), "train.lr"),
    (lambda p: p["select"]["split"]["fractions"].update(test=0.5), "fractions must be >= 0 and sum to 1"),
    (lambda p: p["predict"].update(overlap=400), "overlap (400) must be at most half the tile"),
    (lambda p: p["predict"].update(engine="tensorrt"), "predict.engine"),
    (lambda p: p["select"].update(classes=["a/b/c/d/e"]), "at most 4 are supported"),
    (lambda p: p["train"].update(loss={"dize": 1.0}), "unknown loss ['dize']"),
    (lambda p: p.update(selct={}), "selct: unknown key"),
])
def test_bad_params_name_the_key(tmp_path, mutate, expected):
    with pytest.raises(GeofoundryError) as err:
        load_params(write(tmp_path, mutate))
    assert expected in str(err.value)
    assert "params.yaml" in str(err.value)


def test_missing_params_file(tmp_path):
    with pytest.raises(GeofoundryError, match="parameters file not found"):
        load_params(tmp_path / "params.yaml")
