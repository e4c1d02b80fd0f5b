"""dvclive tracking of the train stage: one step per epoch, continued exactly after a resume."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def open_live(live_dir: Path, start: int):
    """A dvclive ``Live`` at step ``start``; a resumed run first drops the rows of epochs it will redo. None without
    dvclive (a machine that trains without DVC): the epochs are then logged only."""
    try:
        from dvclive import Live  # lazily: the GPU benchmarks run without dvclive
    except ImportError:
        log.warning("dvclive is not installed: the training curves are logged, not plotted")
        return None

    if start:
        for tsv in (live_dir / "plots" / "metrics").rglob("*.tsv"):
            head, *rows = tsv.read_text().splitlines(keepends=True)
            tsv.write_text("".join([head, *(r for r in rows if int(r.split("\t", 1)[0]) < start)]))
    live = Live(dir=str(live_dir), dvcyaml=None, save_dvc_exp=False, resume=start > 0)
    live.step = start  # dvclive's own resume would repeat step 0
    return live


def log_epoch(live, metrics: dict[str, float], images: list) -> None:
    for name, value in metrics.items():
        live.log_metric(name, value)
    for i, img in enumerate(images):
        live.log_image(f"val/{i}.png", img)
    live.next_step()
