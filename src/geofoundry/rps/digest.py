"""Digests that key what RPS keeps on disk: a result is reused only while everything it came from is the same."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).resolve().parents[1]


def value_digest(value: Any) -> str:
    """Digest of a JSON-able value (keys sorted)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def files_digest(paths: Iterable[Path]) -> str:
    """Digest of files' names and contents, in the order given."""
    h = hashlib.sha256()
    for path in paths:
        h.update(Path(path).name.encode() + b"\0")
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def code_digest(*packages: str) -> str:
    """Digest of the source of geofoundry's ``packages`` (e.g. ``postprocess``)."""
    return files_digest(f for p in packages for f in sorted((PACKAGE / p).glob("*.py")))
