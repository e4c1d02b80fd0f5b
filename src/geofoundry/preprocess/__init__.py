"""Turn selected scenes into training chips: bands by name, GSD, 8-bit stretch, labels with an ignore value."""


def __getattr__(name: str):
    """Import the stage lazily, so ``geofoundry.preprocess.chips`` needs neither rasterio nor geopandas."""
    if name == "run":
        from .run import run

        globals()["run"] = run
        return run
    raise AttributeError(name)
