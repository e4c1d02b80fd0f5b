"""DVC stage `select`: reads params.yaml, runs geofoundry.select (see `geofoundry select --help`)."""

from geofoundry.pipeline.runner import main
from geofoundry.pipeline.stages import select

if __name__ == "__main__":
    main(select)
