"""DVC stage `evaluate`: reads params.yaml, runs geofoundry.evaluate (see `geofoundry evaluate --help`)."""

from geofoundry.runner import main

if __name__ == "__main__":
    main("evaluate")
