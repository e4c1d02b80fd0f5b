"""Tiles compressed as rows arrive (``predict.tiles``): GDAL reads the COG back exactly, for every codec and shape."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import rasterio

from geofoundry.io.tiff import read_ifds
from geofoundry.predict.sliding import Rows, Strip
from geofoundry.predict.writer import ProbabilityWriter

from .project import env


@pytest.mark.parametrize("compress", ["zstd", "deflate"])
def test_three_bands_of_an_odd_size_read_back_exactly(dev_root, compress, tmp_path):
    """A real scene's RGB and mask as a 3-class map of 1100 × 1300 pixels (edge tiles partial), written in strips
    of uneven heights with a stretch of rows never written: GDAL reads every value and mask pixel back, bands in
    order; tiles without a valid pixel have no bytes."""
    with rasterio.open(dev_root / "images" / "nairobi_ke_z19.tif") as src:
        window = rasterio.windows.Window(3328, 0, 1100, 1300)
        valid = src.read_masks(1, window=window) > 0
        values = src.read(window=window) * valid
        crs, transform = src.crs, src.window_transform(window)
    valid[500:1024] = False  # a stretch of nodata: its strips come without rows, a row of tiles stays empty
    values[:, 500:1024] = 0
    assert valid.any() and not valid.all()
    out = tmp_path / "map.tif"
    with ProbabilityWriter(out, crs, transform, 1100, 1300, ["a", "b", "c"], overviews=False,
                           compress=compress) as writer:
        top = 0
        for n in [1, 383, 216, 500, 7, 193]:
            here = valid[top:top + n]
            rows = Rows(top, n, values[:, top:top + n], np.packbits(here, axis=-1))
            writer.write(Strip(rows if here.any() else Rows(top, n), []))
            top += n
        assert top == 1300
    with rasterio.open(out) as ds:
        assert ds.compression.value.lower() == compress and ds.descriptions == ("p(a)", "p(b)", "p(c)")
        assert ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert (ds.read() == values).all() and ((ds.dataset_mask() > 0) == valid).all()
    image, mask = read_ifds(out)
    empty = [not valid[r:r + 512, c:c + 512].any() for r in range(0, 1300, 512) for c in range(0, 1100, 512)]
    assert (image.counts == 0).tolist() == (mask.counts == 0).tolist() == empty and 0 < sum(empty) < len(empty)


OUT_OF_FILES = """
import os, resource, sys
from pathlib import Path
from affine import Affine
from geofoundry.predict.writer import ProbabilityWriter

out = Path(sys.argv[1]) / "map.tif"
writer = ProbabilityWriter(out, "EPSG:32737", Affine(0.3, 0, 0, 0, -0.3, 0), 4096, 4096, ["a", "b"])
assert len(writer.factors) == 3  # four levels, one tile file each
top = max(map(int, os.listdir("/proc/self/fd")))
fd = os.open(os.devnull, os.O_RDONLY)
while fd < top:  # fill every free descriptor below the highest one
    fd = os.open(os.devnull, os.O_RDONLY)
resource.setrlimit(resource.RLIMIT_NOFILE, (fd + 3, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
try:
    with writer:
        raise AssertionError("the writer opened with room for two files")
except OSError as e:
    print(e.strerror)
"""


def test_a_writer_that_cannot_open_all_its_files_removes_those_it_opened(tmp_path):
    """With room for two more open files, the writer's third level file fails to open: the error comes out, and
    the two level files it did open (hidden temporary files beside the map) are removed."""
    proc = subprocess.run([sys.executable, "-c", OUT_OF_FILES, str(tmp_path)], capture_output=True, text=True,
                          env=env())
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "Too many open files"
    assert list(tmp_path.iterdir()) == []
