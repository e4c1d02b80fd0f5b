"""Device augmentations on a real chip: D4 matches albumentations on image and target, colour keeps the range."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from albumentations.augmentations.geometric.functional import d4 as albu_d4

from geofoundry.config import DeviceAugmentConfig, TrainConfig
from geofoundry.models.input_spec import InputSpec
from geofoundry.train.data import ChipDataset
from geofoundry.train.device_augment import IDENTITY, apply, draw
from geofoundry.train.targets import Target

ALBU = ["e", "r90", "r180", "r270", "t", "v", "hvt", "h"]  # albumentations' names of elements 0–7


@pytest.fixture(scope="module")
def chip(chips_dir):
    """A real train chip with buildings: CHW uint8 image, label mask with an ignored corner, border+contact target."""
    spec = InputSpec.load(chips_dir / "stats.json")
    target = Target(len(spec.classes), "footprint_border_contact")
    ds = ChipDataset(chips_dir / "train", target, spec.ignore_index)
    i = int(np.argmax([((m > 0) & (m != spec.ignore_index)).mean() for m in ds.labels]))
    mask = np.array(ds.labels[i])
    mask[:9, :30] = spec.ignore_index  # not symmetric under any D4 element
    image, _, params = ds[i]
    assert params.tolist() == list(IDENTITY)  # no seed: identity
    return image.numpy(), mask, target, spec.ignore_index


def batch(image: np.ndarray, encoded: np.ndarray, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` copies of a chip as ``to_device`` makes them: float [0, 1] channels_last, long targets."""
    x = torch.from_numpy(image).float().div(255).expand(n, -1, -1, -1).contiguous(memory_format=torch.channels_last)
    return x, torch.from_numpy(encoded).long().expand(n, -1, -1).contiguous()


def test_d4_matches_albumentations_on_image_and_target(chip):
    image, mask, target, ignore = chip
    x, y = batch(image, target.encode(mask, ignore), 8)
    params = torch.tensor([IDENTITY] * 8)
    params[:, 0] = torch.tensor([3, 0, 7, 1, 6, 2, 5, 4])  # groups out of batch order
    ax, ay = apply(x, y, params, DeviceAugmentConfig(d4=True, brightness=0.2, p_color=0.0))
    assert ax.is_contiguous(memory_format=torch.channels_last) and ay.dtype == torch.long
    hwc = np.moveaxis(image, 0, -1)
    for b, k in enumerate(params[:, 0].long().tolist()):
        ref = torch.from_numpy(np.ascontiguousarray(albu_d4(hwc, ALBU[k]))).permute(2, 0, 1).float().div(255)
        assert torch.equal(ax[b], ref), ALBU[k]
        # the target of the transformed labels: encoding commutes with D4, ignored pixels included
        np.testing.assert_array_equal(ay[b].numpy(), target.encode(albu_d4(mask, ALBU[k]), ignore), ALBU[k])
    assert len(np.unique(ay.numpy())) == 5  # background, building, border, contact, ignore


def test_photometric_keeps_the_range_and_leaves_targets_alone(chip):
    image, mask, target, ignore = chip
    x, y = batch(image, target.encode(mask, ignore), 4)
    params = torch.tensor([[0, 1.2, 0.2, 0.0], [0, 0.8, -0.2, 0.0], IDENTITY, [0, 1.0, 0.0, 0.05]])
    torch.manual_seed(0)
    ax, ay = apply(x, y, params, DeviceAugmentConfig(d4=False, brightness=0.2, contrast=0.2, noise=0.05, p_color=1.0))
    assert torch.equal(ay, y) and ax.is_contiguous(memory_format=torch.channels_last)
    assert ax.min() >= 0 and ax.max() <= 1 and (ax[0] == 1).any() and (ax[1] == 0).any()
    torch.testing.assert_close(ax[:2], (x[:2] * params[:2, 1, None, None, None] + params[:2, 2, None, None, None])
                               .clamp(0, 1))
    assert torch.equal(ax[2], x[2])
    inside = (ax[3] > 0) & (ax[3] < 1)
    assert abs(float((ax[3] - x[3])[inside].std()) - 0.05) < 0.005


def test_nothing_declared_passes_the_batch_through(chip):
    image, mask, target, ignore = chip
    x, y = batch(image, target.encode(mask, ignore), 2)
    off = DeviceAugmentConfig(d4=False, brightness=0.2, contrast=0.2, p_color=0.0)
    ax, ay = apply(x, y, torch.tensor([[3, 1.2, 0.2, 0.0]] * 2), off)  # parameters ignored, not even uploaded
    assert ax is x and ay is y


def test_draw_is_the_seeds_own():
    cfg = DeviceAugmentConfig(d4=True, brightness=0.2, contrast=0.1, noise=0.03, p_color=0.3)
    p = draw(range(2000), cfg)
    assert p.shape == (2000, 4) and p.dtype == np.float32
    assert np.array_equal(draw([7], cfg)[0], p[7]) and np.array_equal(draw([5, 7], cfg)[1], p[7])
    assert draw([7], None).tolist() == [list(IDENTITY)] and draw([], cfg).shape == (0, 4)
    assert set(p[:, 0]) == set(range(8)) and (draw(range(50), cfg.model_copy(update={"d4": False}))[:, 0] == 0).all()
    changed = p[:, 3] > 0
    assert 0.25 < changed.mean() < 0.35 and (p[~changed, 1:] == IDENTITY[1:]).all()
    assert np.abs(p[:, 1] - 1).max() <= 0.1 and np.abs(p[:, 2]).max() <= 0.2


def test_d4_refuses_oblong_chips():
    d4 = DeviceAugmentConfig(d4=True)
    with pytest.raises(ValueError, match=r"augment\[1\] \(RandomCrop\) makes 192×128 chips, but device_augment.d4"):
        TrainConfig(augment=[{"GaussianBlur": None}, {"RandomCrop": {"height": 192, "width": 128}}], device_augment=d4)
    with pytest.raises(ValueError, match=r"RandomResizedCrop\) makes 128×96"):
        TrainConfig(augment=[{"RandomResizedCrop": {"size": [128, 96]}}], device_augment=d4)
    TrainConfig(augment=[{"RandomCrop": {"height": 192, "width": 192}}], device_augment=d4)
    TrainConfig(augment=[{"RandomCrop": {"height": 192, "width": 128}}], device_augment=DeviceAugmentConfig(d4=False))
    with pytest.raises(ValueError, match="needs square chips"):  # the library's own guard
        apply(torch.zeros(2, 3, 8, 6), torch.zeros(2, 8, 6, dtype=torch.long), torch.tensor([IDENTITY] * 2), d4)
