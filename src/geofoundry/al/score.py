"""Score tiles with a model: the per-pixel uncertainty of a strategy and the encoder embedding of each chip of a
tile, summed per tile.

Chips are uint8 (N, C, S, S), stretched as the preprocess stage writes them; the model sees them as training does
(``chips / 255``), or, for a delivered bundle, with the stretch undone (raw band values, as the ONNX model takes).
Needs neither rasterio nor geopandas, so the simulation runs it where only torch is installed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import GeofoundryError
from ..models.outputs import auxiliary, footprints
from ..models.stretch import raw_chips
from ..predict.combine import TTA, transformed
from .strategies import Pick, Strategy, pick

Probs = Callable[[np.ndarray], np.ndarray]  # uint8 chips (B, C, S, S) → probabilities (B, K, S, S) float32


def footprint_distribution(prob: np.ndarray, aux: Sequence[str]) -> np.ndarray:
    """(C, B, S, S) probabilities of background and each object class from a model's (B, K, S, S) outputs: a border
    model's ``border`` joins the footprint of each pixel's most probable object class, ``contact`` is background."""
    b, k, h, w = prob.shape
    bands = np.ascontiguousarray(prob[:, 1:].transpose(1, 0, 2, 3)).reshape(k - 1, b * h, w)
    objects = footprints(bands, tuple(aux), 1.0).reshape(-1, b, h, w)
    return np.concatenate([np.clip(1.0 - objects.sum(0, keepdims=True), 0.0, 1.0), objects])


class TorchProber:
    """Trained networks (the first is the model, the others ensemble members) on their device.

    ``single``: the members' mean under the predict stage's test-time augmentation (``predict_tta``), as the predict
    stage runs them; ``tta``: each member under each transform of ``al_tta``; ``dropout``: ``mc_samples`` passes of each
    member with its dropout on. Embeddings are the first network's deepest encoder features, averaged over the chip.
    """

    def __init__(self, nets: list, classes: list[str], device, weights: Sequence[float] | None = None,
                 predict_tta: str = "none", al_tta: str = "d4", mc_samples: int = 8):
        import torch

        self.torch, self.device = torch, torch.device(device)
        self.nets = [net.to(self.device).eval() for net in nets]
        self.weights = list(weights or [1.0] * len(nets))
        self.classes, self.predict_tta, self.al_tta, self.mc_samples = list(classes), predict_tta, al_tta, mc_samples

    def _input(self, chips: np.ndarray):
        x = self.torch.from_numpy(np.ascontiguousarray(chips)).to(self.device).float().div_(255.0)
        return x.contiguous(memory_format=self.torch.channels_last) if self.device.type == "cuda" else x

    def _fn(self, net):
        torch, cuda = self.torch, self.device.type == "cuda"

        def fn(x):
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                return torch.softmax(net(x).float(), dim=1)

        return fn

    def samples(self, chips: np.ndarray, kind: str) -> np.ndarray:
        """(T, B, K, S, S) probabilities of the samples that ``kind`` asks for."""
        torch = self.torch
        x, out = self._input(chips), []
        with torch.inference_mode():
            if kind == "single":  # as the predict stage: members weighted, each averaged over its transforms
                mean = sum(w * sum(transformed(self._fn(net), x, self.predict_tta, torch))
                           for w, net in zip(self.weights, self.nets))
                out = [mean / (sum(self.weights) * len(TTA[self.predict_tta]))]
            elif kind == "tta":
                out = [p for net in self.nets for p in transformed(self._fn(net), x, self.al_tta, torch)]
            else:
                for net in self.nets:
                    with dropout_on(net):
                        out += [self._fn(net)(x) for _ in range(self.mc_samples)]
        return torch.stack(out).float().cpu().numpy()

    def embed(self, chips: np.ndarray) -> np.ndarray:
        """(B, D) mean of the first network's deepest encoder features."""
        torch, net = self.torch, self.nets[0]
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            features = net.encoder(self._input(chips))[-1]
        return features.float().mean(dim=(2, 3)).cpu().numpy()


@contextlib.contextmanager
def dropout_on(net) -> Iterator[None]:
    """``net``'s dropout layers sampling (training mode) inside the block; refused when it has none with p > 0."""
    named = [m for m in net.modules() if "drop" in type(m).__name__.lower()]  # Dropout, Dropout2d, DropPath...
    layers = [m for m in named if float(getattr(m, "p", None) or getattr(m, "drop_prob", None) or 0) > 0]
    if not layers:
        raise GeofoundryError("mc_dropout: the model has no dropout layer (presets with dropout: deeplab, deeplabv3, "
                              "fpn, pspnet, dpt, segformer...); choose another al.strategy")
    for m in layers:
        m.train()
    try:
        yield
    finally:
        for m in layers:
            m.eval()


class OnnxProber:
    """A delivered bundle's ONNX model (raw band values in, probabilities out) on onnxruntime. It exposes no
    encoder and no dropout: strategies that need them are refused."""

    def __init__(self, fn: Probs, classes: list[str], low: list[float], high: list[float], predict_tta: str = "none",
                 al_tta: str = "d4"):
        self.fn, self.classes, self.low, self.high = fn, list(classes), low, high
        self.predict_tta, self.al_tta = predict_tta, al_tta

    def samples(self, chips: np.ndarray, kind: str) -> np.ndarray:
        if kind == "dropout":
            raise GeofoundryError("mc_dropout needs the trained checkpoint (a bundle's ONNX model has no dropout)")
        raw = raw_chips(chips, self.low, self.high)
        outs = list(transformed(self.fn, raw, self.predict_tta if kind == "single" else self.al_tta, np))
        return np.stack([np.mean(outs, axis=0)] if kind == "single" else outs).astype(np.float32)

    def embed(self, chips: np.ndarray) -> np.ndarray:
        raise GeofoundryError("coreset and hybrid need the trained checkpoint's encoder (a bundle's ONNX model gives "
                              "probabilities only); use models/best.pt or another al.strategy")


@dataclass
class TileSums:
    """Per-tile sums of chip scores: uncertainty over wanted pixels, and embeddings weighted by those pixels; tiles
    are numbered from 0 and the sums grow to the largest number seen."""

    uncertainty: np.ndarray = field(default_factory=lambda: np.zeros(0))
    pixels: np.ndarray = field(default_factory=lambda: np.zeros(0))
    embedding: np.ndarray | None = None

    def _fit(self, n: int, dim: int | None) -> None:
        grow = n - len(self.pixels)
        if grow > 0:
            self.uncertainty, self.pixels = np.pad(self.uncertainty, (0, grow)), np.pad(self.pixels, (0, grow))
        if dim is not None:
            have = np.zeros((0, dim)) if self.embedding is None else self.embedding
            self.embedding = np.pad(have, ((0, len(self.pixels) - len(have)), (0, 0)))

    def add(self, tiles: np.ndarray, uncertainty: np.ndarray | None, pixels: np.ndarray,
            embedding: np.ndarray | None) -> None:
        if not len(tiles):
            return
        self._fit(int(tiles.max()) + 1, None if embedding is None else embedding.shape[1])
        np.add.at(self.pixels, tiles, pixels)
        if uncertainty is not None:
            np.add.at(self.uncertainty, tiles, uncertainty)
        if embedding is not None:
            np.add.at(self.embedding, tiles, embedding * pixels[:, None])

    def scores(self) -> np.ndarray:
        """Mean uncertainty per wanted pixel of each tile (0 for a tile without any)."""
        return np.divide(self.uncertainty, self.pixels, out=np.zeros(len(self.pixels)), where=self.pixels > 0)

    def embeddings(self) -> np.ndarray | None:
        """Each tile's pixel-weighted mean embedding, L2-normalised."""
        if self.embedding is None:
            return None
        mean = self.embedding / np.maximum(self.pixels, 1)[:, None]
        return mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)


class Scorer:
    """Chips in batches → the strategy's picks among candidate tiles.

    Candidate chips carry their tile's uncertainty (strategies with one) and embedding (diverse strategies);
    labelled chips only their embedding (the tiles that k-center keeps away from).
    """

    def __init__(self, prober, strategy: Strategy, targets: list[str]):
        self.prober, self.strategy = prober, strategy
        self.aux = auxiliary(prober.classes, targets, "the model's output classes")
        self.candidates, self.labelled = TileSums(), TileSums()

    def add(self, chips: np.ndarray, wanted: np.ndarray, tiles: np.ndarray) -> None:
        """Candidate chips (N, C, S, S) uint8 of ``tiles`` (N,), scored over their ``wanted`` pixels (N, S, S)."""
        uncertainty = None
        if self.strategy.uncertainty is not None:
            samples = self.prober.samples(chips, self.strategy.samples)
            dist = np.stack([footprint_distribution(s, self.aux) for s in samples])  # (T, C, B, S, S)
            uncertainty = (self.strategy.uncertainty(dist) * wanted).reshape(len(wanted), -1).sum(1)
        self.candidates.add(tiles, uncertainty, _pixels(wanted), self._embed(chips))

    def add_labelled(self, chips: np.ndarray, wanted: np.ndarray, tiles: np.ndarray) -> None:
        """Chips of labelled tiles (their embeddings only; nothing to do for strategies that are not diverse)."""
        if self.strategy.diverse:
            self.labelled.add(tiles, None, _pixels(wanted), self._embed(chips))

    def _embed(self, chips: np.ndarray) -> np.ndarray | None:
        return self.prober.embed(chips) if self.strategy.diverse else None

    def pick(self, n: int, seed: int, among: np.ndarray | None = None) -> list[Pick]:
        """The ``n`` tiles to label next (indexes into the candidates), best first; ``among``: only these (default:
        the candidates with wanted pixels)."""
        among = np.flatnonzero(self.candidates.pixels > 0) if among is None else np.asarray(among)
        scores = self.candidates.scores()[among] if self.strategy.uncertainty is not None else None
        emb, labelled = self.candidates.embeddings(), self.labelled.embeddings()
        if labelled is not None:
            labelled = labelled[self.labelled.pixels > 0]
        picks = pick(self.strategy, n, len(among), scores, None if emb is None else emb[among], labelled, seed)
        return [Pick(int(among[p.index]), p.score, p.reason) for p in picks]


def _pixels(wanted: np.ndarray) -> np.ndarray:
    return wanted.reshape(len(wanted), -1).sum(1).astype(float)
