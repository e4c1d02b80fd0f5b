"""The model's contract, shared by training, prediction and delivery: named presets (segmentation_models_pytorch +
timm encoders), checkpoints, the input spec (bands, GSD, stretch and its inverse) and the output classes.

Nothing is imported here, so that ``models.input_spec`` or ``models.outputs`` load without torch."""
