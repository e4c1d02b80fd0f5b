"""The run's record of finished scenes, ``<out>/records/rank-<r>.jsonl``: one line per scene as it finishes (its
name, source, identity, the bundle's digest, its outputs), appended and synced after the scene's outputs are in
place. A rerun skips a scene whose latest line matches its source, identity and bundle and whose outputs exist;
anything else (a scene cut short, a changed scene or bundle) is predicted again."""

from __future__ import annotations

import json
import os
from pathlib import Path

RECORDS = "records"


def read_records(out: Path) -> dict[str, dict]:
    """The latest record of each scene name, from every rank's file (a torn last line is ignored)."""
    latest: dict[str, dict] = {}
    for path in sorted((out / RECORDS).glob("rank-*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and "name" in record and (
                    record["name"] not in latest or record["finished"] >= latest[record["name"]]["finished"]):
                latest[record["name"]] = record
    return latest


def is_finished(record: dict | None, source: str, ident: dict, bundle: str, out: Path) -> bool:
    """Whether ``record`` says this scene, unchanged, was finished with this bundle, and its outputs are there."""
    return (record is not None and record["source"] == source and record["identity"] == ident
            and record["bundle_sha256"] == bundle and all((out / f).is_file() for f in record["outputs"]))


def append_record(out: Path, rank: int, record: dict) -> None:
    """Append ``record`` to this rank's file and sync it: once this returns, a rerun skips the scene."""
    path = out / RECORDS / f"rank-{rank}.jsonl"
    path.parent.mkdir(exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())
