"""Offline trainer: lens simulations, CNN training, ONNX export, evaluation (`train` extra)."""
