"""Augmentations from params keep image and mask aligned on real chips, pad masks with ignore, are seeded per sample."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from geofoundry.config import DeviceAugmentConfig
from geofoundry.errors import GeofoundryError
from geofoundry.models.input_spec import InputSpec
from geofoundry.train.augment import build_augment, reseed
from geofoundry.train.data import ChipDataset, ChipSampler, loader
from geofoundry.train.device_augment import draw
from geofoundry.train.targets import Target

PIPELINE = [
    {"D4": {"p": 1.0}},
    {"Affine": {"scale": [0.8, 1.2], "translate_percent": [-0.1, 0.1], "rotate": [-30, 30], "p": 1.0}},
    {"ShiftScaleRotate": {"shift_limit": 0.05, "scale_limit": 0.1, "rotate_limit": 15, "p": 0.5}},
    {"RandomBrightnessContrast": {"brightness_limit": 0.2, "contrast_limit": 0.2, "p": 1.0}},
    {"GaussianBlur": {"blur_limit": [3, 3], "p": 1.0}},
    {"GaussNoise": {"std_range": [0.02, 0.05], "p": 1.0}},
]


@pytest.fixture(scope="module")
def chip(chips_dir):
    """A real train chip with buildings (HWC image, label mask) and the ignore value."""
    spec = InputSpec.load(chips_dir / "stats.json")
    ds = ChipDataset(chips_dir / "train", Target(len(spec.classes)), spec.ignore_index)
    i = int(np.argmax([((m > 0) & (m != spec.ignore_index)).mean() for m in ds.labels]))
    return np.ascontiguousarray(np.moveaxis(ds.images[i], 0, -1)), np.array(ds.labels[i]), spec.ignore_index


def agreement(bright: np.ndarray, building: np.ndarray, valid: np.ndarray) -> float:
    """Share of valid pixels, away (2 px) from building edges, where the painted mask and the mask agree."""
    core = valid & (ndi.binary_erosion(building, iterations=2) | ndi.binary_erosion(~building, iterations=2))
    return float((bright == building)[core].mean())


@pytest.mark.parametrize("seed", range(6))
def test_image_and_mask_stay_aligned(chip, seed):
    image, mask, ignore = chip
    pipeline = build_augment(PIPELINE, ignore)
    out = reseed(pipeline, seed)(image=image, mask=mask)
    # The same geometric draw applied to a picture of the mask itself: where it is bright, the mask is building.
    painted = np.repeat(((mask == 1) * 255).astype(np.uint8)[..., None], 3, axis=-1)
    twin = reseed(pipeline, seed)(image=painted, mask=mask)
    np.testing.assert_array_equal(twin["mask"], out["mask"])
    building, bright = out["mask"] == 1, twin["image"].mean(-1) > 127
    assert agreement(bright, building, out["mask"] != ignore) > 0.99
    assert agreement(bright[::-1], building, out["mask"] != ignore) < 0.9  # the check would see a misalignment
    assert out["image"].shape == image.shape and out["image"].dtype == np.uint8


def test_padding_is_ignored_not_background(chip):
    image, mask, ignore = chip
    pipeline = build_augment([{"Affine": {"rotate": [45, 45], "scale": [0.7, 0.7], "p": 1.0}}], ignore)
    out = reseed(pipeline, 0)(image=image, mask=mask)["mask"]
    assert out[0, 0] == ignore and out[-1, -1] == ignore
    assert set(np.unique(out)) <= set(np.unique(mask)) | {ignore}


def test_same_seed_same_sample_whatever_came_before(chip):
    image, mask, ignore = chip
    pipeline = build_augment(PIPELINE, ignore)
    first = reseed(pipeline, 3)(image=image, mask=mask)
    for s in range(4):
        reseed(pipeline, s)(image=image, mask=mask)
    again = reseed(pipeline, 3)(image=image, mask=mask)
    np.testing.assert_array_equal(first["image"], again["image"])
    np.testing.assert_array_equal(first["mask"], again["mask"])


def keys(sampler: ChipSampler) -> list[tuple[int, int]]:
    return [k for batch in sampler for k in batch]


def test_sampler_keys_depend_on_seed_and_epoch_only():
    positive = np.arange(50) % 3 == 0
    one = ChipSampler(positive, 40, 0.6, seed=1, batch_size=6)
    two = [ChipSampler(positive, 40, 0.6, seed=1, batch_size=6, rank=r, world=2) for r in (0, 1)]
    for epoch in (0, 3):
        for s in (one, *two):
            s.set_epochs(epoch, epoch + 1)
        shards = [keys(s) for s in two]
        assert len(shards[0]) == len(shards[1]) == 20 and not set(shards[0]) & set(shards[1])
        assert sorted(shards[0] + shards[1]) == sorted(keys(one)) == sorted(one.keys(epoch))
        chips = [c for c, _ in keys(one)]
        assert np.mean(positive[chips]) >= 0.6
    one.set_epochs(1, 2)
    assert keys(one) != sorted(keys(one)) and keys(one) == keys(one)


def test_sampler_batches_epoch_after_epoch_never_across():
    sampler = ChipSampler(np.arange(50) % 3 == 0, 20, 0.5, seed=4, batch_size=3, rank=1, world=2)
    sampler.set_epochs(2, 5)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 3 * sampler.steps and sampler.steps == 4
    for epoch in range(2, 5):
        mine = sampler.keys(epoch)[1::2]
        part = batches[(epoch - 2) * 4:(epoch - 1) * 4]
        assert [len(b) for b in part] == [3, 3, 3, 1] and [k for b in part for k in b] == mine


def test_unknown_transform_or_argument_is_refused():
    with pytest.raises(GeofoundryError, match="not an albumentations transform"):
        build_augment([{"FlipFlop": {}}], 255)
    misspelled = r"augment\[1\] Affine: unknown argument\(s\) \['scal'\]; it takes scale, "
    with pytest.raises(GeofoundryError, match=misspelled):
        build_augment([{"D4": None}, {"Affine": {"scal": 1.2, "p": 0.5}}], 255)


def test_batches_do_not_depend_on_workers(chips_dir):
    spec = InputSpec.load(chips_dir / "stats.json")
    device = DeviceAugmentConfig(d4=True, brightness=0.2, contrast=0.2, p_color=0.5)
    ds = ChipDataset(chips_dir / "train", Target(len(spec.classes), "footprint_border_contact"), spec.ignore_index,
                     build_augment(PIPELINE, spec.ignore_index), device)
    sampler = ChipSampler(ds.positive(), 8, 0.5, seed=2, batch_size=4)
    sampler.set_epochs(1, 2)
    batches = {w: list(loader(ds, sampler, workers=w, prefetch=2)) for w in (0, 2)}
    for (x0, y0, p0), (x2, y2, p2) in zip(batches[0], batches[2], strict=True):
        assert x0.dtype == torch.uint8 and x0.shape == (4, 3, 128, 128) and y0.shape == (4, 128, 128)
        assert torch.equal(x0, x2) and torch.equal(y0, y2) and torch.equal(p0, p2) and p0.shape == (4, 4)
    params = torch.cat([p for _, _, p in batches[0]])
    assert torch.equal(params, torch.from_numpy(draw([seed for _, seed in keys(sampler)], device)))
