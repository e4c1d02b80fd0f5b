"""What a scene is, so that a rerun knows whether it changed: size and modification time of a local file; for
``/vsicurl/`` URLs the server's ETag, Last-Modified and Content-Length (a HEAD request); for other GDAL virtual
paths (``/vsis3/``, ``/vsigs/``, ``/vsiaz/``, …) a digest of the raster's structure and georeferencing as GDAL
reads it with the environment's credentials."""

from __future__ import annotations

import hashlib
import json
import os
import urllib.error
import urllib.request

import rasterio

from ..errors import GeofoundryError
from ..io.read_errors import raster_errors

CURL = "/vsicurl/"


def identity(path: str) -> dict:
    """The identity of scene ``path`` (a dict of JSON values); equal identities mean an unchanged scene."""
    if path.startswith(CURL) and path[len(CURL):].startswith(("http://", "https://")):
        return _http(path[len(CURL):])
    if path.startswith("/vsi"):
        return _structure(path)
    st = os.stat(path)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _http(url: str) -> dict:
    request = urllib.request.Request(url, method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            headers = reply.headers
    except (urllib.error.URLError, OSError) as e:
        raise GeofoundryError(f"{CURL}{url}: cannot reach the scene ({e})") from None
    found = {k: headers.get(h) for k, h in (("etag", "ETag"), ("last_modified", "Last-Modified"),
                                           ("size", "Content-Length"))}
    return {k: v for k, v in found.items() if v is not None} or _structure(CURL + url)


def _structure(path: str) -> dict:
    with raster_errors(path), rasterio.open(path) as ds:
        described = {"size": [ds.width, ds.height, ds.count], "dtypes": ds.dtypes, "crs": str(ds.crs),
                     "transform": list(ds.transform)[:6], "blocks": ds.block_shapes, "tags": ds.tags(),
                     "files": ds.files}
    return {"structure_sha256": hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode())
            .hexdigest()}
