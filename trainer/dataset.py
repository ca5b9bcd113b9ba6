"""Simulation shards on disk: writer, manifest and loader.

Layout (docs/architecture.md)::

    DIR/manifest.json          run settings, shard list, completeness, cut statistics
    DIR/shard_00000.npz        compressed: "images" float32 (n, 4, 64, 64) + one array per truth

Images are griz calibrated coadd fluxes (AB zeropoint 27), north up east left
(``x = -(col - 31.5) * 0.168"``, ``y = (row - 31.5) * 0.168"``). Truth columns: the parameter
spec's mass parameters (lenstronomy conventions), ``gamma`` (power-law slope, 2 for the SIE),
redshifts, source position, ``image_x``, ``image_y``, ``time_delay_days`` (n, 4: arrival order,
NaN padded), ``n_images``, ``source_kind`` (0 parametric, 1 HUDF), ``galaxy_id``, per-band
seeing / PSF / background, lens and source light parameters, ``arc_snr`` (n, 4) and ``split``.

Shards are written to a temporary name and renamed, so a shard file that exists is complete;
the manifest says ``"complete": true`` only once every shard of the run exists.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = "1"


def shard_name(index: int) -> str:
    """File name of shard ``index``, e.g. ``shard_00012.npz``."""
    return f"shard_{index:05d}.npz"


def write_shard(path: str | Path, *, images: np.ndarray, truths: Mapping[str, np.ndarray]) -> Path:
    """Write one compressed shard atomically.

    Parameters
    ----------
    path : str or Path
        Destination ``.npz``.
    images : ndarray, shape (n, 4, 64, 64)
        Stored as float32.
    truths : mapping of str to ndarray
        Columns with first axis ``n`` (numeric or fixed-width strings; never objects).

    Returns
    -------
    Path
    """
    path = Path(path)
    n = len(images)
    for name, column in truths.items():
        if name == "images":
            raise ValueError("'images' is reserved for the cutouts")
        if len(column) != n:
            raise ValueError(f"truth column {name!r} has {len(column)} rows, images have {n}")
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        # allow_pickle (numpy's default) is named so that numpy's stub does not match the
        # truth columns' mapping to that boolean keyword.
        np.savez_compressed(handle, allow_pickle=True,
                            images=np.asarray(images, dtype=np.float32),
                            **{k: np.asarray(v) for k, v in truths.items()})
    os.replace(tmp, path)
    return path


def read_manifest(directory: str | Path) -> dict:
    """The run's manifest (``{}`` if it does not exist yet).

    Raises
    ------
    json.JSONDecodeError
        If the file is not JSON (:func:`write_manifest` replaces it atomically, so only a
        manifest written some other way can be caught half written).
    """
    path = Path(directory) / MANIFEST_NAME
    if not path.exists():
        return {}
    return json.loads(path.read_text())


def manifest_complete(directory: str | Path) -> bool:
    """True when the run's manifest says the simulator has finished it."""
    try:
        manifest = read_manifest(directory)
    except json.JSONDecodeError:  # being rewritten right now
        return False
    return bool(manifest.get("complete", False)) or manifest.get("status") == "complete"


def write_manifest(directory: str | Path, manifest: Mapping) -> Path:
    """Write ``manifest.json`` atomically (readers polling it never see a partial file)."""
    path = Path(directory) / MANIFEST_NAME
    tmp = path.with_name(MANIFEST_NAME + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=_json_default) + "\n")
    os.replace(tmp, path)
    return path


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


@dataclass
class SimulatedSet:
    """Images and truths loaded from shards.

    Attributes
    ----------
    images : ndarray, float32, shape (n, 4, 64, 64)
        griz coadd flux (zeropoint 27).
    truths : dict of str to ndarray
        One array per truth column, first axis ``n``.
    manifest : dict
        The run's manifest.
    """

    images: np.ndarray
    truths: dict[str, np.ndarray]
    manifest: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.images)


def shard_paths(directory: str | Path) -> list[Path]:
    """Existing (complete) shard files of a run, in index order."""
    return sorted(Path(directory).glob("shard_[0-9][0-9][0-9][0-9][0-9].npz"))


def read_shard(path: str | Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The images and truth columns of one shard file.

    Raises
    ------
    OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError
        When the file is unreadable (e.g. a foreign ``.npz`` still being written).
    """
    # Our own handle: np.load leaks it when the zip is unreadable.
    with Path(path).open("rb") as handle, np.load(handle, allow_pickle=False) as data:
        return data["images"], {k: data[k] for k in data.files if k != "images"}


def iter_shards(directory: str | Path) -> Iterator[tuple[Path, np.ndarray, dict[str, np.ndarray]]]:
    """Yield ``(path, images, truths)`` per shard in index order, one shard in memory at a time."""
    paths = shard_paths(directory)
    if not paths:
        raise FileNotFoundError(f"no shards in {directory}")
    for path in paths:
        yield path, *read_shard(path)


def load_truths(directory: str | Path) -> dict[str, np.ndarray]:
    """All truth columns of a run without decompressing the images (fast; for statistics)."""
    columns: dict[str, list[np.ndarray]] = {}
    for path in shard_paths(directory):
        with np.load(path, allow_pickle=False) as data:
            for name in data.files:
                if name != "images":
                    columns.setdefault(name, []).append(data[name])
    if not columns:
        raise FileNotFoundError(f"no shards in {directory}")
    return {k: np.concatenate(v) for k, v in columns.items()}


def load_sets(directories: Sequence[str | Path]) -> SimulatedSet:
    """Load several runs as one set, in the order given (a mixed validation set, say).

    Parameters
    ----------
    directories : sequence of str or Path
        Run directories; every one must hold the same truth columns.

    Returns
    -------
    SimulatedSet
        Images and truths concatenated; the manifest is ``{"sources": [...]}``, each run's own
        manifest with its ``directory``.

    Raises
    ------
    ValueError
        For no directory, or runs whose truth columns differ (named in the message).
    """
    if not directories:
        raise ValueError("load_sets needs at least one directory")
    sets = [load_shards(d) for d in directories]
    if len(sets) == 1:
        return sets[0]
    columns = set(sets[0].truths)
    for directory, part in zip(directories[1:], sets[1:], strict=True):
        if set(part.truths) != columns:
            differ = sorted(columns.symmetric_difference(part.truths))
            raise ValueError(f"{directory} differs from {directories[0]} in truth columns "
                             f"{', '.join(differ)}")
    return SimulatedSet(
        np.concatenate([part.images for part in sets]),
        {name: np.concatenate([part.truths[name] for part in sets]) for name in sorted(columns)},
        {"sources": [{**part.manifest, "directory": str(directory)}
                     for directory, part in zip(directories, sets, strict=True)]},
    )


def load_shards(directory: str | Path, *, limit: int | None = None) -> SimulatedSet:
    """Load the shards of a run into memory.

    Parameters
    ----------
    directory : str or Path
        Run directory (``DIR`` of ``lenscast simulate --out DIR``).
    limit : int, optional
        Load at most this many systems (the first ones, in shard order).

    Returns
    -------
    SimulatedSet
        Works on a run still in progress (it reads the shards that exist); check
        ``manifest["complete"]`` for a finished run.
    """
    manifest = read_manifest(directory)
    sizes = {s["name"]: int(s["n"]) for s in manifest.get("shards", [])}
    paths = shard_paths(directory)
    if not paths:
        raise FileNotFoundError(f"no shards in {directory}")
    # Preallocate from the manifest's shard sizes: concatenating 10^5 cutouts would need twice
    # their memory (~8 GB) at the peak.
    known = all(p.name in sizes for p in paths)
    total = sum(sizes[p.name] for p in paths) if known else None
    if total is not None and limit is not None:
        total = min(total, limit)
    images: np.ndarray | list[np.ndarray] = (
        np.empty((total, 4, 64, 64), dtype=np.float32) if total is not None else [])
    columns: dict[str, list[np.ndarray]] = {}
    count = 0
    for path in paths:
        if limit is not None and count >= limit:
            break
        with np.load(path, allow_pickle=False) as data:
            shard_images = data["images"]
            take = len(shard_images) if limit is None else min(len(shard_images), limit - count)
            if isinstance(images, np.ndarray):
                images[count:count + take] = shard_images[:take]
            else:
                images.append(shard_images[:take])
            for name in data.files:
                if name != "images":
                    columns.setdefault(name, []).append(data[name][:take])
        count += take
    if isinstance(images, list):
        images = np.concatenate(images)
    return SimulatedSet(images[:count], {k: np.concatenate(v) for k, v in columns.items()},
                        manifest)
