"""DVC stage `rps`: reads params.yaml, runs geofoundry.rps (see `geofoundry rps --help`)."""

from geofoundry.pipeline.runner import main
from geofoundry.pipeline.stages import rps

if __name__ == "__main__":
    main(rps)
