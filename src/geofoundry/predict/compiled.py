"""The compiled engine as a prediction function: an AOTInductor package run on torch tensors (CUDA: replayed from a
CUDA graph per batch shape), trusted once its first batch agrees with a reference model."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import torch

from ..errors import GeofoundryError
from ..models.compiled import PackageLoadError, load_package
from .cuda_graph import graphed

log = logging.getLogger(__name__)
Fn = Callable[[torch.Tensor], torch.Tensor]


def package_fn(path: Path, cuda: bool, cuda_graphs: bool, report: dict) -> Fn:
    """(B, C, t, t) raw float32 → (B, K, t, t) probabilities through the package at ``path`` (on the device it was
    compiled for; ``cuda``: with cuDNN autotuning, and with ``cuda_graphs`` replayed from a CUDA graph per batch
    shape where its runner allows, which ``report["cuda_graphs"]`` records)."""
    run, cuda_graphs = loaded(path, cuda_graphs)
    report["cuda_graphs"] = cuda_graphs
    torch.backends.cudnn.benchmark = cuda

    def forward(batch: torch.Tensor) -> torch.Tensor:
        return run(batch.contiguous())  # the package was traced on contiguous batches

    replay = graphed(forward) if cuda_graphs else forward

    @torch.inference_mode()
    def fn(batch: torch.Tensor) -> torch.Tensor:
        return replay(batch)

    return fn


def loaded(path: Path, cuda_graphs: bool) -> tuple[Fn, bool]:
    """The package's runner, and whether CUDA graphs may capture it: the runner without thread synchronisation where
    they will; if that one cannot be loaded (:class:`PackageLoadError`), torch's synchronised runner, run without
    graphs, with a warning."""
    if cuda_graphs:
        try:
            return load_package(path, single_threaded=True), True
        except PackageLoadError as e:
            log.warning("%s; loading its synchronised runner instead, without CUDA graphs", e)
    return load_package(path, single_threaded=False), False


def checked(compiled: Fn, reference: Fn, fallback: Fn, atol: float, report: dict, *, strict: bool,
            names: tuple[str, str], setting: str) -> Fn:
    """``compiled``, once its probabilities on the first batch lie within ``atol`` of ``reference``'s (largest
    absolute difference, recorded in ``report["parity"]`` and the log). Beyond it: stop with an error (``strict``),
    or run ``fallback`` from then on, saying so in ``report`` and the log as a warning. ``names``: the reference's
    and the fallback's, for messages; ``setting``: what sets ``atol``."""
    chosen: list[Fn] = []

    def fn(batch: torch.Tensor) -> torch.Tensor:
        if chosen:
            return chosen[0](batch)
        got = compiled(batch)
        diff = float((got - reference(batch).to(got.device)).abs().max())
        passed = diff <= atol  # False for NaN
        report["parity"] = {"max_abs_diff": diff, "atol": atol, "reference": names[0], "tiles": len(batch),
                            "passed": passed}
        if passed:
            log.info("compiled engine: max |Δp| %.3g against the %s on the first batch (%s %g)", diff, names[0],
                     setting, atol)
            chosen.append(compiled)
            return got
        message = (f"the compiled package's probabilities differ from the {names[0]}'s by up to {diff:.3g} on the "
                   f"first batch, more than {setting} ({atol})")
        if strict:
            raise GeofoundryError(f"compiled engine: {message}")
        log.warning("%s: running the %s engine instead", message, names[1])
        report.update(engine=names[1], reason=message)
        chosen.append(fallback)
        return fallback(batch)

    return fn
