"""DVC stage `postprocess`: reads params.yaml, runs geofoundry.postprocess (see `geofoundry postprocess --help`)."""

from geofoundry.pipeline.runner import main
from geofoundry.pipeline.stages import postprocess

if __name__ == "__main__":
    main(postprocess)
