"""The code a stage runs, from the import graph: the files its script imports, directly or not (imports inside
functions too), as the smallest list of files and whole folders, the form of ``deps:`` in dvc.yaml.

``python -m tests.dvc_deps`` prints that list for every stage of dvc.yaml.
"""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"


def _module_file(name: str) -> Path | None:
    base = SRC.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _package_of(path: Path) -> list[str]:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return parts[:-1]


def _imported(path: Path) -> set[str]:
    """Absolute names of the project modules ``path`` imports (their parent packages included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            candidates = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _package_of(path)[: len(_package_of(path)) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            candidates = [module] + [f"{module}.{a.name}" for a in node.names]  # `from pkg import submodule`
        else:
            continue
        for name in candidates:
            parts = name.split(".")
            names.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return {n for n in names if n.split(".")[0] == "geofoundry" and _module_file(n)}


def closure(script: Path) -> set[Path]:
    """Every project file ``script`` loads: itself and the geofoundry modules it imports, recursively."""
    seen, todo = {script}, [script]
    while todo:
        for name in _imported(todo.pop()):
            path = _module_file(name)
            if path not in seen:
                seen.add(path)
                todo.append(path)
    return seen


def _folded(files: set[Path], folder: Path) -> list[Path]:
    """``files`` under ``folder``, with every subfolder whose Python files are all in ``files`` given as one path."""
    if all(p in files for p in folder.rglob("*.py")):
        return [folder]
    out = [p for p in sorted(folder.glob("*.py")) if p in files]
    for sub in sorted(d for d in folder.iterdir() if d.is_dir() and any(d.rglob("*.py"))):
        if any(p.is_relative_to(sub) for p in files):
            out += _folded(files, sub)
    return out


def code_deps(script: Path) -> list[str]:
    """What ``deps:`` must list for the code of the stage that runs ``script``, as paths relative to the root."""
    files = closure(script)
    package = SRC / "geofoundry"
    return [str(script.relative_to(ROOT))] + [str(p.relative_to(ROOT)) for p in _folded(files, package)]


def stage_scripts() -> dict[str, Path]:
    """dvc.yaml's stages whose command runs a script of stages/, by stage name."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    return {name: ROOT / s["cmd"].split()[-1] for name, s in stages.items() if s["cmd"].startswith("python stages/")}


if __name__ == "__main__":
    for name, script in stage_scripts().items():
        print(f"{name}:")
        for dep in code_deps(script):
            print(f"  - {dep}")
