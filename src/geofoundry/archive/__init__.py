"""Archives: a delivered bundle over many scenes (folders, lists, globs, STAC ItemCollections, GDAL virtual paths),
resumable, sharded over the processes ``torchrun`` starts, merged into one GeoPackage and described as STAC."""
