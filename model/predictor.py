"""The ONNX mass-model predictor: cutouts in, named SIE + shear parameters with sigma out.

The network's normalisation lives inside the ONNX graph, so the predictor feeds pixels exactly as
the alerts carry them (calibrated HSC coadd flux, zeropoint 27). The model card beside the ONNX
file (same stem, ``.json``) names the model, its version and its input contract; the predictor
refuses a model whose card does not match :mod:`lenscast.model.parameter_spec`.

A model may have a third output, ``p_lens`` (:data:`lenscast.model.parameter_spec.LENS_PROBABILITY`,
shape ``(batch,)``): the calibrated probability that the cutout shows a galaxy-scale strong lens.
Its card then says so under ``"lens_evidence": {"output": "p_lens", "default_threshold": t}``;
``t`` is the threshold the service applies unless its settings give another, and
:data:`lenscast.model.parameter_spec.DEFAULT_P_LENS_THRESHOLD` when the card has none.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from lenscast.model import parameter_spec as spec

#: The model shipped with the package (the consumer's default): the network averaged over the
#: eight orientations of the cutout (see its card).
DEFAULT_MODEL_PATH = Path(__file__).parent / "weights" / "lenscast-hsc.onnx"
#: The same weights averaged over two orientations only: four times fewer FLOPs per alert, a
#: wider scatter (its card has its evaluation). For deployments where throughput matters more.
FAST_MODEL_PATH = Path(__file__).parent / "weights" / "lenscast-hsc-fast.onnx"
#: Most cutouts per onnxruntime call with one intra-op thread. Small runs keep a call's
#: activations in the core's caches: on a 2-core AMD EPYC machine, runs of 8 gave 1,181
#: alerts/s against 1,017 for runs of 32 with the fast graph, and 606 against 519 with the
#: default graph, within 5 % of the fastest run size of each (``python -m
#: benchmarks.onnx_run_batch --rounds 5``, ``benchmarks/results/onnx_run_batch.json``).
DEFAULT_RUN_BATCH = 8


@dataclass(frozen=True)
class MassPrediction:
    """Predicted mass-model parameters for a batch.

    Attributes
    ----------
    mean : dict of str to ndarray, shape (n,)
        Point estimates, keyed by :data:`lenscast.model.parameter_spec.MASS_PARAMETER_NAMES` (units
        there).
    sigma : dict of str to ndarray, shape (n,)
        Calibrated 1-sigma Gaussian uncertainties, same keys and units.
    p_lens : ndarray, shape (n,), or None
        Calibrated probability that each cutout shows a galaxy-scale strong lens
        (dimensionless, 0..1); None for a model without that output.
    """

    mean: dict[str, NDArray[np.float64]]
    sigma: dict[str, NDArray[np.float64]]
    p_lens: NDArray[np.float64] | None = None


@dataclass(frozen=True)
class ModelIdentity:
    """Provenance recorded with every prediction row."""

    name: str
    version: str
    onnx_sha256: str
    parameter_spec_version: str


def file_sha256(path: Path) -> str:
    """Return the hex SHA-256 of the file at ``path``."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_model_card(onnx_path: Path) -> dict[str, Any]:
    """Read the JSON model card stored beside ``onnx_path`` (same stem, ``.json``)."""
    card_path = onnx_path.with_suffix(".json")
    if not card_path.exists():
        raise FileNotFoundError(f"model card {card_path} not found beside {onnx_path}")
    card: dict[str, Any] = json.loads(card_path.read_text())
    return card


class OnnxMassPredictor:
    """Run the exported CNN with onnxruntime on the CPU.

    Parameters
    ----------
    path : Path, optional
        ONNX file; defaults to the shipped model. Its model card must sit beside it.
    intra_op_threads : int
        onnxruntime intra-op threads (1 per consumer process scales best across processes).
    run_batch : int or None, optional
        Most cutouts per onnxruntime call: :meth:`predict` runs a larger batch in slices of this
        size (the outputs are the same). Default :data:`DEFAULT_RUN_BATCH` with one intra-op
        thread; with more threads, or ``None``, the whole batch in one call (several threads
        share the work of one call, which needs a larger one).
    """

    def __init__(
        self,
        path: Path | None = None,
        *,
        intra_op_threads: int = 1,
        run_batch: int | None | Literal["default"] = "default",
    ) -> None:
        if run_batch == "default":
            run_batch = DEFAULT_RUN_BATCH if intra_op_threads == 1 else None
        if run_batch is not None and run_batch < 1:
            raise ValueError(f"run_batch must be >= 1 or None, not {run_batch}")
        self.run_batch = run_batch
        self.path = Path(path) if path is not None else DEFAULT_MODEL_PATH
        if not self.path.exists():
            raise FileNotFoundError(f"ONNX model {self.path} not found")
        self.card = load_model_card(self.path)
        self._check_card()
        self.identity = ModelIdentity(
            name=str(self.card["name"]),
            version=str(self.card["version"]),
            onnx_sha256=file_sha256(self.path),
            parameter_spec_version=str(self.card["parameter_spec_version"]),
        )
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(self.path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.has_p_lens = self._check_p_lens_output()
        self.default_p_lens_threshold = self._card_threshold()
        self._outputs = [spec.ONNX_MEAN_NAME, spec.ONNX_SIGMA_NAME]
        if self.has_p_lens:
            self._outputs.append(spec.ONNX_P_LENS_NAME)

    def _check_card(self) -> None:
        outputs = [o["name"] for o in self.card["outputs"]]
        if tuple(outputs) != spec.MASS_PARAMETER_NAMES:
            raise ValueError(
                f"model card outputs {outputs} do not match the parameter spec "
                f"{list(spec.MASS_PARAMETER_NAMES)}"
            )
        if tuple(self.card["input"]["bands"]) != spec.BANDS:
            raise ValueError(f"model card bands {self.card['input']['bands']} != {spec.BANDS}")

    def _check_p_lens_output(self) -> bool:
        """Whether the graph has a well-formed ``p_lens`` output (one float per cutout)."""
        outputs = {o.name: o for o in self._session.get_outputs()}
        claimed = "lens_evidence" in self.card
        if spec.ONNX_P_LENS_NAME not in outputs:
            if claimed:
                raise ValueError(
                    f"model card {self.path.with_suffix('.json')} has lens_evidence but "
                    f"the ONNX graph has no {spec.ONNX_P_LENS_NAME!r} output"
                )
            return False
        output = outputs[spec.ONNX_P_LENS_NAME]
        if output.type != "tensor(float)" or len(output.shape) != 1:
            raise ValueError(
                f"ONNX output {spec.ONNX_P_LENS_NAME!r} must be float32 of shape [batch], "
                f"got {output.type} {output.shape}"
            )
        return True

    def _card_threshold(self) -> float:
        """The card's ``lens_evidence.default_threshold``, else the spec's default."""
        evidence = self.card.get("lens_evidence")
        if evidence is None:
            return spec.DEFAULT_P_LENS_THRESHOLD
        if evidence.get("output", spec.ONNX_P_LENS_NAME) != spec.ONNX_P_LENS_NAME:
            raise ValueError(
                f"model card lens_evidence.output is {evidence['output']!r}, "
                f"the service reads {spec.ONNX_P_LENS_NAME!r}"
            )
        threshold = evidence.get("default_threshold", spec.DEFAULT_P_LENS_THRESHOLD)
        if isinstance(threshold, bool) or not isinstance(threshold, int | float):
            raise ValueError(f"lens_evidence.default_threshold must be a number, not {threshold!r}")
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"lens_evidence.default_threshold {threshold} is not in [0, 1]")
        return float(threshold)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Expected cutout shape per alert: (bands, ny, nx)."""
        size = int(self.card["input"]["size_pix"])
        return (len(spec.BANDS), size, size)

    def predict(self, cutouts: NDArray[np.floating]) -> MassPrediction:
        """Predict the mass model for a batch of cutouts.

        Parameters
        ----------
        cutouts : ndarray, shape (n, 4, 64, 64)
            griz pixels in calibrated coadd flux (AB zeropoint 27), as the alerts carry them.

        Returns
        -------
        MassPrediction
            Named means and calibrated sigmas, float64, and ``p_lens`` when the model has it.

        Raises
        ------
        ValueError
            For cutouts of the wrong shape, or a ``p_lens`` output not of shape ``(n,)``.
        """
        batch = np.ascontiguousarray(cutouts, dtype=np.float32)
        if batch.ndim != 4 or batch.shape[1:] != self.input_shape:
            raise ValueError(f"cutouts must have shape (n, {self.input_shape}), got {batch.shape}")
        mean, sigma, *rest = self._run(batch)
        p_lens = None
        if rest:
            p_lens = np.asarray(rest[0], dtype=np.float64)
            if p_lens.shape != (batch.shape[0],):
                raise ValueError(
                    f"{spec.ONNX_P_LENS_NAME} has shape {p_lens.shape}, "
                    f"expected ({batch.shape[0]},)"
                )
        return MassPrediction(
            mean=spec.as_mapping(np.asarray(mean, dtype=np.float64)),
            sigma=spec.as_mapping(np.asarray(sigma, dtype=np.float64)),
            p_lens=p_lens,
        )

    def _run(self, batch: NDArray[np.float32]) -> list[NDArray[np.float32]]:
        """The graph's outputs for ``batch``, in calls of at most ``run_batch`` cutouts."""
        size = self.run_batch or len(batch)
        if len(batch) <= size:
            return list(self._session.run(self._outputs, {spec.ONNX_INPUT_NAME: batch}))
        runs = [
            self._session.run(self._outputs, {spec.ONNX_INPUT_NAME: batch[start : start + size]})
            for start in range(0, len(batch), size)
        ]
        return [np.concatenate(parts) for parts in zip(*runs, strict=True)]
