"""Every loss term honours the ignore value: logits of ignored pixels change neither the loss nor other gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geofoundry.config import LOSSES, TrainConfig
from geofoundry.preprocess.stats import InputSpec
from geofoundry.train.losses import WeightedLoss
from geofoundry.train.targets import Target


@pytest.fixture(scope="module")
def real_targets(chips_dir):
    """Targets of 2 real train chips with objects (classes and footprint_border_contact), a nodata corner added."""
    spec = InputSpec.load(chips_dir / "stats.json")
    labels = np.load(chips_dir / "train" / "labels.npy", mmap_mode="r")
    masks = [np.array(m) for m in labels if ((m > 0) & (m != spec.ignore_index)).any()][:2]
    for m in masks:
        m[:40, :40] = spec.ignore_index
    out = {}
    for kind in ("classes", "footprint_border_contact"):
        target = Target(len(spec.classes), kind)
        y = torch.from_numpy(np.stack([target.encode(m, spec.ignore_index) for m in masks])).long()
        out[kind] = (y, len(target.names(spec.classes)))
    return spec.ignore_index, out


@pytest.mark.parametrize("kind", ["classes", "footprint_border_contact"])
@pytest.mark.parametrize("name", [*LOSSES, "all"])
def test_ignored_pixels_do_not_count(name, kind, real_targets):
    ignore, targets = real_targets
    y, k = targets[kind]
    assert (y == ignore).any() and (y != ignore).any()
    weights = dict.fromkeys(LOSSES, 0.5) if name == "all" else {name: 1.0}
    loss_fn = WeightedLoss(weights, ignore)
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(*y.shape[:1], k, *y.shape[1:], generator=gen, requires_grad=True)
    loss = loss_fn(logits, y)
    loss.backward()
    ignored = (y == ignore).unsqueeze(1).expand_as(logits)
    assert torch.isfinite(loss) and loss > 0
    assert logits.grad[ignored].abs().max() == 0

    noisy = logits.detach().clone()
    noisy[ignored] = torch.randn(int(ignored.sum()), generator=gen) * 50
    noisy.requires_grad_(True)
    again = loss_fn(noisy, y)
    again.backward()
    torch.testing.assert_close(again, loss.detach(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(noisy.grad, logits.grad, rtol=1e-5, atol=1e-7)


def test_unknown_loss_is_refused():
    with pytest.raises(ValueError, match="unknown loss"):
        TrainConfig(loss={"ce": 1.0, "hinge": 1.0})
