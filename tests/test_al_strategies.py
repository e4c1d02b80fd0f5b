"""Active-learning strategies on maps and embeddings with known answers: the uncertainty measures, the ranking of
tiles by a model whose uncertainty is known per tile, k-center and hybrid picks, and the registry."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from geofoundry.al.score import OnnxProber, Scorer, TorchProber, footprint_distribution
from geofoundry.al.strategies import STRATEGIES, entropy, margin, mutual_information, pick
from geofoundry.config import AL_STRATEGIES
from geofoundry.errors import GeofoundryError
from geofoundry.pipeline.params import load_params

from .project import ROOT


def two_class(p: np.ndarray) -> np.ndarray:
    """(T=1, C=2, ...) samples of a foreground probability map ``p``."""
    return np.stack([1 - p, p])[None]


def test_uncertainty_measures_known_values():
    p = np.array([0.5, 1.0, 0.0, 0.9])
    assert entropy(two_class(p)) == pytest.approx([1, 0, 0, -(0.9 * np.log(0.9) + 0.1 * np.log(0.1)) / np.log(2)])
    assert margin(two_class(p)) == pytest.approx([1, 0, 0, 0.2])
    agree = np.concatenate([two_class(np.full(2, 0.5))] * 3)  # three samples that agree (all unsure)
    assert mutual_information(agree) == pytest.approx([0, 0])
    split = np.concatenate([two_class(np.array([1.0])), two_class(np.array([0.0]))])  # confident, opposite
    assert mutual_information(split) == pytest.approx([1])  # H(mean) = 1, mean H = 0
    assert entropy(split) == pytest.approx([1])


def test_border_model_outputs_collapse_to_footprints():
    """background, building, border, contact → background+contact, building+border."""
    prob = np.array([0.1, 0.3, 0.4, 0.2], dtype=np.float32).reshape(1, 4, 1, 1)
    dist = footprint_distribution(prob, ("border", "contact"))
    assert dist[:, 0, 0, 0] == pytest.approx([0.3, 0.7])


class Brightness(nn.Module):
    """A known model: p(building) = sigmoid(k·(x̄ − 0.5)) from the pixel's mean band value x̄ ∈ [0, 1], and a
    deepest 'encoder' feature equal to that mean (its embedding)."""

    def __init__(self, k: float = 8.0):
        super().__init__()
        self.k = k
        self.encoder = lambda x: [x.mean(1, keepdim=True)]

    def forward(self, x):
        z = self.k * (x.mean(1, keepdim=True) - 0.5)
        return torch.cat([torch.zeros_like(z), z], 1)


def uniform_chips(values: list[int], size: int = 8) -> np.ndarray:
    return np.stack([np.full((3, size, size), v, np.uint8) for v in values])


def test_entropy_ranks_tiles_by_their_known_uncertainty():
    """Tiles whose pixels sit at p = 0.5 are the least certain; bright or dark tiles are sure."""
    values = [250, 128, 10, 150, 100]  # p ≈ 0.979, 0.502, 0.024, 0.67, 0.30
    prober = TorchProber([Brightness()], ["background", "building"], "cpu")
    scorer = Scorer(prober, STRATEGIES["entropy"], ["background", "building"])
    chips = uniform_chips(values)
    scorer.add(chips, np.ones((5, 8, 8), bool), np.arange(5))
    order = [p.index for p in scorer.pick(5, seed=0)]
    assert order == [1, 3, 4, 2, 0]
    x = np.array(values) / 255
    p = 1 / (1 + np.exp(-8 * (x - 0.5)))
    expected = -(p * np.log(p) + (1 - p) * np.log(1 - p)) / np.log(2)
    assert scorer.candidates.scores() == pytest.approx(expected, rel=1e-4)


def test_a_bundle_model_ranks_alike_from_raw_values():
    """A bundle's model takes raw band values (the stretch undone, here over [10, 250]) and gives probabilities; the
    same known model scores the same, and the diverse strategies are refused (no encoder)."""
    low, high = [10.0] * 3, [250.0] * 3

    def fn(raw: np.ndarray) -> np.ndarray:  # what the ONNX model computes: stretch, then Brightness
        x = np.clip((raw - 10.0) / 240.0, 0, 1).mean(1, keepdims=True)
        p = 1 / (1 + np.exp(-8 * (x - 0.5)))
        return np.concatenate([1 - p, p], 1).astype(np.float32)

    chips = uniform_chips([250, 128, 10, 150, 100])
    scores = []
    for prober in (OnnxProber(fn, ["background", "building"], low, high, "flips"),
                   TorchProber([Brightness()], ["background", "building"], "cpu")):
        scorer = Scorer(prober, STRATEGIES["entropy"], ["background", "building"])
        scorer.add(chips, np.ones((5, 8, 8), bool), np.arange(5))
        scores.append(scorer.candidates.scores())
    assert scores[0] == pytest.approx(scores[1], rel=1e-4)
    with pytest.raises(GeofoundryError, match="need the trained checkpoint's encoder"):
        Scorer(OnnxProber(fn, ["background", "building"], low, high), STRATEGIES["coreset"],
               ["background", "building"]).add(chips, np.ones((5, 8, 8), bool), np.arange(5))


def test_uncertainty_is_averaged_over_wanted_pixels_only():
    """A tile's labelled (unwanted) pixels do not count: half sure, half unsure pixels score as the unsure half."""
    chip = uniform_chips([250])
    chip[0, :, :, 4:] = 128
    wanted = np.zeros((1, 8, 8), bool)
    wanted[0, :, 4:] = True
    prober = TorchProber([Brightness()], ["background", "building"], "cpu")
    scorer = Scorer(prober, STRATEGIES["margin"], ["background", "building"])
    scorer.add(chip, wanted, np.array([0]))
    assert scorer.candidates.scores()[0] == pytest.approx(1 - abs(2 / (1 + np.exp(-8 * (128 / 255 - 0.5))) - 1),
                                                          rel=1e-4)


class LeftRight(nn.Module):
    """Not flip-invariant: p(building) follows the brightness of the left half of the chip, so a left-right flip
    changes the answer on chips whose halves differ, and on no uniform chip."""

    def forward(self, x):
        left = x[..., : x.shape[-1] // 2].mean((1, 2, 3), keepdim=True)
        z = (20 * (left - 0.5)).expand(-1, 1, *x.shape[-2:])
        return torch.cat([torch.zeros_like(z), z], 1)


def test_tta_disagreement_is_zero_where_transforms_agree():
    chips = uniform_chips([40, 40])
    chips[1, :, :, :4] = 250  # bright left half: a flip makes it dark
    prober = TorchProber([LeftRight()], ["background", "building"], "cpu", al_tta="flips")
    scorer = Scorer(prober, STRATEGIES["tta_disagreement"], ["background", "building"])
    scorer.add(chips, np.ones((2, 8, 8), bool), np.arange(2))
    scores = scorer.candidates.scores()
    assert scores[0] == pytest.approx(0, abs=1e-6) and scores[1] > 0.3


def test_mc_dropout_needs_dropout():
    chips = uniform_chips([128])
    no_dropout = TorchProber([Brightness()], ["background", "building"], "cpu")
    with pytest.raises(GeofoundryError, match="mc_dropout: the model has no dropout layer"):
        Scorer(no_dropout, STRATEGIES["mc_dropout"], ["background", "building"]).add(chips, np.ones((1, 8, 8), bool),
                                                                                      np.arange(1))
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 1), nn.Dropout2d(0.5), nn.Conv2d(8, 2, 1))
    scorer = Scorer(TorchProber([net], ["background", "building"], "cpu", mc_samples=16), STRATEGIES["mc_dropout"],
                    ["background", "building"])
    scorer.add(chips, np.ones((1, 8, 8), bool), np.arange(1))
    assert scorer.candidates.scores()[0] > 0
    assert not net[1].training  # dropout is off again after the passes


def test_coreset_picks_farthest_first_then_spreads():
    """Embeddings on a line: labelled at 0; candidates at 1, 2, 9, 10 → 10 first, then 2 (8 from 10, 2 from 0)."""
    emb = np.array([[1.0], [2.0], [9.0], [10.0]])
    picks = pick(STRATEGIES["coreset"], 2, 4, embeddings=emb, labelled=np.array([[0.0]]))
    assert [p.index for p in picks] == [3, 1]
    assert "distance 10.0000" in picks[0].reason


def test_hybrid_weighs_uncertainty_by_distance():
    """Two unsure tiles side by side and a less unsure one far away: after the first unsure one, the far one."""
    emb = np.array([[10.0], [10.1], [0.0]])
    scores = np.array([1.0, 0.95, 0.6])
    picks = pick(STRATEGIES["hybrid"], 3, 3, scores=scores, embeddings=emb, labelled=np.array([[5.0]]))
    assert [p.index for p in picks] == [0, 2, 1]
    assert [p.index for p in pick(STRATEGIES["entropy"], 3, 3, scores=scores)] == [0, 1, 2]


def test_random_is_seeded():
    a = [p.index for p in pick(STRATEGIES["random"], 4, 10, seed=3)]
    assert a == [p.index for p in pick(STRATEGIES["random"], 4, 10, seed=3)] and len(set(a)) == 4
    assert a != [p.index for p in pick(STRATEGIES["random"], 4, 10, seed=4)]


def test_registry_is_the_validated_names(tmp_path):
    assert tuple(STRATEGIES) == AL_STRATEGIES
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert load_params(ROOT / "params.yaml").al.strategy in STRATEGIES
    params["al"]["strategy"] = "entropi"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(GeofoundryError, match=r"al\.strategy"):
        load_params(tmp_path / "params.yaml")
