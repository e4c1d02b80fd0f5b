"""Text inputs that users write or bring (params, manifests, specs, CSV headers): read as UTF-8, parsed strictly,
validated by type. Every failure is a :class:`GeofoundryError` that names the file, and the line or key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from ..config import format_validation_error
from ..errors import GeofoundryError

MAX_YAML_VALUES = 100_000  # values a YAML document may expand to through aliases (params.yaml holds ~150)


def read_bytes(path: str | Path, what: str) -> bytes:
    """The bytes of ``path``; a missing, unreadable or non-regular file is an error naming ``what`` it should be."""
    path = Path(path)
    if path.is_dir():
        raise GeofoundryError(f"{path}: a folder, not a {what} file")
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise GeofoundryError(f"{path}: {what} file not found") from None
    except OSError as e:
        raise GeofoundryError(f"{path}: cannot read the {what} file ({e.strerror or e})") from None


def decode(data: bytes, source: str | Path, what: str) -> str:
    """``data`` as UTF-8 text (a leading byte-order mark is dropped); other encodings are refused with the line."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise GeofoundryError(f"{source}:{line}: the {what} file is not UTF-8 text (byte 0x{data[e.start]:02x}); "
                              "save it as UTF-8") from None


def read_text(path: str | Path, what: str) -> str:
    return decode(read_bytes(path, what), path, what)


def parse_json(text: str, source: str | Path) -> Any:
    """JSON text, or an error naming ``source`` and the line."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise GeofoundryError(f"{source}:{e.lineno}: not valid JSON ({e.msg})") from None
    except RecursionError:
        raise GeofoundryError(f"{source}: nested too deeply to be plain data") from None


def read_json(path: str | Path, what: str) -> Any:
    return parse_json(read_text(path, what), path)


def _dotted(keys: list[str]) -> str:
    return "".join(k if k.startswith("[") or not i else f".{k}" for i, k in enumerate(keys)) or "(top level)"


def _check_nodes(root: yaml.Node, source: str) -> None:
    """Refuse duplicate keys (YAML would keep the last silently) and aliases that expand to very many values."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def visit(node: yaml.Node, keys: list[str]) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        if id(node) in open_nodes:
            raise GeofoundryError(f"{source}:{node.start_mark.line + 1}: {_dotted(keys)} refers to itself "
                                  "through an alias")
        open_nodes.add(id(node))
        size = 1
        if isinstance(node, yaml.MappingNode):
            seen: dict[tuple[str, str], int] = {}
            for key, value in node.value:
                name = str(key.value) if isinstance(key, yaml.ScalarNode) else "?"
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    line = key.start_mark.line + 1
                    if (key.tag, key.value) in seen:
                        raise GeofoundryError(
                            f"{source}: duplicate key {_dotted([*keys, name])} at lines {seen[key.tag, key.value]} "
                            f"and {line}; YAML would keep only the last: remove one")
                    seen[key.tag, key.value] = line
                size += visit(key, keys) + visit(value, [*keys, name])
        elif isinstance(node, yaml.SequenceNode):
            size += sum(visit(item, [*keys, f"[{i}]"]) for i, item in enumerate(node.value))
        open_nodes.discard(id(node))
        sizes[id(node)] = size
        if size > MAX_YAML_VALUES:
            raise GeofoundryError(f"{source}: {_dotted(keys)} expands to more than {MAX_YAML_VALUES} values "
                                  "through aliases; refused")
        return size

    visit(root, [])


def parse_yaml(text: str, source: str | Path) -> Any:
    """One YAML document of plain data (None when empty). Refused, naming ``source`` and the line: syntax errors,
    several documents, tags that build objects, duplicate keys, aliases that refer to themselves or expand hugely."""
    loader = None
    try:
        loader = yaml.SafeLoader(text)  # plain data only (no !!python/... tags); refuses control characters
        node = loader.get_single_node()
        if node is None:
            return None
        _check_nodes(node, str(source))
        return loader.construct_document(node)
    except RecursionError:
        raise GeofoundryError(f"{source}: nested too deeply to be plain data") from None
    except yaml.reader.ReaderError as e:
        line = text[: e.position].count("\n") + 1
        code = e.character if isinstance(e.character, int) else ord(e.character)
        raise GeofoundryError(f"{source}:{line}: not valid YAML (control character U+{code:04X} is not "
                              "allowed)") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else str(source)
        problem = " ".join(str(getattr(e, "problem", None) or e).split())
        if isinstance(e, yaml.constructor.ConstructorError):
            problem += "; only plain data (mappings, lists, strings, numbers, booleans, null) is read"
        raise GeofoundryError(f"{where}: not valid YAML ({problem})") from None
    finally:
        if loader is not None:
            loader.dispose()


def read_yaml(path: str | Path, what: str) -> Any:
    return parse_yaml(read_text(path, what), path)



def validated(kind: Any, data: Any, source: str | Path, what: str = "parameters") -> Any:
    """``data`` validated as ``kind`` (a pydantic model, dataclass or type), or an error naming each bad key."""
    try:
        if hasattr(kind, "model_validate"):
            return kind.model_validate(data)
        return TypeAdapter(kind).validate_python(data)
    except ValidationError as e:
        raise GeofoundryError(format_validation_error(e, str(source), what)) from None
    except RecursionError:
        raise GeofoundryError(f"{source}: nested too deeply") from None
