"""One module per DVC stage: ``run(params, paths)`` maps the typed params and the conventional paths onto that
stage package's ``run``. Each module imports only its own stage package, so a stage script's import closure is
what its ``deps:`` in dvc.yaml list."""
