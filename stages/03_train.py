"""DVC stage `train`: reads params.yaml, runs geofoundry.train (see `geofoundry train --help`)."""

from geofoundry.pipeline.runner import main
from geofoundry.pipeline.stages import train

if __name__ == "__main__":
    main(train)
