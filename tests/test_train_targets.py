"""Footprint + border + contact targets on real chips, and a training run that learns them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from geofoundry import train
from geofoundry.config import TrainConfig
from geofoundry.models.checkpoint import load_checkpoint, model_from_checkpoint
from geofoundry.models.input_spec import InputSpec
from geofoundry.train.augment import build_augment, reseed
from geofoundry.train.data import ChipDataset
from geofoundry.train.metrics import object_matches
from geofoundry.train.targets import Target, components

SQUARE = np.ones((3, 3), bool)


@pytest.fixture(scope="module")
def real(chips_dir):
    """Label masks of the real train chips with the most objects, and the chips' spec."""
    spec = InputSpec.load(chips_dir / "stats.json")
    labels = np.load(chips_dir / "train" / "labels.npy", mmap_mode="r")
    order = np.argsort([-components(np.array(m), spec.ignore_index).max() for m in labels])
    return spec, [np.array(labels[i]) for i in order[:4]]


@pytest.mark.parametrize("kind", ["classes", "footprint_border", "footprint_border_contact"])
def test_footprint_and_ignore_are_kept(real, kind):
    spec, masks = real
    target = Target(len(spec.classes), kind)
    for mask in masks:
        enc = target.encode(mask, spec.ignore_index)
        valid = mask != spec.ignore_index
        np.testing.assert_array_equal(target.footprint(enc) & valid, (mask > 0) & valid)
        np.testing.assert_array_equal(enc == spec.ignore_index, ~valid)
        assert enc.max(where=valid, initial=0) < len(target.names(spec.classes))


def test_border_and_contact_follow_their_definitions(real):
    spec, masks = real
    target = Target(len(spec.classes), "footprint_border_contact", border_px=2, contact_px=3)
    border_id, contact_id = len(spec.classes), len(spec.classes) + 1
    n_contact = 0
    for mask in masks:
        enc = target.encode(mask, spec.ignore_index)
        valid = mask != spec.ignore_index
        ids = components(mask, spec.ignore_index)
        objects = ids > 0
        # border: object pixels whose 5×5 window reaches background or another object
        near_other = np.zeros_like(objects)
        for i in range(1, ids.max() + 1):
            near_other |= objects & (ids != i) & ndi.binary_dilation(ids == i, SQUARE, iterations=2)
        near_other |= objects & ndi.binary_dilation(~objects, SQUARE, iterations=2)
        np.testing.assert_array_equal(enc == border_id, near_other & valid)
        # contact: background pixels that two or more objects, grown by 3 px, both cover
        cover = sum(ndi.binary_dilation(ids == i, SQUARE, iterations=3).astype(int) for i in range(1, ids.max() + 1))
        np.testing.assert_array_equal(enc == contact_id, (cover >= 2) & ~objects & valid)
        n_contact += int((enc == contact_id).sum())
    assert n_contact > 0


def test_instance_ids_split_touching_objects(real):
    spec, masks = real
    target = Target(len(spec.classes), "footprint_border")
    mask = masks[0]
    ids = components(mask, spec.ignore_index)
    biggest = np.argmax(np.bincount(ids.ravel())[1:]) + 1
    cols = np.flatnonzero((ids == biggest).any(0))
    split = ids.copy()
    split[:, cols[len(cols) // 2]:][ids[:, cols[len(cols) // 2]:] == biggest] = ids.max() + 1  # one object → two
    without, with_ids = target.encode(mask, spec.ignore_index), target.encode(mask, spec.ignore_index, split)
    cut = (with_ids == len(spec.classes)) & (without != len(spec.classes))
    assert cut.any() and (ids[cut] == biggest).all()


def test_objects_come_back_from_the_target(real):
    spec, masks = real
    target = Target(len(spec.classes), "footprint_border_contact")
    for mask in masks:
        truth = components(mask, spec.ignore_index)
        found = target.instances(target.encode(mask, spec.ignore_index))
        tp, n_found, n_truth = object_matches(found, truth)
        assert n_truth > 0 and 2 * tp / (n_found + n_truth) > 0.85  # thin necks may split an object in two


def test_training_with_border_and_contact_targets(chips_dir, tmp_path):
    cfg = TrainConfig(epochs=1, samples_per_epoch=4, batch_size=2, threads=1, target="footprint_border_contact",
                      augment=[{"RandomCrop": {"height": 64, "width": 64}}])
    out = train.run(cfg, "linknet", chips_dir, tmp_path / "models", tmp_path / "live")
    assert 0 <= out["last"]["val/object_f1"] <= 1
    ckpt = load_checkpoint(tmp_path / "models" / "best.pt", ["red", "green", "blue"])
    assert ckpt["classes"] == ["background", "building", "border", "contact"]
    assert ckpt["target"] == "footprint_border_contact" and ckpt["border_px"] == 2
    with torch.no_grad():
        assert model_from_checkpoint(ckpt)(torch.zeros(1, 3, 64, 64)).shape == (1, 4, 64, 64)


def test_instances_npy_travels_with_the_augmentation(chips_dir, tmp_path):
    spec = InputSpec.load(chips_dir / "stats.json")
    split = tmp_path / "train"
    split.mkdir()
    labels = np.load(chips_dir / "train" / "labels.npy")[:6]
    np.save(split / "labels.npy", labels)
    np.save(split / "images.npy", np.load(chips_dir / "train" / "images.npy", mmap_mode="r")[:6])
    ids = np.stack([components(m, spec.ignore_index) for m in labels]).astype(np.uint16)
    np.save(split / "instances.npy", ids)
    target = Target(len(spec.classes), "footprint_border_contact")
    d4 = build_augment([{"D4": {}}], spec.ignore_index)  # keeps the components, so both ways must agree
    without = tmp_path / "without"
    without.mkdir()
    for name in ("labels", "images"):
        (without / f"{name}.npy").symlink_to(split / f"{name}.npy")
    with_ids, without = (ChipDataset(d, target, spec.ignore_index, d4) for d in (split, without))
    assert with_ids.instances is not None and without.instances is None
    for i in range(6):
        np.testing.assert_array_equal(with_ids[(i, 11)][1].numpy(), without[(i, 11)][1].numpy())
    affine = build_augment([{"Affine": {"rotate": [10, 40], "p": 1.0}}], spec.ignore_index)
    for i in range(6):  # rotated with the labels: instance ids exactly on the object pixels
        out = reseed(affine, i)(image=np.moveaxis(with_ids.images[i], 0, -1), masks=[labels[i], ids[i]])["masks"]
        valid = out[0] != spec.ignore_index
        np.testing.assert_array_equal((out[1] > 0)[valid], (out[0] > 0)[valid])


def test_preprocess_instances_split_touching_buildings(chips_dir):
    """instances.npy (written by preprocess from the label polygons) numbers touching buildings apart: their
    border targets then separate more objects than connected components of the class mask, which merge them."""
    spec = InputSpec.load(chips_dir / "stats.json")
    labels = np.load(chips_dir / "train" / "labels.npy", mmap_mode="r")
    ids = np.load(chips_dir / "train" / "instances.npy", mmap_mode="r")
    assert ids.dtype == np.uint16 and ids.shape == labels.shape
    target, border = Target(len(spec.classes), "footprint_border"), len(spec.classes)
    touching, counts = 0, np.zeros((2, 2), int)  # [with ids, components] × [border pixels, objects]
    for mask, inst in zip(labels, ids):
        mask, inst = np.array(mask), np.array(inst)
        valid = mask != spec.ignore_index
        np.testing.assert_array_equal(inst > 0, (mask > 0) & valid)  # ids exactly on the object pixels
        touching += len(np.unique(inst[inst > 0])) > components(mask, spec.ignore_index).max()
        for row, enc in enumerate([target.encode(mask, spec.ignore_index, inst), target.encode(mask, spec.ignore_index)]):
            counts[row] += (enc == border).sum(), target.instances(enc).max()
    assert touching >= 3, "Kampala's touching buildings appear in several chips"
    assert counts[0, 0] > counts[1, 0] and counts[0, 1] > counts[1, 1], counts
