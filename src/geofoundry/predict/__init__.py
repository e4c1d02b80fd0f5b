"""Predict whole scenes by streaming, blended sliding windows into probability GeoTIFFs."""


def __getattr__(name: str):
    """Import the stage lazily, so that the sliding window and the model functions load without rasterio."""
    if name == "run":
        from .run import run

        globals()["run"] = run
        return run
    raise AttributeError(name)
