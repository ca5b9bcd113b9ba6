"""Training shards held in tensors on the training device, filled by background loader threads.

On an accelerator the CPU-side path of :class:`~lenscast.trainer.training.shards.ShardStore` (gather
a batch in host memory, copy it over every step) would starve the device. Here the whole
training set lives in preallocated device tensors (images as float16: 32 KiB per system, so a
million systems take 31 GiB). Loader threads pick up each shard as the simulator finishes it,
decompress it (zlib releases the GIL, so loading overlaps the training steps) and copy it in;
the training loop samples uniformly among the systems loaded so far. The simulator can therefore
keep writing while the network trains: every epoch sees more, and newer, systems.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import torch

from lenscast.model import parameter_spec as spec
from lenscast.trainer.dataset import manifest_complete, read_manifest
from lenscast.trainer.training.shards import read_shard


class DeviceShardCache:
    """Images and spec-ordered targets of one shard directory, on ``device``.

    Parameters
    ----------
    directory : Path
        Shard directory (may still be growing).
    device : torch.device or str
        Where the tensors live.
    capacity : int, optional
        Systems to make room for; defaults to the directory manifest's ``n``. Shards beyond it
        are not loaded.
    loaders : int
        Background loader threads.
    poll_seconds : float
        Pause between looks at the directory while no new shard is there.
    """

    def __init__(self, directory: Path, *, device: torch.device | str,
                 capacity: int | None = None, loaders: int = 2,
                 poll_seconds: float = 0.5) -> None:
        self.directory = Path(directory)
        self.device = torch.device(device)
        if capacity is None:
            capacity = read_manifest(self.directory).get("n")
        if not capacity:
            raise ValueError(f"{directory}: no manifest with the set's size yet; give a capacity")
        self.capacity = int(capacity)
        size = spec.CUTOUT_SIZE_PIX
        self.images = torch.empty((self.capacity, len(spec.BANDS), size, size),
                                  dtype=torch.float16, device=self.device)
        self.targets = torch.empty((self.capacity, spec.N_PARAMETERS), dtype=torch.float32,
                                   device=self.device)
        self.shards_loaded: list[str] = []
        self._count = 0
        self._claimed: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._poll_seconds = poll_seconds
        self._threads = [threading.Thread(target=self._load_loop, name=f"shard-loader-{i}",
                                          daemon=True) for i in range(loaders)]

    def __len__(self) -> int:
        if self._error is not None:
            raise RuntimeError(f"loading shards from {self.directory} failed") from self._error
        return self._count

    @property
    def full(self) -> bool:
        """True once ``capacity`` systems are held."""
        return self._count >= self.capacity

    @property
    def complete(self) -> bool:
        """True when the capacity is reached, or the set is complete and wholly loaded."""
        if self.full:
            return True
        with self._lock:
            return manifest_complete(self.directory) and not self._unclaimed() and \
                len(self.shards_loaded) == len(self._claimed)

    def start(self) -> DeviceShardCache:
        """Start the loader threads; return ``self``."""
        for thread in self._threads:
            thread.start()
        return self

    def close(self) -> None:
        """Stop the loader threads (each finishes the shard in hand)."""
        self._stop.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join()

    def wait_for(self, systems: int, *, timeout_s: float | None = None) -> int:
        """Block until ``systems`` are held (or the set is complete); return how many are.

        Raises
        ------
        TimeoutError
            If ``timeout_s`` passes first.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while len(self) < min(systems, self.capacity) and not self.complete:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"{self.directory}: {len(self)} of {systems} systems after "
                                   f"{timeout_s} s")
            time.sleep(0.05)
        return len(self)

    def sample(self, count: int, generator: torch.Generator
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """``count`` systems drawn uniformly (with replacement) from those held.

        Returns
        -------
        images : Tensor, shape (count, 4, 64, 64), float32
        targets : Tensor, shape (count, 7), float32
        """
        index = torch.randint(0, len(self), (count,), device=self.device, generator=generator)
        return self.images[index].float(), self.targets[index]

    def first(self, count: int) -> np.ndarray:
        """The first ``count`` held cutouts as a float32 host array (for set-up statistics)."""
        return self.images[: min(count, len(self))].float().cpu().numpy()

    def _unclaimed(self) -> list[Path]:
        return [p for p in sorted(self.directory.glob("shard_*.npz"))
                if p.name not in self._claimed]

    def _load_loop(self) -> None:
        try:
            while not self._stop.is_set() and not self.full:
                with self._lock:
                    pending = self._unclaimed()
                    path = pending[0] if pending else None
                    if path is not None:
                        self._claimed.add(path.name)
                if path is None:
                    if manifest_complete(self.directory):
                        return
                    time.sleep(self._poll_seconds)
                    continue
                shard = read_shard(path)
                if shard is None:  # still being written: give it back, look again later
                    with self._lock:
                        self._claimed.discard(path.name)
                    time.sleep(self._poll_seconds)
                    continue
                self._append(path.name, *shard)
        except BaseException as error:  # surfaced to the training thread by __len__
            self._error = error

    def _append(self, name: str, images: np.ndarray, targets: np.ndarray) -> None:
        # The copy runs under the lock so the held systems are always one contiguous prefix:
        # the sampler never draws a slot another thread is still filling.
        with self._lock:
            start = self._count
            n = min(len(targets), self.capacity - start)
            if n <= 0:
                return
            self.images[start : start + n].copy_(torch.from_numpy(images[:n]))
            self.targets[start : start + n].copy_(torch.from_numpy(targets[:n]))
            self.shards_loaded.append(name)
            self._count = start + n
