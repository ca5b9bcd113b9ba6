"""lenscast: streaming strong-lens modelling beside a survey alert broker."""

__version__ = "0.1.0"
