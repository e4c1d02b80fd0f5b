"""The encoder weights file: safetensors with metadata, written and read back, bad files refused by name."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from geofoundry.errors import GeofoundryError
from geofoundry.models.encoder_file import FORMAT, load_encoder, save_encoder
from geofoundry.models.registry import build_model

BANDS = ["red", "green", "blue"]


def test_round_trip_keeps_every_tensor_and_the_metadata(tmp_path):
    encoder = build_model("unet", 3, 2).encoder
    path = tmp_path / "enc.safetensors"
    save_encoder(path, encoder, encoder_name="resnet18", bands=BANDS, gsd_m=0.5, method="simclr", source="t")
    tensors, meta = load_encoder(path)
    assert tensors.keys() == encoder.state_dict().keys()
    assert all(torch.equal(tensors[k], v) for k, v in encoder.state_dict().items())
    assert (meta.encoder, meta.in_channels, meta.bands, meta.gsd_m, meta.method) == ("resnet18", 3, BANDS, 0.5, "simclr")


def test_unknown_gsd_is_empty(tmp_path):
    save_encoder(tmp_path / "e.safetensors", build_model("unet", 4, 2).encoder, encoder_name="resnet18",
                 bands=[*BANDS, "nir"], gsd_m=None, method="", source="")
    assert load_encoder(tmp_path / "e.safetensors")[1].gsd_m is None


@pytest.mark.parametrize("change, message", [
    ({"format": "other/1"}, "not a geofoundry encoder weights file"),
    ({"bands": "red"}, "JSON list of band names"),
    ({"in_channels": "4"}, "in_channels 4 but 3 band names"),
    ({"gsd_m": "fine"}, "gsd_m must be a number"),
])
def test_bad_metadata_is_refused(tmp_path, change, message):
    meta = {"format": FORMAT, "encoder": "resnet18", "in_channels": "3", "bands": json.dumps(BANDS), "gsd_m": "",
            "method": "", "source": "", **change}
    save_file({"conv1.weight": torch.zeros(1)}, str(tmp_path / "e.safetensors"), metadata=meta)
    with pytest.raises(GeofoundryError, match=message):
        load_encoder(tmp_path / "e.safetensors")


def test_a_pickle_or_a_missing_file_is_refused(tmp_path):
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "e.pt")
    with pytest.raises(GeofoundryError, match="not a safetensors encoder weights file"):
        load_encoder(tmp_path / "e.pt")
    with pytest.raises(GeofoundryError, match="not found"):
        load_encoder(tmp_path / "none.safetensors")
