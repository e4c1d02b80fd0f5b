"""Progress: nested bars share one live display in a terminal; plain periodic log lines elsewhere."""

from __future__ import annotations

import io
import logging
import time

from rich.console import Console

from geofoundry import progress


def test_nested_tasks_share_one_display_in_a_terminal(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(progress, "console", Console(file=out, force_terminal=True, width=120))
    readings = []

    def info() -> str:
        readings.append(1)
        return f"loss {0.5:.4f}"

    for scene in progress.track(["a", "b"], "predict"):
        with progress.task(f"{scene}: rows of tiles", 6) as rows:  # inside the scenes' display: no LiveError
            for _ in range(6):
                time.sleep(0.15)  # the display refreshes 10 times a second
                rows.advance(1, info)
    text = out.getvalue()
    assert "predict" in text and "rows of tiles" in text and "loss 0.5000" in text
    assert len(readings) <= 6, "info is read when the bar refreshes, not on every step"
    assert progress._live is None


def test_plain_lines_when_not_a_terminal(monkeypatch, caplog):
    monkeypatch.setattr(progress, "console", Console(file=io.StringIO(), force_terminal=False))
    monkeypatch.setattr(progress, "PLAIN_EVERY_S", 0.0)
    with caplog.at_level(logging.INFO, logger="geofoundry.progress"), progress.task("train epoch 1/2", 4) as bar:
        for _ in range(4):
            bar.advance(1, "loss 0.3000, 12.0 img/s")
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("train epoch 1/2: 1/4, loss 0.3000, 12.0 img/s") and "eta" in lines[0]
    assert lines[-1].startswith("train epoch 1/2: 4/4")
