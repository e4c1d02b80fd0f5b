"""Figures of the trials computed so far, kept across runs in ``.rps-cache/trials.jsonl``: a run after
``geofoundry rps --apply`` (or any run over points already tried with the same maps, truth and code) reads them
instead of computing them again."""

from __future__ import annotations

import json
from pathlib import Path


class TrialStore:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._figures: dict[str, dict] = {}
        if self.path.is_file():
            for line in self.path.read_text().splitlines():
                try:
                    record = json.loads(line)
                    self._figures[record["key"]] = record["figures"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue  # a line cut short by an interrupted run

    def get(self, key: str) -> dict | None:
        return self._figures.get(key)

    def put(self, key: str, figures: dict) -> None:
        self._figures[key] = figures
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps({"key": key, "figures": figures}) + "\n")
