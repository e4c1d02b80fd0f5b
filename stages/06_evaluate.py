"""DVC stage `evaluate`: reads params.yaml, runs geofoundry.evaluate (see `geofoundry evaluate --help`)."""

from geofoundry.pipeline.runner import main
from geofoundry.pipeline.stages import evaluate

if __name__ == "__main__":
    main(evaluate)
