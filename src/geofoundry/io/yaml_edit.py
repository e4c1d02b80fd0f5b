"""YAML edited in place (ruamel.yaml round trip): comments, key order, quoting, flow or block style and indentation
stay as they were, so only the values changed differ. ``geofoundry select --write`` (and the dashboard) and
``geofoundry rps --apply`` write params.yaml through it."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import Any

_OPENS_BLOCK = re.compile(r"^(\s*)(?:- )?[^\s#-][^#]*:\s*(?:#.*)?$")  # a key whose value is on the next lines


def _indents(lines: list[str]) -> tuple[int, int, int]:
    """(mapping, sequence, offset) indentation of the block collections in ``lines``, as ruamel.yaml's ``indent``
    takes them; ruamel's defaults (2, 2, 0) for what the text does not show."""
    found: dict[str, int] = {}
    content = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    for parent, child in zip(content, content[1:]):
        opened = _OPENS_BLOCK.match(parent)
        depth = len(child) - len(child.lstrip())
        if not opened or depth <= len(opened.group(1)) or parent.lstrip().startswith("- "):
            continue
        key = "offset" if child.lstrip().startswith("- ") else "mapping"
        found.setdefault(key, depth - len(opened.group(1)))
    offset = found.get("offset", 0)
    return found.get("mapping", 2), offset + 2, offset


def _null_text(text: str) -> str:
    """``~`` where the text writes null that way (and never as ``null``), else ``null``."""
    def uses(token: str) -> bool:
        return re.search(rf":\s+{token}\s*(#|$)", text, re.M) is not None

    return "~" if uses("~") and not uses("null") else "null"


def flow(value: Any) -> Any:
    """``value`` with its lists and mappings in flow style (``[a, b]``, ``{k: v}``), as params.yaml writes them."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(value, dict):
        out = CommentedMap({k: flow(v) for k, v in value.items()})
        out.fa.set_flow_style()
        return out
    if isinstance(value, (list, tuple)):
        seq = CommentedSeq([flow(v) for v in value])
        seq.fa.set_flow_style()
        return seq
    return value


def plain(node: Any) -> Any:
    """A round-trip document (or part of one) as plain dicts and lists."""
    if isinstance(node, dict):
        return {k: plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [plain(v) for v in node]
    return node


def round_trip(text: str, edit: Callable[[Any], None]) -> str:
    """``text`` with ``edit(document)`` applied to its round-trip document (an error in ``edit`` propagates, so a
    caller writes nothing); every line that ``edit`` leaves alone comes back as it was."""
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096  # never fold a long line
    mapping, sequence, offset = _indents(text.splitlines())
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    null = _null_text(text)
    yaml.representer.add_representer(type(None), lambda rep, _: rep.represent_scalar("tag:yaml.org,2002:null", null))
    doc = yaml.load(text)
    edit(doc)
    out = io.StringIO()
    yaml.dump(doc, out)
    return out.getvalue()
