"""The command's manners: `--version`, library warnings as one readable log line, harmless ones silenced."""

from __future__ import annotations

import logging
import warnings

from typer.testing import CliRunner

from geofoundry import __version__
from geofoundry.pipeline.cli import app
from geofoundry.pipeline.runner import setup_logging, top_package


def test_version():
    res = CliRunner().invoke(app, ["--version"])
    assert res.exit_code == 0
    assert res.output.startswith(f"geofoundry {__version__} (GDAL 3.") and "onnxruntime " in res.output


def test_warnings_become_one_line(caplog):
    with warnings.catch_warnings():
        setup_logging()
        logging.getLogger().addHandler(caplog.handler)
        warnings.warn_explicit("an  old\n  argument", FutureWarning, "/venv/lib/python3.11/site-packages/timm/x.py",
                               10)
        warnings.warn_explicit("scene.tif: 3 labels lie outside", UserWarning,
                               "/repo/src/geofoundry/catalog/scan.py", 20)
        warnings.warn_explicit("Use `@` matmul instead of `*` mul operator", PendingDeprecationWarning,
                               "/venv/lib/python3.11/site-packages/rasterio/x.py", 30)
    logged = [r.getMessage() for r in caplog.records if r.name == "warnings"]
    assert logged == ["an old argument (FutureWarning from timm)", "scene.tif: 3 labels lie outside"]
    assert top_package("/venv/lib/python3.11/site-packages/torch/nn/modules/module.py") == "torch"
