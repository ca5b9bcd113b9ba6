"""Offline trainer: lens simulations, CNN training, ONNX export and evaluation (needs the `train` extra)."""
