"""Read ``params.yaml`` into :class:`geofoundry.config.Params`; errors name the file and the key."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from ..config import Params, format_validation_error
from ..errors import GeofoundryError

__all__ = ["format_validation_error", "load_params"]


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    if not path.is_file():
        raise GeofoundryError(f"{path}: parameters file not found (run from the project root)")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise GeofoundryError(f"{path}: not valid YAML: {e}") from None
    try:
        return Params.model_validate(raw)
    except ValidationError as e:
        raise GeofoundryError(format_validation_error(e, str(path))) from None
