"""The model card: what the model is, what it was trained on (data version, licences), with which code and params,
and how well it did. ``card.json`` for machines, ``MODEL_CARD.md`` for people."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import yaml

from .. import __version__
from ..bundle.format import FORMAT as BUNDLE_FORMAT
from ..bundle.format import FORMAT_VERSION
from ..config import Params
from ..models.input_spec import InputSpec

FORMAT = f"{BUNDLE_FORMAT}/{FORMAT_VERSION}"
NO_LICENCE = ("not recorded: data/raw/DATASET.md has no 'Licence' section; check the training data's terms "
              "before delivering this model")


@dataclass(frozen=True)
class Provenance:
    """Where the card's facts come from: params, the repository (git, data.dvc), raw data and metrics files."""

    params: Params
    repo: Path
    raw_dir: Path
    metrics: dict[str, Path] = field(default_factory=dict)  # name -> JSON file, read when present


# Files that `dvc repro` itself rewrites before export runs (lock, metrics, reports, plots, the .gitignore entries of
# new outputs): they do not make the code revision dirty.
PIPELINE_WRITES = ("dvc.lock", "metrics", "reports", "plots", "dvclive", "**/.gitignore", ".gitignore")


def git_revision(repo: Path) -> str:
    """``git rev-parse HEAD``, with ``-dirty`` when code, params or data pointers (tracked or new, not ignored) differ
    from it; :data:`PIPELINE_WRITES` are not counted."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout

    try:
        rev = git("rev-parse", "HEAD").strip()
        changed = git("status", "--porcelain", "--", ".", *(f":(exclude,glob){p}" for p in PIPELINE_WRITES)).strip()
        return rev + ("-dirty" if changed else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git repository with a commit)"


def data_version(repo: Path) -> dict:
    """The md5 of each output recorded in ``data.dvc`` (the raw data's version), or why it is unknown."""
    path = repo / "data.dvc"
    if not path.is_file():
        return {"md5": None, "note": "no data.dvc in the repository: the raw data is not versioned by DVC here"}
    outs = (yaml.safe_load(path.read_text()) or {}).get("outs", [])
    return {"md5": outs[0].get("md5") if outs else None, "source": "data.dvc",
            "outs": [{k: o.get(k) for k in ("path", "md5", "size", "nfiles")} for o in outs]}


def licence_section(dataset_md: Path) -> tuple[str | None, str]:
    """(dataset title, text of the 'Licence…' section) of a raw dataset's DATASET.md."""
    if not dataset_md.is_file():
        return None, NO_LICENCE
    lines = dataset_md.read_text().splitlines()
    title = next((ln.lstrip("# ").strip() for ln in lines if ln.startswith("# ")), None)
    for i, line in enumerate(lines):
        m = re.match(r"^(#{1,6})\s+Licen[cs]e", line, re.IGNORECASE)
        if m:
            level, body = len(m.group(1)), []
            for nxt in lines[i + 1:]:
                h = re.match(r"^(#{1,6})\s", nxt)
                if h and len(h.group(1)) <= level:
                    break
                body.append(nxt)
            return title, "\n".join(body).strip() or NO_LICENCE
    return title, NO_LICENCE


def read_metrics(files: dict[str, Path]) -> dict:
    return {name: json.loads(p.read_text()) if p.is_file() else None for name, p in files.items()}


def build_card(prov: Provenance, spec: InputSpec, outputs: list[str], preset: str, export_metrics: dict,
               runtime: dict) -> dict:
    """card.json of a model with output classes ``outputs``: the chip classes (``target_classes``), then any
    ``auxiliary_classes`` (border, contact)."""
    from ..models.registry import get_preset

    p = get_preset(preset)
    title, licence = licence_section(prov.raw_dir / "DATASET.md")
    return {
        "format": FORMAT,
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": {"preset": preset, "architecture": p.arch, "encoder": p.encoder, "bricks": p.bricks,
                  "bands": spec.bands, "gsd_m": spec.gsd_m, "classes": outputs, "target_classes": spec.classes,
                  "auxiliary_classes": outputs[len(spec.classes):], "class_paths": spec.class_paths,
                  "input": "raw band values, float32 (batch, bands, height, width); per-band stretch inside",
                  "output": "softmax probabilities, float32 (batch, classes, height, width), background first"},
        "data": {"dataset": title, "version": data_version(prov.repo), "licence_and_attribution": licence},
        "code": {"git_revision": git_revision(prov.repo), "geofoundry": __version__},
        "params": prov.params.model_dump(mode="json"),
        "metrics": {**read_metrics(prov.metrics), "export": export_metrics},
        "runtime": runtime,
    }


def _scalars(d, prefix: str = "", depth: int = 3) -> list[tuple[str, object]]:
    if not isinstance(d, dict) or depth == 0:
        return []
    out = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, (int, float)) or (isinstance(v, str) and len(v) < 120):
            out.append((key, round(v, 4) if isinstance(v, float) else v))
        else:
            out.extend(_scalars(v, f"{key}.", depth - 1))
    return out


def measured_with(predict: dict) -> str:
    """What the pipeline's predictions had that the bundle's do not (test-time augmentation, ensemble members),
    as a caveat under the metrics; "" when nothing."""
    tta = predict.get("tta", "none")
    extras = [f"test-time augmentation (`predict.tta: {tta}`)"] if tta != "none" else []
    if members := predict.get("ensemble"):
        extras.append(f"{len(members)} more model(s) averaged in (`predict.ensemble`)")
    if not extras:
        return ""
    return (f"\nThe evaluate figures were measured on predictions made with {' and '.join(extras)}; this bundle "
            "runs `model.onnx` alone without them, so expect lower figures from it.\n")


def _compiled(card: dict) -> dict | None:
    built = ((card["metrics"].get("export") or {}).get("compiled") or {})
    return built if built.get("built") else None


def compiled_files(card: dict) -> str:
    return ", `model.pt2` and `compiled.json` (the model compiled for one GPU, and what for)" if _compiled(card) else ""


def compiled_use(card: dict) -> str:
    """The card's line on the compiled package, when the bundle has one."""
    built = _compiled(card)
    if built is None:
        return ""
    return (f"- GPU, compiled: `geofoundry predict --bundle <this folder> --sha256 <sha256 of SHA256SUMS> scene.tif "
            f"--out out/` runs `model.pt2` on GPUs of compute capability {built['capability']} with torch "
            f"{built['torch']} (compiled on {built['gpu']}); elsewhere it runs `model.onnx`.\n")


def render_markdown(card: dict) -> str:
    """MODEL_CARD.md from card.json."""
    m, data, code = card["model"], card["data"], card["code"]
    version = f"`{data['version']['md5']}`" if data["version"].get("md5") else data["version"].get("note")
    metrics = "\n".join(f"| {name} | {key} | {value} |" for name, values in card["metrics"].items()
                        for key, value in _scalars(values or {}) if name != "select")
    auxiliary = (f" The auxiliary classes {m['auxiliary_classes']} (after the object classes "
                 f"{m['target_classes']}) only help to separate touching objects: `border` is part of the objects' "
                 "footprint, `contact` is background; neither is ever an object." if m["auxiliary_classes"] else "")
    return f"""# Model card: {m['preset']} ({m['architecture']}, {m['encoder']}) — {', '.join(m['target_classes'][1:])}

Exported {card['exported_at']} by geofoundry {code['geofoundry']} at git revision `{code['git_revision']}`,
as bundle format `{card['format']}` (`bundle.json`).

## Model
- {m['bricks']}
- Input: {m['input']}; bands {m['bands']} (by name, in this order) at {m['gsd_m']} m ground sample distance.
- Output: {m['output']}; classes {m['classes']}.{auxiliary}
- Files: `bundle.json` (format version), `model.onnx` (ONNX), `stats.json` (input spec), `classes.json`,
  `postprocess.yaml` (vectorisation chain), `predict.yaml` (sliding windows), `card.json` (this card), `Dockerfile`,
  `build_engine.sh`, `SHA256SUMS`{compiled_files(card)}.

## Training data
- Dataset: {data['dataset'] or 'unknown'}
- Version (DVC md5 of the raw data): {version}

### Licence and attribution
{data['licence_and_attribution']}

## Metrics (at export time; empty when a stage had not run)
| source | metric | value |
|---|---|---|
{metrics}
{measured_with(card["params"].get("predict", {}))}
## Use
- Verify: `sha256sum -c SHA256SUMS` (any change, extra file or pickle is refused by `geofoundry predict`).
- CPU: `geofoundry predict --bundle <this folder> scene.tif --out out/` → `out/scene.tif` (probabilities × 255)
  and `out/scene.gpkg` (objects), or the image from `Dockerfile`.
{compiled_use(card)}- GPU: `build_engine.sh` (TensorRT, on the target GPU; engines are not portable).

## Limitations
- Valid for imagery like the training data (bands, GSD, sensor, region); check metrics on your own scenes.
- The labels' licence (see above) may impose share-alike terms on databases derived from the outputs.

## Parameters
```yaml
{yaml.safe_dump(card['params'], sort_keys=False).rstrip()}
```
"""
