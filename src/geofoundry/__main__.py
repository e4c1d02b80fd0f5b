"""``python -m geofoundry``: the ``geofoundry`` command."""

from .pipeline.cli import app

app()
