"""Every loss term honours the ignore value: logits of ignored pixels change neither the loss nor other gradients;
class weights weigh each class's part of a term."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geofoundry.choices import CLASS_WEIGHTED_LOSSES, LOSSES
from geofoundry.config import TrainConfig
from geofoundry.errors import GeofoundryError
from geofoundry.models.input_spec import InputSpec
from geofoundry.train.losses import WeightedLoss
from geofoundry.train.run import class_weights
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
@pytest.mark.parametrize("name", [*LOSSES, "all", *(f"{n}-weighted" for n in CLASS_WEIGHTED_LOSSES)])
def test_ignored_pixels_do_not_count(name, kind, real_targets):
    ignore, targets = real_targets
    y, k = targets[kind]
    assert (y == ignore).any() and (y != ignore).any()
    weights = dict.fromkeys(LOSSES, 0.5) if name == "all" else {name.removesuffix("-weighted"): 1.0}
    loss_fn = WeightedLoss(weights, ignore, [1.0, *range(2, k + 1)] if name.endswith("-weighted") else None)
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


@pytest.mark.parametrize("name", CLASS_WEIGHTED_LOSSES)
def test_class_weights(name, real_targets):
    """Equal class weights change nothing; cross-entropy weighs each pixel by its true class; a class weighed more
    draws a larger share of the gradient."""
    ignore, targets = real_targets
    y, k = targets["footprint_border_contact"]
    logits = torch.randn(*y.shape[:1], k, *y.shape[1:], generator=torch.Generator().manual_seed(1))
    plain = WeightedLoss({name: 1.0}, ignore)(logits, y)
    torch.testing.assert_close(WeightedLoss({name: 1.0}, ignore, [1.0] * k)(logits, y), plain)
    heavy = [1.0] * (k - 2) + [5.0, 1.0]  # border (class k - 2) five times the others
    if name == "ce":
        keep = y != ignore
        nll = torch.nn.functional.cross_entropy(logits, y.clamp(max=k - 1), reduction="none")[keep]
        w = torch.tensor(heavy)[y[keep]]
        torch.testing.assert_close(WeightedLoss({"ce": 1.0}, ignore, heavy)(logits, y), (w * nll).sum() / w.sum())
    shares = []
    for weights in ([1.0] * k, heavy):
        x = logits.clone().requires_grad_(True)
        WeightedLoss({name: 1.0}, ignore, weights)(x, y).backward()
        g = x.grad.abs().sum(dim=1)  # gradient per pixel
        shares.append(float(g[y == k - 2].sum() / g[y != ignore].sum()))
    assert shares[1] > shares[0]


def test_class_weights_refused():
    with pytest.raises(ValueError, match="take no class weights"):
        TrainConfig(loss={"ce": 1.0, "lovasz": 1.0}, class_weights={"border": 3.0})
    with pytest.raises(ValueError, match="must be > 0"):
        TrainConfig(class_weights={"border": 0.0})
    assert class_weights({}, ["background", "building", "border"]) is None
    assert class_weights({"border": 3.0}, ["background", "building", "border"]) == [1.0, 1.0, 3.0]
    with pytest.raises(GeofoundryError, match=r"no output class \['contact'\]; the outputs are"):
        class_weights({"contact": 3.0}, ["background", "building", "border"])
