"""The run's results as a STAC catalog (``<out>/stac/catalog.json``, self-contained, relative links): per scene an
input item (the STAC item it came from, or one made from the raster) and a label item (label extension) whose
assets are the probability COG and the objects' GeoPackage, linked to its input item as ``source``; the model
item of the bundle (``mlm.json``, STAC MLM extension) is kept beside them and linked as ``derived_from``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pystac
import rasterio
from pystac.extensions.label import LabelExtension, LabelTask, LabelType
from rasterio.warp import transform_geom
from shapely.geometry import box, mapping, shape

from ..bundle.reader import Bundle
from ..io.atomic import atomic_path
from ..io.read_errors import raster_errors
from .sources import Scene

COG = "image/tiff; application=geotiff; profile=cloud-optimized"
GPKG = "application/geopackage+sqlite3"


def footprint(path: str) -> dict:
    """The raster's bounds as a GeoJSON polygon in EPSG:4326."""
    with raster_errors(path), rasterio.open(path) as ds:
        return transform_geom(ds.crs, "EPSG:4326", mapping(box(*ds.bounds)))


def input_item(scene: Scene, when: dt.datetime) -> pystac.Item:
    """The scene's STAC item: the one it came from, or one made from its raster (one ``image`` asset)."""
    if scene.item is not None:
        item = pystac.Item.from_dict(scene.item)
        item.clear_links()
        return item
    geometry = footprint(scene.path)
    item = pystac.Item(scene.name, geometry, list(_bounds(geometry)), when, {})
    item.add_asset("image", pystac.Asset(scene.path, media_type=COG if scene.path.endswith(".tif") else None,
                                         roles=["data"]))
    return item


def _bounds(geometry: dict) -> tuple[float, float, float, float]:
    return shape(geometry).bounds


def label_item(scene: Scene, tif: Path, gpkg: Path, classes: list[str], when: dt.datetime,
               source: pystac.Item, model: pystac.Item) -> pystac.Item:
    geometry = footprint(str(tif))
    item = pystac.Item(f"{scene.name}-labels", geometry, list(_bounds(geometry)), when, {})
    label = LabelExtension.ext(item, add_if_missing=True)
    label.apply(label_description=f"objects detected by {model.id}", label_type=LabelType.VECTOR,
                label_properties=["class_name"], label_classes=[_classes(classes)],
                label_tasks=[LabelTask.SEGMENTATION, LabelTask.DETECTION], label_methods=["automated"])
    label.add_source(source, assets=list(source.assets)[:1])
    item.add_asset("probabilities", pystac.Asset(str(tif.resolve()), media_type=COG, roles=["data"],
                                                 title="p(class) per pixel, round(255·p)"))
    item.add_asset("labels", pystac.Asset(str(gpkg.resolve()), media_type=GPKG, roles=["labels", "labels-vector"],
                                          title="objects: class_id, class_name, score, area_m2"))
    item.add_link(pystac.Link("derived_from", model, media_type=pystac.MediaType.JSON, title="model (STAC MLM)"))
    return item


def _classes(classes: list[str]):
    from pystac.extensions.label import LabelClasses

    return LabelClasses.create(classes=classes, name="class_name")


def write_catalog(folder: Path, bundle: Bundle, finished: list[tuple[Scene, Path, Path]], when: dt.datetime) -> Path:
    """Write the catalog of ``finished`` scenes (scene, probability COG, objects) into ``folder`` (replaced at
    once); return its ``catalog.json``."""
    catalog = pystac.Catalog("geofoundry-predictions", f"Objects and probabilities predicted by the bundle "
                             f"{bundle.root.name} (SHA256SUMS sha256 {bundle.digest})", title="predictions")
    model = pystac.Item.from_dict(bundle.json("mlm.json"))
    model.clear_links()
    model.assets.clear()
    model.add_asset("model", pystac.Asset(str((bundle.root / "model.onnx").resolve()), roles=["mlm:model"],
                                          media_type="application/octet-stream; application=onnx",
                                          extra_fields={"mlm:artifact_type": "onnx"}))
    inputs = pystac.Catalog("inputs", "the scenes predicted")
    catalog.add_child(inputs)
    catalog.add_item(model)
    classes = bundle.spec.classes[1:]
    for scene, tif, gpkg in finished:
        source = input_item(scene, when)
        inputs.add_item(source)
        catalog.add_item(label_item(scene, tif, gpkg, classes, when, source, model))
    with atomic_path(folder) as tmp:
        tmp.mkdir()
        catalog.normalize_hrefs(f"{tmp}/")
        catalog.make_all_asset_hrefs_relative()
        catalog.save(pystac.CatalogType.SELF_CONTAINED)
    return folder / "catalog.json"
