"""Running a delivered bundle: prediction on scenes (onnxruntime on CPU, no training code) and the acceptance
evaluation on a client's dataset. Needs no params.yaml."""
