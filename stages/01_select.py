"""DVC stage `select`: reads params.yaml, runs geofoundry.select (see `geofoundry select --help`)."""

from geofoundry.runner import main

if __name__ == "__main__":
    main("select")
