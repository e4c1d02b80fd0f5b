"""DVC stage `export`: reads params.yaml, runs geofoundry.export (see `geofoundry export --help`)."""

from geofoundry.runner import main

if __name__ == "__main__":
    main("export")
