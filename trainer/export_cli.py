"""``lenscast export``: a training checkpoint to ONNX plus its model card.

Example::

    lenscast export --checkpoint runs/hsc/last.pt --out model/weights/lenscast-hsc.onnx \
        --version 1.0.0 --note "final model"
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lenscast.model.predictor import DEFAULT_MODEL_PATH


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``export`` options to ``parser``."""
    parser.add_argument("--checkpoint", type=Path, required=True, help="training checkpoint")
    parser.add_argument("--out", type=Path, default=DEFAULT_MODEL_PATH, help="ONNX file")
    parser.add_argument("--name", default="lenscast-hsc", help="model name in the card")
    parser.add_argument("--version", default="1.0.0", help="model version in the card")
    parser.add_argument("--note", default="", help="free text for the card")
    parser.add_argument("--calibrate", type=Path, default=None, nargs="+", metavar="DIR",
                        help="refit the calibration (sigma scale, mean offset, p_lens) on this "
                             "validation shard directory, or on several as one set")
    parser.add_argument("--stream-lens-fraction", type=float, default=0.01, metavar="PI",
                        help="lens fraction of the stream the card's precision is quoted for "
                             "(default 0.01)")
    parser.add_argument("--no-offset", action="store_true",
                        help="with --calibrate: fit the sigma scale only, no mean offset")
    parser.add_argument("--views", type=int, choices=(1, 2, 4, 8), default=1,
                        help="views averaged in the graph (trainer.views): 1; 2 (the cutout "
                             "and the cutout turned by 180 degrees); 4 (the four quarter "
                             "turns); 8 (and their mirror images). Each view costs one pass")


def run(args: argparse.Namespace) -> int:
    """Export, check parity, write the card; return 0, or 1 if parity fails."""
    import torch

    from lenscast.model.predictor import file_sha256
    from lenscast.trainer.network import count_flops
    from lenscast.trainer.training.export import (
        PARITY_TOLERANCE,
        export_onnx,
        parity_error,
        parity_inputs,
    )
    from lenscast.trainer.training.lens_evidence import calibrate_evidence
    from lenscast.trainer.training.loop import load_checkpoint, validate
    from lenscast.trainer.training.model_card import build_card, write_card
    from lenscast.trainer.training.shards import ShardStore

    torch.set_num_threads(2)
    model, checkpoint = load_checkpoint(args.checkpoint)
    model.test_views = args.views  # before calibration: the factors are fitted on what ships
    if args.calibrate is not None:
        store = ShardStore(args.calibrate)
        store.refresh()
        validation = validate(model, store, fit_offset=not args.no_offset)
        checkpoint["model"]["sigma_scale"] = model.sigma_scale.clone()
        checkpoint["model"]["mean_offset"] = model.mean_offset.clone()
        where = ", ".join(str(d) for d in args.calibrate)
        checkpoint["data"] = {**checkpoint["data"], "calibration_dir": where,
                              "n_calibration": len(store)}
        checkpoint["state"]["history"].append({"calibration": validation})
        if model.evidence is not None:
            lens_evidence = calibrate_evidence(model, store,
                                               stream_lens_fraction=args.stream_lens_fraction,
                                               data=where)
    elif model.evidence is not None:
        print("a network with the lens-evidence head needs --calibrate (Platt constants)")
        return 2
    export_onnx(model, args.out)
    parity = parity_error(model, args.out, parity_inputs())
    if parity > PARITY_TOLERANCE:
        print(f"parity check failed: max |torch - onnxruntime| = {parity:.2e}")
        return 1
    card = build_card(name=args.name, version=args.version, checkpoint=checkpoint,
                      flops=count_flops(model), onnx_sha256=file_sha256(args.out),
                      onnx_bytes=args.out.stat().st_size, parity=parity, note=args.note,
                      views=args.views)
    if model.evidence is not None:
        card["lens_evidence"] = lens_evidence
        card["onnx_outputs"]["p_lens"] = ("float32 (batch,), calibrated probability that the "
                                          "cutout shows a galaxy-scale strong lens")
    write_card(card, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB, parity {parity:.1e}) "
          f"and its card {args.out.with_suffix('.json')}")
    return 0
