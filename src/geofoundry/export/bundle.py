"""Write ``export/bundle/``: everything a site needs to run the model, checksummed, built in a temporary folder and
renamed into place (never half-written)."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import yaml

from ..bundle.format import FORMAT_FILE, descriptor
from ..bundle.manifest import PACKAGE, write_manifest
from ..bundle.mlm import MLM, mlm_json
from ..bundle.reader import CARD, CLASSES, COMPILED, MODEL, POSTPROCESS, PREDICT, STATS, open_bundle
from ..config import PostprocessConfig, PredictConfig
from ..io.atomic import atomic_path
from ..models.input_spec import InputSpec
from .card import render_markdown
from .delivery import build_engine_script, dockerfile


def classes_json(spec: InputSpec, outputs: list[str]) -> dict:
    """``classes.json``: the model's output classes (background first) with their class paths (none for background
    and the auxiliary classes), and which of them are ``auxiliary`` (after the chip classes: border, contact)."""
    extra = outputs[len(spec.classes):]
    return {"names": outputs, "paths": [*spec.class_paths, *[None] * len(extra)], "auxiliary": extra}


def write_bundle(bundle_dir: Path, onnx_path: Path, spec: InputSpec, outputs: list[str],
                 postprocess: PostprocessConfig, predict: PredictConfig, card: dict, docker_base: str,
                 compiled: tuple[Path, dict] | None = None) -> str:
    """Write the bundle of a model with output classes ``outputs`` and check it with the reader; return the
    sha256 of its SHA256SUMS. ``compiled``: a compiled package and its record (build target and input contract),
    shipped as ``model.pt2`` and ``compiled.json``."""
    predict_yaml = {"tile": predict.tile, "overlap": predict.overlap, "batch_size": predict.batch_size}
    texts = {
        FORMAT_FILE: json.dumps(descriptor(), indent=2) + "\n",
        STATS: json.dumps(asdict(spec), indent=2) + "\n",
        CLASSES: json.dumps(classes_json(spec, outputs), indent=2) + "\n",
        POSTPROCESS: yaml.safe_dump(postprocess.model_dump(mode="json"), sort_keys=False),
        PREDICT: yaml.safe_dump(predict_yaml, sort_keys=False),
        CARD: json.dumps(card, indent=2) + "\n",
        "MODEL_CARD.md": render_markdown(card),
        "Dockerfile": dockerfile(card["runtime"], docker_base, card["code"]["git_revision"]),
        "build_engine.sh": build_engine_script(spec, predict.tile, predict.batch_size),
        MLM: mlm_json(asdict(spec), classes_json(spec, outputs), predict_yaml, card),
    }
    if compiled is not None:
        texts[COMPILED] = json.dumps(compiled[1], indent=2) + "\n"
    with atomic_path(bundle_dir) as tmp:
        tmp.mkdir()
        shutil.copyfile(onnx_path, tmp / MODEL)
        if compiled is not None:
            shutil.copyfile(compiled[0], tmp / PACKAGE)
        for name, text in texts.items():
            (tmp / name).write_text(text)
        (tmp / "build_engine.sh").chmod(0o755)
        digest = write_manifest(tmp)
        open_bundle(tmp, digest)
    return digest
