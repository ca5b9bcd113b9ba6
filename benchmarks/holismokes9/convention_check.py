"""Check the HOLISMOKES IX → lenscast convention mapping on lenscast's own simulated lenses.

Runs the exported HOLISMOKES IX graph (outputs already mapped by :mod:`.conventions`) on a
lenscast test-split shard directory and fits ``predicted = slope × true + offset`` per
parameter. A right mapping gives clearly positive slopes for every parameter (near 1 where the
network is accurate); a wrong sign gives a negative slope, a wrong ellipticity modulus
(e.g. ``(1 - q²)/(1 + q²)`` instead of ``(1 - q)/(1 + q)``) a slope near 2. It uses lenscast
simulations only: the release's 16 example cutouts are for evaluation only and are not touched.

Usage::

    lenscast simulate --n 400 --seed 777 --split test --out /work/data/realsky-scratch/sim-test-400
    python -m benchmarks.holismokes9.convention_check \
        --model /work/data/holismokes9/holismokes9.onnx \
        --data /work/data/realsky-scratch/sim-test-400
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from lenscast.model import parameter_spec as spec
from lenscast.model.predictor import OnnxMassPredictor
from lenscast.trainer.dataset import load_shards

#: Systems used for the fits: their training ranges (θ_E 0.5-5", centre within ±0.6").
_CENTRE_LIMIT = 0.6
#: Lenses this close to the cutout centre (each axis, arcsec) measure the origin.
_CENTRAL = 0.1


def regression(predicted: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Least-squares slope, offset and Pearson correlation of ``predicted`` on ``true``."""
    slope, offset = np.polyfit(true, predicted, 1)
    return {"slope": float(slope), "offset": float(offset),
            "correlation": float(np.corrcoef(true, predicted)[0, 1]), "n": int(true.size)}


def main(argv: list[str] | None = None) -> int:
    """Print the per-parameter regressions as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="exported HOLISMOKES IX ONNX")
    parser.add_argument("--data", type=Path, required=True, help="lenscast test shards")
    args = parser.parse_args(argv)

    data = load_shards(args.data)
    prediction = OnnxMassPredictor(args.model).predict(data.images)
    inside = ((np.abs(data.truths["center_x"]) < _CENTRE_LIMIT)
              & (np.abs(data.truths["center_y"]) < _CENTRE_LIMIT))
    result = {"model": str(args.model), "data": str(args.data),
              "regressions": {name: regression(prediction.mean[name][inside],
                                               data.truths[name][inside])
                              for name in spec.MASS_PARAMETER_NAMES}}
    # The origin: median centre residual of lenses near the centre, where the sigmoid's
    # pull towards the middle of the training range cannot bias it.
    central = ((np.abs(data.truths["center_x"]) < _CENTRAL) & (np.abs(data.truths["center_y"])
                                                                < _CENTRAL))
    result["central_lenses"] = {
        "n": int(central.sum()),
        **{f"median_residual_{name}": float(np.median(prediction.mean[name][central]
                                                      - data.truths[name][central]))
           for name in ("center_x", "center_y")}}
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
