"""Read ``params.yaml`` into :class:`geofoundry.config.Params`; errors name the file and the key."""

from __future__ import annotations

from pathlib import Path

from ..config import Params, format_validation_error
from ..errors import GeofoundryError
from ..io.inputs import read_yaml, validated
from ..rps.settings import SettingsError, check_settings

__all__ = ["format_validation_error", "load_params"]


def load_params(path: str | Path = "params.yaml") -> Params:
    """Validated parameters. Refused, naming the file and the key or line: a missing file, text that is not UTF-8,
    an empty file, YAML that is not plain data (syntax, tags, several documents), duplicate keys, any value the
    models reject, and ``rps`` settings that name no step of postprocess.steps or no predict setting, or whose
    values or search do not fit (:func:`geofoundry.rps.settings.check_settings`)."""
    path = Path(path)
    if not path.exists():
        raise GeofoundryError(f"{path}: parameters file not found (run from the project root)")
    data = read_yaml(path, "parameters")
    if data is None:
        raise GeofoundryError(f"{path}: empty; it needs the sections of every stage (see the project's params.yaml)")
    params = validated(Params, data, path)
    try:
        check_settings(params.rps, params.postprocess.steps, params.predict)
    except SettingsError as e:
        raise GeofoundryError("\n".join([f"{path}: invalid parameters", *e.lines()])) from None
    return params
