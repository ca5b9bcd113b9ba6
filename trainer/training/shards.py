"""Simulation shards held in memory for training, growing while the simulator still writes.

Reads the shard contract of ``docs/architecture.md`` (``DIR/shard_NNNNN.npz`` with ``images``
float32 ``(n, 4, 64, 64)`` and one array per truth column) with
:func:`lenscast.trainer.dataset.read_shard`, one shard at a time, so a
training run can start on the shards written so far and pick up new ones at every epoch.
A store may read several directories (a training mix); each system carries its ``is_lens``
label (1 where a shard has no such column: sets simulated before non-lenses existed).
Images are kept as float16 (half the memory of 60k cutouts: 2 GB instead of 4 GB); its
relative precision of 5e-4 is far below the pixel noise, and the values (coadd flux, zeropoint
27) stay well inside its range.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from lenscast.model import parameter_spec as spec
from lenscast.trainer import dataset

_FLOAT16_MAX = 60000.0


def read_shard(path: Path) -> tuple[NDArray[np.float16], NDArray[np.float32]] | None:
    """Images (float16) and spec-ordered targets of one shard; None while it is unreadable.

    Raises
    ------
    ValueError
        If a pixel value lies beyond the float16 range.
    """
    shard = read_labelled_shard(path)
    return None if shard is None else shard[:2]


def read_labelled_shard(path: Path) -> tuple[NDArray[np.float16], NDArray[np.float32],
                                             NDArray[np.float32]] | None:
    """:func:`read_shard` plus the ``is_lens`` labels (float32 0/1; all 1 without the column)."""
    try:
        images, truths = dataset.read_shard(path)
        targets = np.stack([truths[n] for n in spec.MASS_PARAMETER_NAMES], axis=-1)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
        return None
    labels = truths.get("is_lens", np.ones(len(targets)))
    if np.abs(images).max() > _FLOAT16_MAX:
        raise ValueError(f"{path}: pixel values beyond the float16 range")
    return images.astype(np.float16), targets.astype(np.float32), labels.astype(np.float32)


class ShardStore:
    """Images and spec-ordered targets of the shards of one directory, loaded incrementally.

    Parameters
    ----------
    directory : Path or sequence of Path
        Shard directory, or several (their shards interleaved by index as they load).
    limit : int, optional
        Stop loading once this many systems are held.
    """

    def __init__(self, directory: Path | Sequence[Path], *, limit: int | None = None) -> None:
        self.directories = ([Path(directory)] if isinstance(directory, str | Path)
                            else [Path(d) for d in directory])
        if not self.directories:
            raise ValueError("a shard store needs at least one directory")
        self.directory = self.directories[0]
        self.limit = limit
        self._loaded: set[Path] = set()
        self._images: list[NDArray[np.float16]] = []
        self._targets: list[NDArray[np.float32]] = []
        self._labels: list[NDArray[np.float32]] = []
        self.images: NDArray[np.float16] = np.empty((0, len(spec.BANDS), 64, 64), np.float16)
        self.targets: NDArray[np.float32] = np.empty((0, spec.N_PARAMETERS), np.float32)
        self.is_lens: NDArray[np.float32] = np.empty(0, np.float32)

    def __len__(self) -> int:
        return int(self.targets.shape[0])

    @property
    def complete(self) -> bool:
        """True when the simulator marked the directory complete and every shard is loaded."""
        return (all(dataset.manifest_complete(d) for d in self.directories)
                and not self._pending())

    def _pending(self) -> list[Path]:
        paths = [p for d in self.directories for p in sorted(d.glob("shard_*.npz"))
                 if p not in self._loaded]
        # Interleaved by shard index, so a limited store (validation) samples every directory.
        return sorted(paths, key=lambda p: (p.stem, str(p.parent)))

    def refresh(self) -> int:
        """Load shards written since the last call; return how many systems were added."""
        added = 0
        for path in self._pending():
            if self.limit is not None and len(self) + added >= self.limit:
                break
            shard = read_labelled_shard(path)
            if shard is None:
                continue  # still being written; the next refresh picks it up
            images, targets, labels = shard
            self._images.append(images)
            self._targets.append(targets)
            self._labels.append(labels)
            self._loaded.add(path)
            added += len(targets)
        if added:
            self.images = np.concatenate(self._images)
            self.targets = np.concatenate(self._targets)
            self.is_lens = np.concatenate(self._labels)
            self._images, self._targets = [self.images], [self.targets]
            self._labels = [self.is_lens]
            if self.limit is not None:
                self.images, self.targets = self.images[: self.limit], self.targets[: self.limit]
                self.is_lens = self.is_lens[: self.limit]
        return added


def background_noise(images: NDArray[np.floating], *, border: int = 4) -> NDArray[np.float64]:
    """Typical per-band background rms of cutouts, from their border pixels.

    Parameters
    ----------
    images : ndarray, shape (n, bands, size, size)
        Calibrated flux.
    border : int
        Width of the frame used, pixels (lens light is weakest there).

    Returns
    -------
    ndarray, shape (bands,)
        Median over cutouts of ``1.4826 * MAD`` of the frame pixels, flux units.
    """
    images = np.asarray(images, dtype=np.float32)
    mask = np.ones(images.shape[-2:], dtype=bool)
    mask[border:-border, border:-border] = False
    frame = images[..., mask]
    mad = np.median(np.abs(frame - np.median(frame, axis=-1, keepdims=True)), axis=-1)
    return np.median(1.4826 * mad, axis=0).astype(np.float64)
