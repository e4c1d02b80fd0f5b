"""DVC stage `export`: reads params.yaml, runs geofoundry.export (see `geofoundry export --help`)."""

from geofoundry.pipeline.runner import main
from geofoundry.pipeline.stages import export

if __name__ == "__main__":
    main(export)
