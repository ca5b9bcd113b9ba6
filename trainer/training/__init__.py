"""Training pieces of the mass-model CNN: loss, symmetry augmentation, sigma calibration, data
shards in memory and the resumable training loop."""
