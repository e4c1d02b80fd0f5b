"""Active learning: rank the unlabelled train ground by what labelling it would teach the model (uncertainty,
diversity of encoder embeddings, or both), hand the best tiles to annotators, and merge their labels back.

Nothing is imported here, so that ``al.strategies`` and ``al.score`` load without rasterio or geopandas (the
simulation in ``bench/active_learning.py`` runs them on machines that have only torch)."""
