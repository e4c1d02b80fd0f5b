"""DVC stage `preprocess`: reads params.yaml, runs geofoundry.preprocess (see `geofoundry preprocess --help`)."""

from geofoundry.runner import main

if __name__ == "__main__":
    main("preprocess")
