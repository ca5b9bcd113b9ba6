"""lenscast: streaming strong-lens modelling beside a survey alert broker."""

from importlib.metadata import PackageNotFoundError, version

try:
    # One source of truth: pyproject.toml's version, as installed.
    __version__ = version("lenscast")
except PackageNotFoundError:  # run from a checkout that was never installed
    __version__ = "0+unknown"
