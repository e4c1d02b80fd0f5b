"""DVC stage `train`: reads params.yaml, runs geofoundry.train (see `geofoundry train --help`)."""

from geofoundry.runner import main

if __name__ == "__main__":
    main("train")
