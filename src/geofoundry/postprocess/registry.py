"""Registry of named post-processing operations and the chain built from ``postprocess.steps``.

An op is a pure function ``op(state, *, param=default, ...) -> SceneState``. ``@register`` turns its keyword-only
signature into a pydantic model (unknown keys forbidden) and records which state fields it needs, makes and drops,
so that :func:`build_chain` can check names, parameters and order before any work is done.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from rich.markup import escape
from rich.table import Table

from ..choices import unknown_op
from ..errors import GeofoundryError
from .state import SceneState

Probability = Annotated[float, Field(ge=0, le=1)]

FIELDS = {"prob": "class probabilities", "mask": "a class mask", "instances": "instance ids", "objects": "polygons"}


@dataclass(frozen=True)
class Op:
    name: str
    func: Callable[..., SceneState]
    params: type[BaseModel]
    needs: tuple[str, ...]
    gives: tuple[str, ...]
    drops: tuple[str, ...]
    refuses: tuple[str, ...]
    scene_area: bool = False  # a vector op that reads the scene's valid area (``vectorize.valid_area``)

    @property
    def stage(self) -> str:
        if "objects" in self.needs:
            return "vector"
        return "vectorize" if "objects" in self.gives else "raster"

    @property
    def summary(self) -> str:
        return inspect.getdoc(self.func).splitlines()[0].replace("``", "")

    @property
    def parameters(self) -> list[inspect.Parameter]:
        """The keyword-only parameters; annotations are the source text (``from __future__ import annotations``)."""
        return list(inspect.signature(self.func).parameters.values())[1:]


def _param_text(p: inspect.Parameter) -> str:
    return f"{p.name}: {p.annotation}" + ("" if p.default is p.empty else f" = {p.default!r}")


OPS: dict[str, Op] = {}


def register(
    name: str,
    *,
    needs: Sequence[str] = (),
    gives: Sequence[str] = (),
    drops: Sequence[str] = (),
    refuses: Sequence[str] = (),
    scene_area: bool = False,
) -> Callable[[Callable[..., SceneState]], Callable[..., SceneState]]:
    """Register ``func`` as op ``name``. needs/gives/drops/refuses name :data:`FIELDS` of the state.

    ``refuses``: fields that must not exist yet (the op would leave them stale). ``scene_area``: a vector op that
    reads the scene's valid area (:func:`.vectorize.valid_area`; windowed runs trace it window by window).
    """

    def deco(func: Callable[..., SceneState]) -> Callable[..., SceneState]:
        if name in OPS:
            raise ValueError(f"postprocess op {name!r} is registered twice")
        hints = get_type_hints(func, include_extras=True)
        fields: dict[str, Any] = {
            p.name: (hints[p.name], ... if p.default is p.empty else p.default)
            for p in inspect.signature(func).parameters.values()
            if p.kind is p.KEYWORD_ONLY
        }
        config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
        model = create_model(f"{name}_params", __config__=config, **fields)
        OPS[name] = Op(name, func, model, tuple(needs), tuple(gives), tuple(drops), tuple(refuses), scene_area)
        return func

    return deco


def _where(i: int, name: str) -> str:
    return f"postprocess.steps[{i}] {name!r}"


def _format_errors(where: str, op: Op, err: ValidationError) -> str:
    valid = ", ".join(op.params.model_fields) or "(none)"
    annotations = {p.name: p.annotation for p in op.parameters}
    msgs: dict[str, str] = {}
    for e in err.errors():
        param = str(e["loc"][0]) if e["loc"] else "(all)"
        if e["type"] == "extra_forbidden":
            msgs[param] = f"unknown parameter {param!r}; valid: {valid}"
        elif e["type"] == "missing":
            msgs[param] = f"missing parameter {param!r}"
        else:
            msgs.setdefault(
                param, f"parameter {param!r}: {e['msg']}; got {e['input']!r} (expects {annotations[param]})"
            )
    return f"{where}: " + "; ".join(msgs.values())


def _validate(i: int, name: str, params: Mapping[str, Any] | None) -> tuple[Op, dict[str, Any]]:
    op = OPS.get(name)
    if op is None:
        raise GeofoundryError(f"postprocess.steps[{i}]: {unknown_op(name)}")
    if params is not None and not isinstance(params, Mapping):
        raise GeofoundryError(f"{_where(i, name)}: parameters must be a mapping, got {params!r}")
    try:
        model = op.params.model_validate(dict(params or {}))
    except ValidationError as e:
        raise GeofoundryError(_format_errors(_where(i, name), op, e)) from None
    return op, {k: getattr(model, k) for k in op.params.model_fields}


def _makers(field: str) -> str:
    return " or ".join(repr(o.name) for o in OPS.values() if field in o.gives) or "nothing"


def _check_order(ops: Sequence[Op], available: set[str]) -> set[str]:
    """Raise if an op needs a state field that is not there at its turn, or refuses one that is; return the fields
    present at the end."""
    made = {f: "the input" for f in available}
    dropped: dict[str, str] = {}
    for i, op in enumerate(ops):
        for f in op.needs:
            if f in dropped:
                raise GeofoundryError(
                    f"{_where(i, op.name)}: needs {FIELDS[f]}, which {dropped[f]} dropped; move it before that step"
                )
            if f not in made:
                raise GeofoundryError(f"{_where(i, op.name)}: needs {FIELDS[f]}, made by {_makers(f)}; add it before")
        for f in op.refuses:
            if f in made:
                raise GeofoundryError(
                    f"{_where(i, op.name)}: would leave the {FIELDS[f]} from {made[f]} stale; move it before that step"
                )
        for f in op.gives:
            made[f] = f"step {i} {op.name!r}"
            dropped.pop(f, None)
        for f in op.drops:
            made.pop(f, None)
            dropped[f] = f"step {i} {op.name!r}"
    return set(made)


@dataclass(frozen=True)
class Chain:
    """Validated ops with their parameters; calling it runs them in order on a :class:`SceneState`."""

    steps: tuple[tuple[Op, dict[str, Any]], ...]

    def __call__(self, state: SceneState) -> SceneState:
        _check_order([op for op, _ in self.steps], {f for f in FIELDS if getattr(state, f) is not None})
        out = state
        for out in self.states(state):
            pass
        return out

    def states(self, state: SceneState, start: int = 0, stop: int | None = None) -> Iterator[SceneState]:
        """The state after each of the steps ``start`` to ``stop`` (excluded), ``state`` being the one before step
        ``start`` (the order of the steps is checked by :func:`build_chain` and ``__call__``)."""
        for i, (op, kwargs) in enumerate(self.steps[start:stop], start):
            try:
                state = op.func(state, **kwargs)
            except GeofoundryError as e:
                raise GeofoundryError(f"{_where(i, op.name)}: {e}") from None
            yield state

    def __str__(self) -> str:
        return " → ".join(op.name for op, _ in self.steps)

    def split(self) -> tuple[Chain, Chain]:
        """The raster part (up to the op that makes the polygons, included) and the vector part."""
        cut = next(i for i, (op, _) in enumerate(self.steps) if "objects" in op.gives) + 1
        return Chain(self.steps[:cut]), Chain(self.steps[cut:])

    @property
    def needs_scene_area(self) -> bool:
        return any(op.scene_area for op, _ in self.steps)


def build_chain(
    steps: Sequence[Mapping[str, Mapping[str, Any] | None]],
    start: Sequence[str] = ("prob",),
    end: Sequence[str] = ("objects",),
) -> Chain:
    """Validate every step's name, parameters and place and return a :class:`Chain`.

    The state starts with the ``start`` fields (see :data:`FIELDS`); the chain must leave the ``end`` fields.
    """
    validated = []
    for i, item in enumerate(steps):
        if not isinstance(item, Mapping) or len(item) != 1:
            raise GeofoundryError(f"postprocess.steps[{i}]: must be one {{operation: {{parameters}}}}, got {item!r}")
        [(name, params)] = item.items()
        validated.append(_validate(i, name, params))
    have = _check_order([op for op, _ in validated], set(start))
    for f in end:
        if f not in have:
            raise GeofoundryError(f"postprocess.steps: the chain must end with {FIELDS[f]}; add {_makers(f)}")
    return Chain(tuple(validated))


def describe_ops() -> list[dict[str, str]]:
    """One row per registered op: name, stage (raster/vectorize/vector), parameters with defaults, summary."""
    return [
        {
            "name": op.name,
            "stage": op.stage,
            "params": ", ".join(map(_param_text, op.parameters)),
            "summary": op.summary,
        }
        for op in OPS.values()
    ]


def format_ops_table() -> Table:
    """The registered ops as a rich Table (for ``geofoundry postprocess --list``)."""
    table = Table(title="postprocess operations (params.yaml: postprocess.steps)")
    for col in ("name", "stage", "params", "summary"):
        table.add_column(col, overflow="fold")
    for row in describe_ops():
        table.add_row(*map(escape, row.values()))
    return table
