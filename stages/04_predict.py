"""DVC stage `predict`: reads params.yaml, runs geofoundry.predict (see `geofoundry predict --help`)."""

from geofoundry.runner import main

if __name__ == "__main__":
    main("predict")
