"""Files that ship beside the model: the CPU inference ``Dockerfile`` and ``build_engine.sh`` (TensorRT, trtexec)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, distribution, requires

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ..bundle.format import INPUT, OUTPUT
from ..bundle.trt_commands import MIN_SIDE, Profile, trtexec_build
from ..errors import GeofoundryError
from ..models.input_spec import InputSpec

EXTRA = "inference"  # geofoundry's extra: what `geofoundry predict --bundle` / `evaluate --bundle` import


def inference_requirements() -> list[Requirement]:
    """The ``inference`` extra of the installed geofoundry's metadata (``[project.optional-dependencies]``)."""
    try:
        declared = [Requirement(r) for r in requires("geofoundry") or []]
    except PackageNotFoundError:
        declared = []
    extra = [r for r in declared if r.marker is not None and r.marker.evaluate({"extra": EXTRA})
             and not r.marker.evaluate({"extra": ""})]
    if not extra:
        raise GeofoundryError(f"the installed geofoundry's metadata has no '{EXTRA}' extra (installed from an older "
                              "pyproject.toml?): reinstall it, e.g. pip install -c requirements.lock -e '.[dev]'")
    return extra


def inference_pins() -> dict[str, str]:
    """Every distribution that the ``inference`` extra needs on this interpreter (its requirements, theirs, and so
    on), at the version installed here: the Dockerfile installs exactly these."""
    pins: dict[str, str] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = inference_requirements()
    while todo:
        req = todo.pop()
        key = (canonicalize_name(req.name), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = distribution(req.name)
        except PackageNotFoundError:
            raise GeofoundryError(f"{req.name} (needed by the '{EXTRA}' extra) is not installed here, so the "
                                  f"bundle's Dockerfile cannot pin it: pip install -e '.[{EXTRA}]'") from None
        pins[dist.metadata["Name"]] = dist.version
        for line in dist.requires or []:
            dep = Requirement(line)
            if dep.marker is None or any(dep.marker.evaluate({"extra": e}) for e in ("", *req.extras)):
                todo.append(dep)
    return dict(sorted(pins.items(), key=lambda kv: canonicalize_name(kv[0])))


def dockerfile(pins: dict[str, str], base: str, git_revision: str) -> str:
    """The CPU inference image: ``pins`` (:func:`inference_pins`), then geofoundry from its source tree."""
    reqs = " \\\n        ".join(f"{d}=={v}" for d, v in pins.items())
    return f"""# CPU inference image for this bundle: onnxruntime, no torch, no training code.
# Build it on a connected machine from the geofoundry source tree that made the bundle
# (git revision {git_revision}), with the bundle at export/bundle:
#   docker build -f export/bundle/Dockerfile -t geofoundry-infer:<version> .
# Air-gapped sites: docker save geofoundry-infer:<version> | gzip > geofoundry-infer.tar.gz ; docker load -i ...
# Run: docker run --rm -v "$PWD:/data" geofoundry-infer:<version> /data/scene.tif --out /data/out
# The packages are geofoundry's '{EXTRA}' extra and all they need, as installed where the bundle was exported.
FROM {base}
ENV PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \\
    NO_ALBUMENTATIONS_UPDATE=1 HF_HUB_OFFLINE=1
RUN pip install \\
        {reqs}
COPY pyproject.toml /opt/geofoundry/pyproject.toml
COPY src /opt/geofoundry/src
RUN pip install --no-deps /opt/geofoundry
COPY export/bundle /bundle
RUN python -c "from geofoundry.bundle import open_bundle; open_bundle('/bundle')"
USER 65534:65534
WORKDIR /data
ENTRYPOINT ["geofoundry", "predict", "--bundle", "/bundle"]
"""


def build_engine_script(spec: InputSpec, tile: int, batch: int) -> str:
    """``build_engine.sh``: the ``trtexec`` lines of ``geofoundry build-engine`` for the bundle's model."""
    profile = Profile(len(spec.bands), tile, batch)
    fp16 = " ".join(trtexec_build('"$HERE/model.onnx"', '"${OUT:-model_fp16.plan}"', profile))
    int8 = " ".join(trtexec_build('"$HERE/model.onnx"', '"${OUT:-model_int8.plan}"', profile,
                                  calib='"${2:?usage: $0 int8 CALIBRATION_CACHE}"'))
    return f"""#!/usr/bin/env bash
# TensorRT engine for THIS GPU and TensorRT version, from model.onnx (engines are not portable: build on the target).
# Input "{INPUT}": {profile.bands} bands {spec.bands}, raw values, float32; output "{OUTPUT}".
# Batches of 1 to {batch} tiles of {MIN_SIDE} to {tile} px, as in predict.yaml. Needs trtexec (TensorRT) on PATH.
#
#   ./build_engine.sh fp16            -> model_fp16.plan (or $OUT)
#   ./build_engine.sh int8 CACHE      -> model_int8.plan, with the int8 scales of calibration cache CACHE (int8
#                                        without calibration on real chips is inaccurate). Make CACHE from train
#                                        chips with polygraphy, which also checks the engine on val chips:
#     geofoundry build-engine --bundle <this folder> --int8 --chips data/chips --out model_int8.plan
#                                     -> model_int8.plan and model_int8.calibration.cache
# Check any engine's masks against onnxruntime on val chips: geofoundry build-engine --bundle <this folder> [--int8].
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
case "${{1:-fp16}}" in
  fp16) {fp16} ;;
  int8) {int8} ;;
  *) echo "usage: $0 fp16 | int8 CALIBRATION_CACHE" >&2; exit 2 ;;
esac
"""
