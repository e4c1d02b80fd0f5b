"""``geofoundry dashboard``: the local web app over a project, its data page and its compare page."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import typer

from ..errors import GeofoundryError
from .reporting import report_error
from .runner import setup_logging

PARAMS = typer.Option(Path("params.yaml"), "--params", "-p", help="parameters file")
VERBOSE = typer.Option(False, "--verbose", "-v", help="debug logging")


def build_app(params: Path, catalog: Path = Path("data/catalog"), basemap: Path | None = None,
              hosts: Sequence[str] | None = None, warm: bool = True):
    """The app for the project whose parameters file is ``params`` (its folder is the project and DVC root):
    the data page, the compare page, imagery tiles. ``warm``: collect the experiments table at once."""
    from ..dashboard.app import LOOPBACK_HOSTS, create_app
    from ..dashboard.catalog_store import CatalogStore, DataSource
    from ..dashboard.compare_page import compare_page
    from ..dashboard.data_page import data_page
    from ..dashboard.files import SceneFiles
    from ..dashboard.tiles import tile_routes
    from .params import load_params
    from .paths import Paths, pinned_path

    cfg = load_params(params).select
    paths = Paths(params.parent)
    source = DataSource(params.resolve(), cfg, paths.raw, paths / str(catalog) if not catalog.is_absolute()
                        else catalog, pinned_path(cfg.split, paths))
    files = SceneFiles(paths.raw)
    pages = [data_page(CatalogStore(source), files), compare_page(paths.root, files, warm)]
    return create_app(pages, tile_routes(files, basemap), LOOPBACK_HOSTS if hosts is None else hosts)


def dashboard_command(
    params: Path = PARAMS, verbose: bool = VERBOSE,
    host: str = typer.Option("127.0.0.1", help="address to bind (a loopback address unless --allow-remote)"),
    port: int = typer.Option(8765, min=1, max=65535, help="port to serve on"),
    allow_remote: bool = typer.Option(False, "--allow-remote", help="allow a non-loopback --host (no login!)"),
    catalog: Path = typer.Option(Path("data/catalog"), help="catalog folder (built there when missing or out of "
                                 "date)", file_okay=False),
    basemap: Path | None = typer.Option(None, help="a local raster (GeoTIFF/COG) drawn under the scenes",
                                        exists=True, dir_okay=False),
):
    """Open the dashboard. Data page: the catalog on a map and in facets, live counts per split of a selection
    query, and "use this selection" (writes params.yaml's select: as `select --write` does). Compare page: the DVC
    experiments, two of them side by side on the map with their detections, a static report, and promotion to a
    model version (GTO). Local only: no request leaves the machine."""
    from ..dashboard.server import check_bind, serve

    setup_logging(verbose)
    try:
        check_bind(host, allow_remote)
        app_ = build_app(params, catalog, basemap, ["*"] if allow_remote else None)
    except GeofoundryError as e:
        report_error("dashboard", e)
        raise typer.Exit(1) from None
    serve(app_, host, port, allow_remote)
