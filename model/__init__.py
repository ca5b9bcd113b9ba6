"""Lens mass-model physics (pure NumPy) and the ONNX mass-model predictor.

Nothing here imports torch or lenstronomy: this package is on the consumer's hot path.
"""
