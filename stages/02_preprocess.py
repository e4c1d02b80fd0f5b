"""DVC stage `preprocess`: reads params.yaml, runs geofoundry.preprocess (see `geofoundry preprocess --help`)."""

from geofoundry.pipeline.runner import main
from geofoundry.pipeline.stages import preprocess

if __name__ == "__main__":
    main(preprocess)
