"""DVC stage `predict`: reads params.yaml, runs geofoundry.predict (see `geofoundry predict --help`)."""

from geofoundry.pipeline.runner import main
from geofoundry.pipeline.stages import predict

if __name__ == "__main__":
    main(predict)
