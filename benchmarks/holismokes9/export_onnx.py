"""Export the HOLISMOKES IX public network to ONNX with lenscast's input/output contract.

Rebuilds the network from the release's weights (:mod:`.network`), checks that it reproduces
the release's own predictions for its 16 example cutouts (``pred_median.npy``,
``pred_sigma.npy``; the examples are for evaluation only), writes ``--out`` (ONNX) and a model
card beside it, so that :class:`lenscast.model.predictor.OnnxMassPredictor` and ``lenscast
evaluate`` run it like a lenscast model, and prints a JSON summary.

Usage (from the repository root; the release is not redistributed, see :mod:`.release`)::

    git clone https://github.com/shsuyu/HOLISMOKES-public /tmp/HOLISMOKES-public
    python -m benchmarks.holismokes9.export_onnx --release /tmp/HOLISMOKES-public/HOLISMOKES_IX \
        --out /work/data/holismokes9/holismokes9.onnx
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from benchmarks.holismokes9 import conventions
from benchmarks.holismokes9.network import LenscastGraph, load_checkpoint
from benchmarks.holismokes9.release import find_release, read_examples, read_release_predictions
from lenscast.model import parameter_spec as spec
from lenscast.trainer.training.export import export_onnx, parity_error, parity_inputs

#: Largest accepted |ours - release| on the example predictions, physical units.
REPRODUCTION_TOLERANCE = 1e-4


def model_card() -> dict:
    """The card written beside the exported ONNX file (lenscast's card layout)."""
    return {
        "name": "holismokes9-public",
        "version": "schuldt2023-final.t7",
        "note": ("HOLISMOKES IX public network (Schuldt et al. 2023, arXiv:2206.11279), rebuilt "
                 "by benchmarks/holismokes9 from the release's weights; outputs mirrored into "
                 "lenscast's frame (benchmarks/holismokes9/conventions.py). For side-by-side "
                 "benchmarks only; not redistributed."),
        "parameter_spec_version": spec.PARAMETER_SPEC_VERSION,
        "input": {
            "name": spec.ONNX_INPUT_NAME, "bands": list(spec.BANDS),
            "size_pix": spec.CUTOUT_SIZE_PIX, "pixel_scale_arcsec": spec.PIXEL_SCALE_ARCSEC,
            "zeropoint_ab": spec.PIXEL_ZEROPOINT_AB,
            "unit": "calibrated coadd flux, mag = 27 - 2.5 log10(flux)",
            "orientation": "array[band, row, col] as stored in an HSC coadd cutout "
                           "(north up, east left)",
            "normalisation": "none (raw coadd flux)",
        },
        "outputs": [{"name": p.name, "unit": p.unit, "low": p.low, "high": p.high,
                     "description": p.description} for p in spec.MASS_PARAMETERS],
    }


def reproduction_error(graph: LenscastGraph, release: Path) -> dict[str, float]:
    """Largest |ours - release| over the examples, mean and sigma, in lenscast's frame."""
    examples = read_examples(release)
    median, sigma = read_release_predictions(release)
    want_mean, want_sigma = conventions.to_lenscast(median, sigma)
    with torch.no_grad():
        got_mean, got_sigma = (t.numpy().astype(np.float64)
                               for t in graph(torch.from_numpy(examples.mocks)))
    return {"mean": float(np.abs(got_mean - want_mean).max()),
            "sigma": float(np.abs(got_sigma - want_sigma).max()),
            "n_examples": len(examples.ids)}


def main(argv: list[str] | None = None) -> int:
    """Rebuild, check, export; print the JSON summary; 1 if a check fails."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", type=Path, required=True,
                        help="the release's HOLISMOKES_IX folder (or the repository above it)")
    parser.add_argument("--out", type=Path, required=True, help="ONNX file to write")
    args = parser.parse_args(argv)

    release = find_release(args.release)
    graph = LenscastGraph(load_checkpoint(str(release / "final.t7"))).eval()
    reproduction = reproduction_error(graph, release)
    export_onnx(graph, args.out)
    args.out.with_suffix(".json").write_text(json.dumps(model_card(), indent=2) + "\n")
    parity = parity_error(graph, args.out, parity_inputs())
    ok = (reproduction["mean"] <= REPRODUCTION_TOLERANCE
          and reproduction["sigma"] <= REPRODUCTION_TOLERANCE
          and parity <= REPRODUCTION_TOLERANCE)
    print(json.dumps({"onnx": str(args.out), "release": str(release),
                      "reproduces_release_predictions": reproduction,
                      "torch_onnx_parity": parity, "ok": ok}, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
