"""``lenscast train``: train the mass-model CNN on simulation shards (resumable).

Example (the shipped model)::

    lenscast train --config trainer/configs/hsc.json --seed 1 --data data/train \
        --val data/val --out runs/hsc --max-minutes 70
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``train`` options to ``parser``."""
    parser.add_argument("--config", type=Path, required=True, help="training config (JSON)")
    parser.add_argument("--seed", type=int, required=True, help="seed of weights and sampling")
    parser.add_argument("--data", type=Path, required=True, nargs="+",
                        help="training shard directory, or several (a mix)")
    parser.add_argument("--val", type=Path, required=True, help="validation shard directory")
    parser.add_argument("--out", type=Path, required=True, help="run directory")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    parser.add_argument("--init-onnx", type=Path, default=None, metavar="MODEL",
                        help="start from the weights of an exported model (fine-tuning; its "
                             "architecture must be the config's)")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="wall-clock budget of the whole run (the schedule anneals to it)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--device", default="cpu",
                        help="torch device of the training steps: cpu (default) or cuda")
    parser.add_argument("--resident", action=argparse.BooleanOptionalAction, default=None,
                        help="hold the training set on the device, loaded by background "
                             "threads while the simulator may still write (default: on for "
                             "an accelerator)")
    parser.add_argument("--start-systems", type=int, default=20000, metavar="N",
                        help="with --resident: systems to wait for before the first step")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    """Train; return 0 on success."""
    import torch

    from lenscast.trainer.training.loop import TrainConfig, train

    torch.set_num_threads(args.threads)
    config = TrainConfig.from_file(args.config)
    command = _command_line(args)
    train_dir = args.data[0] if len(args.data) == 1 else list(args.data)
    record = train(config, seed=args.seed, train_dir=train_dir, val_dir=args.val,
                   out_dir=args.out, resume=args.resume, max_minutes=args.max_minutes,
                   command=command, progress=not args.no_progress, init_onnx=args.init_onnx,
                   device=args.device, resident=args.resident,
                   start_systems=args.start_systems)
    print(f"finished at epoch {record.get('epoch')}; checkpoint {args.out / 'last.pt'}")
    return 0


def _command_line(args: argparse.Namespace) -> str:
    """The equivalent command line, recorded in checkpoints and the model card."""
    words = ["lenscast", "train", "--config", str(args.config), "--seed", str(args.seed),
             "--data", *(str(d) for d in args.data), "--val", str(args.val),
             "--out", str(args.out)]
    if args.max_minutes is not None:
        words += ["--max-minutes", f"{args.max_minutes:g}"]
    if args.init_onnx is not None:
        words += ["--init-onnx", str(args.init_onnx)]
    if args.device != "cpu":
        words += ["--device", args.device]
    if args.resident is not None:
        words.append("--resident" if args.resident else "--no-resident")
    if args.resume:
        words.append("--resume")
    return shlex.join(words)
