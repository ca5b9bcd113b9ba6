"""Post-training static int8 quantization of an exported graph (onnxruntime's QDQ format).

Only the convolutions are quantized: per-channel int8 weights, uint8 activations whose ranges
are the min/max seen on calibration cutouts. The input normalisation, the heads and the
convolutions named in ``keep_float`` (the stem by default: it sees the pixels' raw dynamic
range) stay float32. On CPUs with VNNI or AMX, onnxruntime runs the int8 convolutions about
1.5-1.8x faster; on others it may gain nothing. The result is not the trained network to 1e-4
(no parity check applies); its accuracy is measured directly (``lenscast evaluate``) and its
sigma recalibrated (``lenscast recalibrate``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from numpy.typing import NDArray
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from lenscast.model import parameter_spec as spec

#: Convolutions left in float32 unless told otherwise (name parts).
DEFAULT_KEEP_FLOAT = ("stem",)


class _Batches(CalibrationDataReader):
    """Feeds calibration cutouts to the quantizer, 32 at a time."""

    def __init__(self, cutouts: NDArray[np.float32]) -> None:
        self.cutouts, self.at = cutouts, 0

    def get_next(self) -> dict[str, NDArray[np.float32]] | None:
        if self.at >= len(self.cutouts):
            return None
        batch = self.cutouts[self.at : self.at + 32]
        self.at += 32
        return {spec.ONNX_INPUT_NAME: batch}


def quantize_int8(
    model: Path,
    out: Path,
    cutouts: NDArray[np.floating],
    keep_float: Sequence[str] = DEFAULT_KEEP_FLOAT,
) -> list[str]:
    """Write the int8 version of ``model`` to ``out``.

    Parameters
    ----------
    model, out : Path
        Float32 ONNX graph in; QDQ int8 graph out.
    cutouts : ndarray, shape (n, 4, 64, 64)
        Calibration cutouts (calibrated flux, as the model takes them); never test data.
    keep_float : sequence of str
        Convolutions whose node name contains one of these stay float32.

    Returns
    -------
    list of str
        The convolution nodes left in float32.
    """
    with tempfile.TemporaryDirectory() as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(model), str(prepared))
        graph = onnx.load(str(prepared)).graph
        kept = [n.name for n in graph.node
                if n.op_type == "Conv" and any(k in n.name for k in keep_float)]  # fmt: skip
        quantize_static(
            str(prepared), str(out), _Batches(np.asarray(cutouts, dtype=np.float32)),
            quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            op_types_to_quantize=["Conv"], nodes_to_exclude=kept,
        )  # fmt: skip
    return kept
