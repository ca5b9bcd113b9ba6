"""The resumable training loop: β-NLL, D4 augmentation, cosine schedule, per-epoch checkpoints.

A run directory holds ``config.json`` (what was asked), ``last.pt`` (resume point, written
after every epoch, atomically), ``epoch_NNN.pt`` (the same, kept) and ``history.jsonl`` (one
validation record per epoch). Every checkpoint is complete for export: network configuration,
weights, input noise scales and the sigma calibration fitted on the validation set that epoch.

With the lens-evidence head (``network.evidence``) the loss adds ``evidence_weight`` times the
binary cross-entropy of its logit against each system's ``is_lens``; the mass parameters keep
their β-NLL on every system (a non-lens's mass truths are a draw from the prior, so the head
learns to answer the prior, with a sigma that covers it, where it sees no lens). The mass
calibration is fitted on the validation lenses only.

Schedule: linear warm-up, then cosine decay of the learning rate over the run's progress,
``max(step / total_steps, elapsed / budget)``. The time term lets a wall-clock budget
(``--max-minutes``) end the run with an annealed network rather than one cut off at a high
learning rate; without a budget the schedule depends on the step count only.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from lenscast.model import parameter_spec as spec
from lenscast.trainer.network import LensCNN, NetworkConfig
from lenscast.trainer.training.augmentation import SymmetryAugmenter
from lenscast.trainer.training.calibration import coverage, median_offsets, sigma_scale_factors
from lenscast.trainer.training.device_store import DeviceShardCache
from lenscast.trainer.training.lens_evidence import evidence_summary
from lenscast.trainer.training.loss import beta_nll
from lenscast.trainer.training.shards import ShardStore, background_noise
from lenscast.trainer.training.warm_start import model_from_onnx


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters (the ``--config`` file, JSON).

    Parameters
    ----------
    network : NetworkConfig
        Architecture.
    epochs : int
        Number of epochs of ``samples_per_epoch`` systems each.
    samples_per_epoch : int
        Systems per epoch, drawn without replacement from the shards loaded so far (an epoch
        is a fixed number of steps even while the training set is still growing).
    batch_size : int
    learning_rate : float
        Peak AdamW learning rate.
    min_lr_fraction : float
        Final learning rate as a fraction of the peak.
    warmup_steps : int
    weight_decay : float
    beta : float
        β of the β-NLL loss (Seitzer et al. 2022).
    bf16 : bool
        bfloat16 autocast for the convolutions where the device runs it natively (AMX or
        AVX-512 bf16 units, accelerators: :func:`bf16_is_native`), float32 elsewhere; the
        head and the loss stay float32.
    augment : bool
        Random D4 sky symmetry per sample.
    val_limit : int
        Validation systems used per epoch.
    evidence_weight : float
        Weight of the lens-evidence binary cross-entropy (with ``network.evidence``).
    non_lens_mass_weight : float
        Weight of a non-lens's mass-parameter loss relative to a lens's. β-NLL weighs each
        term by the detached sigma, and a non-lens's sigma spans the prior, so at weight 1 the
        non-lenses' prior draws would dominate the mass head's gradient.
    colour_residual_lr_factor : float
        Learning-rate multiplier of the colour-residual convolution
        (``network.colour_residuals``). Added to a warm-started network it starts at zero and
        must grow from nothing while every other layer only adjusts; at the common rate it
        stays a few per cent of the stem's weights over a fine-tuning run.
    """

    network: NetworkConfig = field(default_factory=NetworkConfig)
    epochs: int = 40
    samples_per_epoch: int = 60000
    batch_size: int = 128
    learning_rate: float = 2e-3
    min_lr_fraction: float = 0.01
    warmup_steps: int = 300
    weight_decay: float = 1e-4
    beta: float = 0.5
    bf16: bool = True
    augment: bool = True
    val_limit: int = 5000
    evidence_weight: float = 1.0
    non_lens_mass_weight: float = 1.0
    colour_residual_lr_factor: float = 1.0

    @classmethod
    def from_file(cls, path: Path) -> TrainConfig:
        """Read a JSON config; unknown keys are an error."""
        values: dict[str, Any] = json.loads(Path(path).read_text())
        network = NetworkConfig.from_dict(values.pop("network", {}))
        return cls(network=network, **values)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        out = asdict(self)
        out["network"] = self.network.to_dict()
        return out


def bf16_is_native(device: torch.device) -> bool:
    """Whether bfloat16 autocast is worth it on ``device``.

    Accelerators and CPUs with AVX-512 bf16 or AMX units run it natively; other CPUs emulate
    it, and a training step of the shipped network then takes about 11 times as long (4.1
    against 0.35 s for a batch of 32 on one AVX2 core), so it is left off there.
    """
    if device.type != "cpu":
        return True
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def learning_rate(config: TrainConfig, *, step: int, progress: float) -> float:
    """Learning rate at ``step`` with the run ``progress`` in [0, 1] (warm-up, then cosine)."""
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    floor = config.min_lr_fraction
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
    return config.learning_rate * (floor + (1.0 - floor) * cosine)


@torch.no_grad()
def predict(model: LensCNN, images: np.ndarray, *, batch_size: int = 256
            ) -> tuple[np.ndarray, np.ndarray]:
    """Physical mean and calibrated sigma, shape (n, 7), float32 inference in eval mode.

    Runs on the model's device; the results come back as host arrays.
    """
    mean, sigma, _ = predict_with_logits(model, images, batch_size=batch_size)
    return mean, sigma


@torch.no_grad()
def predict_with_logits(model: LensCNN, images: np.ndarray, *, batch_size: int = 256
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """:func:`predict` plus the lens-evidence logits (averaged over the views, before the
    Platt calibration), shape (n,); None without the head."""
    model.eval()
    device = model.target_mid.device
    means, sigmas, logits = [], [], []
    for start in range(0, len(images), batch_size):
        batch = torch.from_numpy(np.asarray(images[start : start + batch_size], np.float32))
        outputs = model(batch.to(device))
        means.append(outputs[0].cpu().numpy())
        sigmas.append(outputs[1].cpu().numpy())
        if len(outputs) == 3:
            logits.append(outputs[2].cpu().numpy())
    if not logits:
        return np.concatenate(means), np.concatenate(sigmas), None
    # Back from the calibrated probability to the raw logit: the Platt map is invertible.
    p = np.clip(np.concatenate(logits).astype(np.float64), 1e-7, 1.0 - 1e-7)
    raw = (np.log(p / (1.0 - p)) - float(model.evidence_shift)) / float(model.evidence_scale)
    return np.concatenate(means), np.concatenate(sigmas), raw


def validate(model: LensCNN, store: ShardStore, *, fit_offset: bool = False
             ) -> dict[str, Any]:
    """Fit the calibration on ``store`` and return residual statistics per parameter.

    Sets ``model.sigma_scale`` (and, with ``fit_offset``, ``model.mean_offset``: the median
    residual, removed from the mean) in place. Statistics are in physical units, after the
    calibration: median and 68 % half-width (84th − 16th percentile, halved) of mean − truth,
    ±1σ and ±2σ coverage.
    """
    model.sigma_scale.fill_(1.0)
    if fit_offset:
        model.mean_offset.zero_()
    mean, sigma, logits = predict_with_logits(model, store.images)
    truth = store.targets.astype(np.float64)
    lenses = store.is_lens > 0.5
    evidence = None
    if logits is not None and lenses.any() and not lenses.all():
        evidence = evidence_summary(logits, store.is_lens)
    mean, sigma, truth = mean[lenses], sigma[lenses], truth[lenses]
    if fit_offset:
        offset = median_offsets(mean, truth)
        model.mean_offset.copy_(torch.from_numpy(offset).float().to(model.mean_offset.device))
        mean = mean - offset
    scale = sigma_scale_factors(mean, sigma, truth)
    model.sigma_scale.copy_(torch.from_numpy(scale).float().to(model.sigma_scale.device))
    residual = mean - truth
    p16, p50, p84 = np.percentile(residual, [16, 50, 84], axis=0)
    cov1 = coverage(mean, sigma * scale, truth, n_sigma=1.0)
    cov2 = coverage(mean, sigma * scale, truth, n_sigma=2.0)
    out: dict[str, Any] = {
        name: {
            "median": float(p50[i]),
            "half_width_68": float(0.5 * (p84[i] - p16[i])),
            "sigma_scale": float(scale[i]),
            "mean_offset": float(model.mean_offset[i]),
            "coverage_1sigma": float(cov1[i]),
            "coverage_2sigma": float(cov2[i]),
        }
        for i, name in enumerate(spec.MASS_PARAMETER_NAMES)
    }
    if evidence is not None:
        out["lens_evidence"] = evidence
    return out


def _save(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)  # atomic: a crash mid-write never leaves a broken resume point


def load_checkpoint(path: Path) -> tuple[LensCNN, dict[str, Any]]:
    """Rebuild the network of a checkpoint; return it (eval mode) and the raw checkpoint."""
    checkpoint: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=False)
    model = LensCNN(NetworkConfig.from_dict(checkpoint["network_config"]))
    # Checkpoints written before the mean offset existed carry none: no offset.
    checkpoint["model"].setdefault("mean_offset", torch.zeros(spec.N_PARAMETERS))
    model.load_state_dict(checkpoint["model"])
    model.eval()
    return model, checkpoint


def train(config: TrainConfig, *, seed: int, train_dir: Path | list[Path], val_dir: Path,
          out_dir: Path,
          resume: bool = False, max_minutes: float | None = None, command: str = "",
          progress: bool = True, init_onnx: Path | None = None, device: str = "cpu",
          resident: bool | None = None, start_systems: int = 20000) -> dict[str, Any]:
    """Train (or resume) a run; return the last validation record.

    Parameters
    ----------
    config : TrainConfig
    seed : int
        Seeds the initial weights, the sampling order and the augmentation.
    train_dir : Path or list of Path
        Training shard directory, or several (a mix); may still be growing (re-read every
        epoch).
    val_dir : Path
        Validation shard directory.
    out_dir : Path
        Run directory (created).
    resume : bool
        Continue from ``out_dir/last.pt`` (error if absent).
    max_minutes : float, optional
        Wall-clock budget of the whole run (summed over resumes), minutes.
    command : str
        Command line recorded in the checkpoints (and from there in the model card).
    progress : bool
        Show tqdm progress bars.
    init_onnx : Path, optional
        Start a new run from the weights of this exported model
        (:func:`lenscast.trainer.training.warm_start.model_from_onnx`) instead of random ones; its
        path and SHA-256 are recorded. Ignored on resume (the checkpoint has the weights).
    device : str
        Torch device of the training steps (``"cpu"``, ``"cuda"``). The checkpoints are
        device-independent: a run trained on a GPU resumes or exports on a CPU.
    resident : bool, optional
        Hold the training set in tensors on ``device``, filled by background loader threads
        (:class:`~lenscast.trainer.training.device_store.DeviceShardCache`), and draw each batch
        uniformly among the systems loaded so far. Default: on for an accelerator, off on the
        CPU (where each epoch is a permutation of the shards loaded so far).
    start_systems : int
        With ``resident``, systems to wait for before the first step (or the whole set, if
        smaller and complete).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    target = torch.device(device)
    if resident is None:
        resident = target.type != "cpu"
    if resident and config.network.evidence:
        raise ValueError("the lens-evidence head trains from shard stores: use --no-resident")
    if target.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input shape: pick the fastest kernels
    val_store = ShardStore(val_dir, limit=config.val_limit)
    val_store.refresh()
    train_store: ShardStore | None = None
    cache: DeviceShardCache | None = None
    if resident:
        if isinstance(train_dir, list):
            if len(train_dir) != 1:
                raise ValueError("a resident training set reads one directory: use --no-resident")
            train_dir = train_dir[0]
        cache = DeviceShardCache(train_dir, device=target).start()
        cache.wait_for(start_systems)
    else:
        train_store = ShardStore(train_dir)
        train_store.refresh()
    try:
        return _train(config, seed=seed, train_store=train_store, cache=cache,
                      val_store=val_store, train_dir=train_dir, val_dir=val_dir,
                      out_dir=out_dir, resume=resume, max_minutes=max_minutes, command=command,
                      progress=progress, init_onnx=init_onnx, target=target)
    finally:
        if cache is not None:
            cache.close()


def _train(config: TrainConfig, *, seed: int, train_store: ShardStore | None,
           cache: DeviceShardCache | None, val_store: ShardStore,
           train_dir: Path | list[Path],
           val_dir: Path, out_dir: Path, resume: bool, max_minutes: float | None, command: str,
           progress: bool, init_onnx: Path | None, target: torch.device) -> dict[str, Any]:
    """:func:`train` once its data sources are open (exactly one of store and cache is given)."""

    def n_train() -> int:
        return len(cache) if cache is not None else len(train_store)  # type: ignore[arg-type]

    def first_cutouts(count: int) -> np.ndarray:
        if cache is not None:
            return cache.first(count)
        return train_store.images[:count]  # type: ignore[union-attr]

    if n_train() == 0:
        raise FileNotFoundError(f"no readable shards in {train_dir}")

    if resume:
        model, checkpoint = load_checkpoint(out_dir / "last.pt")
        state = checkpoint["state"]
        # Resumes may change the budget or threads: keep every command line for the card.
        state.setdefault("resumes", []).append({"command": command, "at_epoch": state["epoch"],
                                                "max_minutes": max_minutes})
    else:
        state = {"step": 0, "epoch": 0, "elapsed_s": 0.0, "history": [], "seed": seed,
                 "command": command, "max_minutes": max_minutes}
        if init_onnx is not None:
            model = model_from_onnx(init_onnx, config.network, first_cutouts(1024))
            digest = hashlib.sha256(init_onnx.read_bytes()).hexdigest()
            state["initialised_from"] = {"onnx": str(init_onnx), "sha256": digest}
        else:
            noise = background_noise(first_cutouts(2000))
            model = LensCNN(config.network, noise_scale=noise.tolist())
        (out_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    model.to(target)
    channels_last = target.type == "cuda"  # the layout cuDNN's fastest convolutions use
    if channels_last:
        # Module.to accepts memory_format at run time; torch's stub overloads omit it.
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    optimiser = torch.optim.AdamW(_parameter_groups(model, config), lr=config.learning_rate,
                                  weight_decay=config.weight_decay)
    if resume:
        optimiser.load_state_dict(checkpoint["optimiser"])
        torch.set_rng_state(checkpoint["torch_rng"])
    augmenter = SymmetryAugmenter()
    bf16 = config.bf16 and bf16_is_native(target)
    steps_per_epoch = config.samples_per_epoch // config.batch_size
    total_steps = config.epochs * steps_per_epoch
    budget_s = 60.0 * max_minutes if max_minutes else math.inf
    record: dict[str, Any] = state["history"][-1] if state["history"] else {}

    def run_progress() -> float:
        return max(state["step"] / total_steps, state["elapsed_s"] / budget_s)

    while state["epoch"] < config.epochs and run_progress() < 1.0:
        val_store.refresh()
        batches = _batches(config, seed=seed, epoch=state["epoch"], train_store=train_store,
                           cache=cache, device=target, augmenter=augmenter)
        model.train()
        started = time.monotonic()
        elapsed_at_start = state["elapsed_s"]
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {state['epoch'] + 1}/{config.epochs}",
                   disable=not progress, mininterval=5.0, unit="step")
        # A device tensor: reading it every step would stall an accelerator's queue.
        running = torch.zeros((), device=target)
        for i, (images, targets, labels) in zip(bar, batches, strict=True):
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            lr = learning_rate(config, step=state["step"], progress=run_progress())
            for group in optimiser.param_groups:
                group["lr"] = lr * group.get("lr_factor", 1.0)
            with torch.autocast(target.type, dtype=torch.bfloat16, enabled=bf16):
                mean_z, sigma_z, logit = model.forward_training(images)
            weights = None
            if config.non_lens_mass_weight != 1.0:
                weights = labels + config.non_lens_mass_weight * (1.0 - labels)
            per_parameter = beta_nll(mean_z.float(), sigma_z.float(),
                                     model.standardise(targets), beta=config.beta,
                                     weights=weights)
            loss = per_parameter.sum()
            if logit is not None:
                bce = nn.functional.binary_cross_entropy_with_logits(logit.float(), labels)
                loss = loss + config.evidence_weight * bce
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            state["step"] += 1
            state["elapsed_s"] = elapsed_at_start + time.monotonic() - started
            running = 0.98 * running + 0.02 * loss.detach() if i else loss.detach()
            if i % 50 == 0:
                bar.set_postfix(loss=f"{running.item():.3f}", lr=f"{lr:.2e}",
                                n_train=n_train(), refresh=False)
            if run_progress() >= 1.0:
                break
        bar.close()
        state["epoch"] += 1
        record = {"epoch": state["epoch"], "step": state["step"],
                  "elapsed_s": round(state["elapsed_s"], 1), "train_loss": running.item(),
                  "n_train": n_train(), "n_val": len(val_store)}
        if len(val_store):
            record["val"] = validate(model, val_store)
        # The budget is wall time: validation and data loading count too.
        state["elapsed_s"] = elapsed_at_start + time.monotonic() - started
        state["history"].append(record)
        with (out_dir / "history.jsonl").open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        if progress:
            _print_record(record)
        data = {"train_dir": (", ".join(str(d) for d in train_dir)
                              if isinstance(train_dir, list) else str(train_dir)),
                "n_train": n_train(),
                "train_complete": cache.complete if cache is not None
                else train_store.complete,  # type: ignore[union-attr]
                "val_dir": str(val_dir), "n_val": len(val_store)}
        if cache is not None:
            # Which shards the run had by now (the simulator may still have been writing).
            data["shards"] = shard_ranges(cache.shards_loaded)
        checkpoint = {
            "model": {k: v.cpu() for k, v in model.state_dict().items()},
            "network_config": model.config.to_dict(),
            "train_config": config.to_dict(),
            "optimiser": optimiser.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "state": state,
            "data": data,
            "device": str(target),
        }
        _save(out_dir / "last.pt", checkpoint)
        _save(out_dir / f"epoch_{state['epoch']:03d}.pt", checkpoint)
    return record


def shard_ranges(names: list[str]) -> str:
    """Shard file names as compact index ranges, e.g. ``"0-600"`` or ``"0-3,5,7-9"``."""
    indices = sorted(int(Path(name).stem.split("_")[1]) for name in names)
    ranges: list[str] = []
    start = previous = None
    for index in [*indices, None]:
        if index is not None and previous is not None and index == previous + 1:
            previous = index
            continue
        if start is not None:
            ranges.append(str(start) if start == previous else f"{start}-{previous}")
        start = previous = index
    return ",".join(ranges)


def _parameter_groups(model: LensCNN, config: TrainConfig) -> list[dict[str, Any]]:
    """AdamW parameter groups: the colour-residual convolution apart, with its rate factor."""
    planes = model.stem_residuals
    if planes is None:
        return [{"params": list(model.parameters())}]
    own = {id(p) for p in planes.parameters()}
    return [
        {"params": [p for p in model.parameters() if id(p) not in own]},
        {"params": list(planes.parameters()), "lr_factor": config.colour_residual_lr_factor},
    ]


def _batches(config: TrainConfig, *, seed: int, epoch: int, train_store: ShardStore | None,
             cache: DeviceShardCache | None, device: torch.device,
             augmenter: SymmetryAugmenter
             ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """One epoch's (augmented) training batches: images, physical targets and ``is_lens``
    labels on ``device``.

    From a :class:`ShardStore`: a permutation of the systems loaded so far (refreshed first),
    seeded by ``(seed, epoch)``. From a :class:`DeviceShardCache`: uniform draws among the
    systems held at each step, from a device generator seeded by ``(seed, epoch)``.
    """
    steps = config.samples_per_epoch // config.batch_size
    if cache is not None:
        generator = torch.Generator(device=device)
        generator.manual_seed(int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0]))
        for _ in range(steps):
            images, targets = cache.sample(config.batch_size, generator)
            if config.augment:
                choice = torch.randint(0, 8, (config.batch_size,), device=device,
                                       generator=generator)
                images, targets = augmenter(images, targets, choice)
            yield images, targets, torch.ones(len(targets), device=device)
        return
    assert train_store is not None
    train_store.refresh()
    rng = np.random.default_rng([seed, epoch])
    order = np.concatenate([rng.permutation(len(train_store)) for _ in range(
        math.ceil(config.samples_per_epoch / len(train_store)))])
    for i in range(steps):
        index = np.sort(order[i * config.batch_size : (i + 1) * config.batch_size])
        images = torch.from_numpy(train_store.images[index].astype(np.float32))
        targets = torch.from_numpy(train_store.targets[index])
        labels = torch.from_numpy(train_store.is_lens[index])
        if config.augment:
            choice = torch.randint(0, 8, (len(index),))
            images, targets = augmenter(images, targets, choice)
        yield images.to(device), targets.to(device), labels.to(device)


def _print_record(record: dict[str, Any]) -> None:
    summary = f"epoch {record['epoch']} loss {record['train_loss']:.3f} n_train {record['n_train']}"
    if "val" in record:
        widths = " ".join(f"{name}={record['val'][name]['half_width_68']:.3f}"
                          for name in spec.MASS_PARAMETER_NAMES)
        summary += f" | val 68% half-widths: {widths}"
        if "lens_evidence" in record["val"]:
            summary += f" | p_lens AUC {record['val']['lens_evidence']['roc_auc']:.4f}"
    tqdm.write(summary)
