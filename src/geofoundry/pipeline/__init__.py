"""The pipeline layer on top of the stage packages: params.yaml reading and writing, conventional paths, the
stage runner and the ``geofoundry`` command. Library packages never import it."""
