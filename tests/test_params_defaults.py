"""One source of defaults: the config classes' defaults are params.yaml's values, key for key.

params.yaml is the documented default recipe (what `dvc repro` runs); code that builds a config without a key, or
a params.yaml that leaves a key out (a section or part of one), gets the same value.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from geofoundry.config import Params, Section
from geofoundry.pipeline.params import load_params

from .project import ROOT


def differences(ours: Any, theirs: Any, key: str) -> Iterator[str]:
    """The keys under ``key`` whose values differ between two ``model_dump()``s (params.yaml's, the defaults')."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        for k in sorted(set(ours) | set(theirs), key=str):
            yield from differences(ours.get(k, "(absent)"), theirs.get(k, "(absent)"), f"{key}.{k}".lstrip("."))
    elif ours != theirs:
        yield f"{key}: params.yaml {ours!r}, class default {theirs!r}"


def sections(model: Section, key: str = "") -> Iterator[tuple[str, Section]]:
    """Every section of ``model``, itself first, with its key (nested sections, not list items)."""
    yield key, model
    for name in type(model).model_fields:
        if isinstance(getattr(model, name), Section):
            yield from sections(getattr(model, name), f"{key}.{name}".lstrip("."))


def own_values(section: Section) -> dict[str, Any]:
    """``model_dump()`` of the keys of ``section`` that are not sections themselves."""
    nested = {n for n in type(section).model_fields if isinstance(getattr(section, n), Section)}
    return section.model_dump(exclude=nested)


def default_of(section: Section) -> Section:
    """The class default of ``section``: its class given nothing but its required keys (an optimiser's ``name``)."""
    required = {n: getattr(section, n) for n, f in type(section).model_fields.items() if f.is_required()}
    return type(section)(**required)


def test_every_class_default_is_the_params_value():
    """Each section class (nested ones too: a partial mapping in params.yaml keeps the recipe's other values)."""
    params = load_params(ROOT / "params.yaml")
    found = [d for key, section in sections(params)
             for d in differences(own_values(section), own_values(default_of(section)), key)]
    assert not found, "params.yaml and the config classes' defaults differ:\n" + "\n".join(found)


def test_the_sections_defaults_are_the_params_sections():
    """``TrainConfig()`` is params.yaml's ``train:``, and so on for every section (and ``arch``)."""
    params, defaults = load_params(ROOT / "params.yaml").model_dump(), {}
    for name, field in Params.model_fields.items():
        default = field.default
        defaults[name] = default.model_dump() if isinstance(default, Section) else default
    found = list(differences(params, defaults, ""))
    assert not found, "params.yaml's sections and the classes' defaults differ:\n" + "\n".join(found)
