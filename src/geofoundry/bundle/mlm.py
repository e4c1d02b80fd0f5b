"""``mlm.json``: the bundle's model described as a STAC item with the machine-learning-model (MLM) extension, so
that pystac, QGIS and catalog servers can list and read it. Made from the bundle's own contracts (``stats.json``,
``classes.json``, ``predict.yaml``, ``card.json``): the export writes it, and the upgrader from format 3 makes it
in memory for older bundles."""

from __future__ import annotations

import json

MLM = "mlm.json"
SCHEMA = "https://stac-extensions.github.io/mlm/v1.4.0/schema.json"


def mlm_item(stats: dict, classes: dict, predict: dict, card: dict) -> dict:
    """The STAC item (a dict) of the model these bundle files describe; ``geometry`` null: a model has no place."""
    model, bands, names = card["model"], stats["bands"], classes["names"]
    tile = predict["tile"]
    return {
        "type": "Feature", "stac_version": "1.1.0", "stac_extensions": [SCHEMA],
        "id": model.get("preset", "model"), "geometry": None,
        "properties": {
            "datetime": card["exported_at"], "description": model.get("bricks", ""),
            "mlm:name": model.get("preset", "model"), "mlm:architecture": model.get("architecture", "unknown"),
            "mlm:tasks": ["semantic-segmentation", "object-detection"], "mlm:framework": "ONNX",
            "mlm:framework_version": card.get("runtime", {}).get("onnxruntime", ""),
            "mlm:accelerator": "amd64", "mlm:accelerator_constrained": False,
            "mlm:input": [{
                "name": "raw", "bands": bands,
                "input": {"shape": [-1, len(bands), tile, tile], "dim_order": ["batch", "bands", "height", "width"],
                          "data_type": "float32"},
                "description": f"raw band values at {stats['gsd_m']} m GSD ({stats['source_dtype']}); the per-band "
                               "stretch is inside the model",
                "pre_processing_function": None}],
            "mlm:output": [{
                "name": "probabilities", "tasks": ["semantic-segmentation"],
                "result": {"shape": [-1, len(names), tile, tile], "dim_order": ["batch", "channel", "height", "width"],
                           "data_type": "float32"},
                "classification:classes": [{"value": i, "name": n} for i, n in enumerate(names)],
                "post_processing_function": None}],
            "mlm:hyperparameters": {"tile": tile, "overlap": predict["overlap"], "batch_size": predict["batch_size"]},
        },
        "links": [],
        "assets": {"model": {"href": "./model.onnx", "type": "application/octet-stream; application=onnx",
                             "roles": ["mlm:model"], "mlm:artifact_type": "onnx", "title": "the deployed model"}},
    }


def mlm_json(stats: dict, classes: dict, predict: dict, card: dict) -> str:
    return json.dumps(mlm_item(stats, classes, predict, card), indent=2) + "\n"
