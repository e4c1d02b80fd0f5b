"""Read ``params.yaml`` into :class:`geofoundry.config.Params`; errors name the file and the key."""

from __future__ import annotations

from pathlib import Path


from ..config import Params
from ..errors import GeofoundryError
from ..config import format_validation_error
from ..io.inputs import read_yaml, validated

__all__ = ["format_validation_error", "load_params"]


def load_params(path: str | Path = "params.yaml") -> Params:
    """Validated parameters. Refused, naming the file and the key or line: a missing file, text that is not UTF-8,
    an empty file, YAML that is not plain data (syntax, tags, several documents), duplicate keys, and any value
    the models reject."""
    path = Path(path)
    if not path.exists():
        raise GeofoundryError(f"{path}: parameters file not found (run from the project root)")
    data = read_yaml(path, "parameters")
    if data is None:
        raise GeofoundryError(f"{path}: empty; it needs the sections of every stage (see the project's params.yaml)")
    return validated(Params, data, path)
