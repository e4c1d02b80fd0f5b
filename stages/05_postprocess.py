"""DVC stage `postprocess`: reads params.yaml, runs geofoundry.postprocess (see `geofoundry postprocess --help`)."""

from geofoundry.runner import main

if __name__ == "__main__":
    main("postprocess")
