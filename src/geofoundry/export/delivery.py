"""Files that ship beside the model: the CPU inference ``Dockerfile`` and ``build_engine.sh`` (TensorRT, trtexec)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from ..bundle.format import INPUT, OUTPUT
from ..bundle.trt_commands import MIN_SIDE, Profile, trtexec_build
from ..models.input_spec import InputSpec

# What `geofoundry predict --bundle` imports (no torch, smp, albumentations or DVC), pinned to the versions here.
INFERENCE_DISTS = ("numpy", "onnxruntime", "rasterio", "shapely", "pyproj", "pyogrio", "geopandas", "pandas",
                   "scipy", "scikit-image", "pydantic", "PyYAML", "typer", "rich")


def inference_pins() -> dict[str, str]:
    pins = {}
    for dist in INFERENCE_DISTS:
        try:
            pins[dist] = version(dist)
        except PackageNotFoundError:
            pins[dist] = "not installed"
    return pins


def dockerfile(pins: dict[str, str], base: str, git_revision: str) -> str:
    reqs = " \\\n        ".join(f"{d}=={v}" for d, v in pins.items() if v != "not installed")
    return f"""# CPU inference image for this bundle: onnxruntime, no torch, no training code.
# Build it on a connected machine from the geofoundry source tree that made the bundle
# (git revision {git_revision}), with the bundle at export/bundle:
#   docker build -f export/bundle/Dockerfile -t geofoundry-infer:<version> .
# Air-gapped sites: docker save geofoundry-infer:<version> | gzip > geofoundry-infer.tar.gz ; docker load -i ...
# Run: docker run --rm -v "$PWD:/data" geofoundry-infer:<version> /data/scene.tif --out /data/out
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
