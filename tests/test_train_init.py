"""train.init_from on real registry models: what loads is equal to the file, bands and classes adapted by the
documented rules, bad files refused by name; train.freeze_encoder_epochs keeps the encoder as it was."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
import yaml

from geofoundry import train
from geofoundry.config import TrainConfig
from geofoundry.errors import GeofoundryError
from geofoundry.models.checkpoint import save_checkpoint
from geofoundry.models.encoder_file import save_encoder
from geofoundry.models.registry import build_model
from geofoundry.train.init_apply import apply
from geofoundry.train.init_source import read_source

from .faults.conftest import link_tree, run_stage
from .project import ROOT, tiny_params
from .test_resume import finish, kill_and_resume, same_run, start

RGB = ["red", "green", "blue"]
CLASSES = ["background", "building"]


def model(arch: str = "unet", bands: int = 3, classes: int = 2, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(arch, bands, classes)


@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / "init" / "release.pt"
    save_checkpoint(path, model(seed=1), preset="unet", bands=RGB, classes=CLASSES)
    return path


@pytest.fixture
def encoder_file(tmp_path):
    path = tmp_path / "init" / "encoder.safetensors"
    save_encoder(path, model(seed=2).encoder, encoder_name="resnet18", bands=RGB, gsd_m=0.3, method="simclr",
                 source="test")
    return path


def state(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in net.state_dict().items()}


def test_checkpoint_loads_every_tensor_equal(checkpoint):
    net = model()
    report = apply(net, read_source(checkpoint), "unet", "all", RGB, CLASSES)
    given = torch.load(checkpoint, weights_only=True)["state_dict"]
    assert all(torch.equal(v, given[k]) for k, v in net.state_dict().items())
    assert len(report["loaded"]) == len(given) and not report["skipped"] and not report["reshaped"]


def test_encoder_file_loads_the_encoder_and_leaves_the_decoder(encoder_file):
    net = model()
    before = state(net)
    report = apply(net, read_source(encoder_file), "unet", "all", RGB, CLASSES)
    source = model(seed=2).encoder.state_dict()
    after = net.state_dict()
    assert all(torch.equal(after[f"encoder.{k}"], v) for k, v in source.items())
    assert all(torch.equal(after[k], before[k]) for k in after if not k.startswith("encoder."))
    assert len(report["loaded"]) == len(source) and set(report["skipped"].values()) == {"not in the file"}


def test_encoder_part_of_a_checkpoint_into_another_decoder(checkpoint):
    net = model("linknet")
    before = state(net)
    report = apply(net, read_source(checkpoint), "linknet", "encoder", RGB, CLASSES)
    given = torch.load(checkpoint, weights_only=True)["state_dict"]
    after = net.state_dict()
    assert all(torch.equal(after[k], given[k]) for k in after if k.startswith("encoder."))
    assert all(torch.equal(after[k], before[k]) for k in after if not k.startswith("encoder."))
    assert report["unused"] and all(not k.startswith("encoder.") for k in report["unused"])


@pytest.mark.parametrize("bands", [[*RGB, "nir"], "spacenet"])
def test_first_convolution_adapted_by_band_name(checkpoint, spacenet_root, bands):
    if bands == "spacenet":  # the 8 WorldView-2 bands of the SpaceNet sample
        scenes = pd.read_csv(spacenet_root / "scenes.csv")
        bands = scenes.loc[scenes["bands"] == 8, "band_names"].iloc[0].split("|")
    net = model(bands=len(bands))
    report = apply(net, read_source(checkpoint), "unet", "all", bands, CLASSES)
    kernel = torch.load(checkpoint, weights_only=True)["state_dict"]["encoder.conv1.weight"]
    got = net.state_dict()["encoder.conv1.weight"]
    scale = 3 / len(bands)
    for i, band in enumerate(bands):
        want = kernel[:, RGB.index(band)] if band in RGB else kernel.mean(dim=1)
        torch.testing.assert_close(got[:, i], want * scale)
    assert list(report["reshaped"]) == ["encoder.conv1.weight"]
    assert len(report["loaded"]) == len(net.state_dict()) - 1


def test_other_classes_get_a_new_head(checkpoint):
    net = model(classes=4)
    before = state(net)
    classes = [*CLASSES, "border", "contact"]
    report = apply(net, read_source(checkpoint), "unet", "all", RGB, classes)
    assert set(report["skipped"]) == {"segmentation_head.0.weight", "segmentation_head.0.bias"}
    assert all(why.startswith("new head") for why in report["skipped"].values())
    after = net.state_dict()
    assert all(torch.equal(after[k], before[k]) for k in report["skipped"])
    given = torch.load(checkpoint, weights_only=True)["state_dict"]
    assert all(torch.equal(after[k], given[k]) for k in report["loaded"])


def test_a_bundle_is_refused_with_the_checkpoint_to_use():
    with pytest.raises(GeofoundryError, match=r"is a delivered bundle; .* batch normalisation folded into the "
                                              r"convolutions.*models/best\.pt of commit 454d46b5"):
        read_source(ROOT / "tests/fixtures/bundle_v3")


@pytest.mark.parametrize("case, message", [
    ("pickle", "not a readable weights-only checkpoint .*refused unread"),
    ("missing", "init/none.pt not found"),
    ("folder", "is a folder; give a checkpoint"),
    ("archive", "is an archive"),
    ("state_dict only", "not a geofoundry checkpoint"),
])
def test_bad_files_are_refused(tmp_path, case, message):
    path = tmp_path / "init" / {"missing": "none.pt", "archive": "bundle.zip", "folder": "x"}.get(case, "x.pt")
    path.parent.mkdir()
    if case == "pickle":
        torch.save(model(), path)  # a whole module: unpickling it would run code
    elif case == "folder":
        path.mkdir()
    elif case == "archive":
        path.write_bytes(b"PK\x03\x04")
    elif case == "state_dict only":
        torch.save(model().state_dict(), path)
    with pytest.raises(GeofoundryError, match=f"^train.init_from: .*{message}"):
        read_source(path)


def test_another_encoder_is_refused_with_the_fix(checkpoint, encoder_file):
    with pytest.raises(GeofoundryError, match=r"release\.pt holds preset 'unet' \(resnet18 encoder\), but arch "
                                              r"'deeplab' has a resnet34 encoder: set arch to unet or linknet"):
        apply(model("deeplab"), read_source(checkpoint), "deeplab", "all", RGB, CLASSES)
    with pytest.raises(GeofoundryError, match=r"holds a resnet18 encoder, but arch 'fpn' has a resnet34 encoder"):
        apply(model("fpn"), read_source(encoder_file), "fpn", "encoder", RGB, CLASSES)


def test_another_preset_needs_the_encoder_part(checkpoint):
    with pytest.raises(GeofoundryError, match="same encoder, another decoder\\): set train.init_parts: encoder"):
        apply(model("linknet"), read_source(checkpoint), "linknet", "all", RGB, CLASSES)


def test_nothing_matched_is_refused(tmp_path):
    path = tmp_path / "odd.safetensors"
    save_encoder(path, torch.nn.Linear(2, 2), encoder_name="resnet18", bands=RGB, gsd_m=None, method="", source="")
    with pytest.raises(GeofoundryError, match="nothing in .*odd.safetensors matched the model"):
        apply(model(), read_source(path), "unet", "all", RGB, CLASSES)


def test_training_from_a_checkpoint_records_it(chips_dir, tmp_path, checkpoint):
    cfg = TrainConfig(epochs=1, samples_per_epoch=4, batch_size=2, threads=1, init_from="init/release.pt")
    train.run(cfg, "unet", chips_dir, tmp_path / "models", None, root=tmp_path)
    ckpt = torch.load(tmp_path / "models" / "last.pt", weights_only=True)
    report = json.loads((tmp_path / "models" / "init.json").read_text())
    assert ckpt["init_from"]["sha256"] == report["from"]["sha256"] == read_source(checkpoint).sha256
    assert ckpt["init_from"]["kind"] == "checkpoint" and report["parts"] == "all"
    assert len(report["loaded"]) == len(ckpt["state_dict"])


def test_frozen_encoder_unchanged_then_trained(chips_dir, tmp_path, encoder_file):
    given = read_source(encoder_file).tensors
    runs = {}
    for frozen in (2, 1):
        cfg = TrainConfig(epochs=2, samples_per_epoch=4, batch_size=2, threads=1, lr=0.01,
                          init_from="init/encoder.safetensors", freeze_encoder_epochs=frozen)
        train.run(cfg, "unet", chips_dir, tmp_path / f"models-{frozen}", None, root=tmp_path)
        runs[frozen] = torch.load(tmp_path / f"models-{frozen}" / "last.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(runs[2][k], v) for k, v in given.items())  # weights and batch-norm statistics
    assert not torch.equal(runs[2]["decoder.blocks.0.conv1.0.weight"], runs[1]["decoder.blocks.0.conv1.0.weight"])
    assert not torch.equal(runs[1]["encoder.conv1.weight"], given["encoder.conv1.weight"])


@pytest.mark.slow  # tens of seconds on two cores
def test_a_killed_run_resumes_frozen_as_it_was(chips_dir, tmp_path, encoder_file):
    """Killed after its frozen epoch, a run resumes into the trained one and ends as an uninterrupted run."""
    cfg = TrainConfig(epochs=2, samples_per_epoch=4, batch_size=2, threads=1, init_from=str(encoder_file),
                      freeze_encoder_epochs=1)  # the resume tests' script trains linknet: a resnet18 encoder
    finish(start(chips_dir, tmp_path / "whole", cfg))
    kill_and_resume(chips_dir, tmp_path / "killed", cfg)
    same_run(tmp_path / "whole", tmp_path / "killed", cfg.epochs)


def test_train_stage_starts_from_the_init_folder(chips_dir, tmp_path, checkpoint):
    """The real stage script: init_from relative to the project, the report in models/, the summary logged."""
    train_params = {"init_from": "init/release.pt", "init_parts": "encoder", "freeze_encoder_epochs": 1}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params({"arch": "linknet", "train": train_params})))
    link_tree(chips_dir, tmp_path / "data" / "chips")
    proc = run_stage(tmp_path, "train")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "init from init/release.pt (checkpoint, sha256 " in proc.stderr
    assert "encoder frozen from epoch 1" in proc.stderr
    report = json.loads((tmp_path / "models" / "init.json").read_text())
    assert report["parts"] == "encoder" and all(k.startswith("encoder.") for k in report["loaded"])
    assert torch.load(tmp_path / "models" / "best.pt", weights_only=True)["init_from"]["path"] == "init/release.pt"
