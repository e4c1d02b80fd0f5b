"""Input/output: the raw-layout reader, atomic writes, raster and vector helpers."""
