"""``lenscast solve``: images, magnifications and time delays for JSON Lines lens systems.

Input, one JSON object per line (file or stdin; blank lines skipped)::

    {"id": ..., "lens": {"theta_e", "e1", "e2", "center_x", "center_y",
                         "gamma"?, "gamma1"?, "gamma2"?},
     "source": {"x", "y"}  or  "image": {"x", "y"},
     "z_lens"?, "z_lens_err"?, "z_source"?, "z_source_err"?, "cosmology"?: {"H0", "Om0"}}

Output, one line per input line, in input order::

    {"id", "source": {"x", "y"}, "images": [{"x", "y", "magnification", "time_delay_days",
     "time_delay_p16", "time_delay_p84", "fermat_potential_arcsec2"}, ...], "ring": false,
     "redshifts": {"z_lens", "z_source", "z_lens_origin", "z_source_origin",
                   "time_delay_distance_mpc"}, "error": null}

``theta_E`` (lenstronomy's spelling) is accepted for ``theta_e``; giving both is an error.
Angles in arcsec, delays in days after the first image (images in arrival order),
magnification signed (negative: saddle image). ``gamma`` defaults to 2 (SIE), shear to 0,
cosmology to flat LCDM H0 = 70 km/s/Mpc, Om0 = 0.3 (:mod:`lenscast.model.defaults`).
``"image"`` is one observed image (the lensed transient): the source is traced back from it
and all images, that one included, are returned.

Redshifts: a missing (absent or null) ``z_source`` or ``z_lens`` comes from the SL2S prior
(:mod:`lenscast.model.redshift_prior`; ``*_origin`` says ``"prior"`` or ``"measured"``), and the
delays use the prior's median; ``z_lens_err``/``z_source_err`` are 1-sigma errors. The 16th/84th
delay percentiles come from ``--mc-samples`` draws of the redshifts (the lens model is taken as
exact here; equal to the delay when the redshifts are exact too). ``fermat_potential_arcsec2``
(relative to the first image) and ``time_delay_distance_mpc`` rescale the delays to other
redshifts or cosmologies: ``dt = D_dt / c * fermat_potential`` (docs/redshifts.md).
A malformed or unphysical line gets an ``error`` string and the run goes on; only an
unusable invocation (unreadable input, unwritable output) exits non-zero. ``ring`` is true for a
source on the axis of a round lens without shear (an Einstein ring; no point images).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from lenscast.model.cosmology import flat_lcdm
from lenscast.model.cosmology_limits import cosmology_problem
from lenscast.model.defaults import DEFAULT_H0, DEFAULT_MC_SAMPLES, DEFAULT_OM0
from lenscast.model.image_prediction import predict_images
from lenscast.model.mass_model import DEFAULTS, FIELD_NAMES, MassModel
from lenscast.model.redshifts import MEASURED, PRIOR, Redshifts, delay_scale
from lenscast.model.uncertainty import latin_hypercube_uniform
from lenscast.progress import progress_bar

#: Lines solved together in one vectorised batch (bounds memory on huge inputs).
CHUNK_LINES = 20_000
_REQUIRED_LENS = tuple(name for name in FIELD_NAMES if name not in DEFAULTS)
#: Largest accepted |x|, |y| of a source or image, arcsec (a degree: far beyond any galaxy-scale
#: lens; larger values only overflow the solver).
MAX_POSITION_ARCSEC = 3600.0


#: Other spellings accepted in ``lens``: lenstronomy's keyword -> ours.
LENS_ALIASES = {"theta_E": "theta_e"}


class LineError(ValueError):
    """A problem with one input line; its message becomes that line's ``error``."""


@dataclass(frozen=True)
class System:
    """One validated input line."""

    id: Any
    lens: dict[str, float]
    point: tuple[float, float]
    from_image: bool
    z_lens: float
    z_source: float
    cosmology: tuple[float, float]
    z_lens_err: float = 0.0
    z_source_err: float = 0.0


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``solve`` arguments to ``parser``."""
    parser.description = (
        "Images, magnifications and time delays for lens systems read as JSON Lines."
    )
    # The module docstring documents the line formats; show it verbatim as the epilog.
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = "\n".join((__doc__ or "").splitlines()[2:])
    parser.add_argument(
        "input", nargs="?", default="-", help="JSON Lines file of systems ('-' or absent: stdin)"
    )
    parser.add_argument("--out", default="-", help="output JSON Lines file (default: stdout)")
    parser.add_argument(
        "--mc-samples", type=int, default=DEFAULT_MC_SAMPLES,
        help=f"redshift draws for the delay percentiles (default {DEFAULT_MC_SAMPLES}, as the "
        "pipeline)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="seed of the redshift draws")


def _number(obj: dict[str, Any], key: str, where: str) -> float:
    if key not in obj:
        raise LineError(f"missing {where}{key}")
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise LineError(f"{where}{key} must be a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise LineError(f"{where}{key} must be finite, got {value}")
    return float(value)


def _object(obj: dict[str, Any], key: str) -> dict[str, Any]:
    value = obj[key]
    if not isinstance(value, dict):
        raise LineError(f"{key} must be an object")
    return value


def _lens_names(lens: dict[str, Any]) -> dict[str, Any]:
    """``lens`` with the :data:`LENS_ALIASES` spellings renamed to ours."""
    out = dict(lens)
    for alias, name in LENS_ALIASES.items():
        if alias in out:
            if name in out:
                raise LineError(f"give lens.{name} or lens.{alias}, not both")
            out[name] = out.pop(alias)
    return out


def parse_line(text: str) -> System:
    """Validate one input line (raises :class:`LineError` with the reason)."""
    try:
        record = json.loads(text.strip())
    except json.JSONDecodeError as exc:
        raise LineError(f"invalid JSON: {exc.msg} at column {exc.colno}") from None
    except RecursionError:
        raise LineError("invalid JSON: nested too deep") from None
    if not isinstance(record, dict):
        raise LineError("a line must be a JSON object")
    if "lens" not in record:
        raise LineError("missing lens")
    lens_obj = _lens_names(_object(record, "lens"))
    lens = {k: _number(lens_obj, k, "lens.") for k in _REQUIRED_LENS}
    lens |= {k: _number(lens_obj, k, "lens.") for k in DEFAULTS if k in lens_obj}
    reason = MassModel.from_mapping(lens).invalid_reasons()[0]
    if reason is not None:
        raise LineError(f"unphysical lens: {reason}")
    if ("source" in record) == ("image" in record):
        raise LineError("give exactly one of source or image")
    key = "source" if "source" in record else "image"
    point_obj = _object(record, key)
    point = (_number(point_obj, "x", f"{key}."), _number(point_obj, "y", f"{key}."))
    if max(abs(point[0]), abs(point[1])) > MAX_POSITION_ARCSEC:
        raise LineError(f"{key} more than {MAX_POSITION_ARCSEC:g} arcsec from the origin")
    z_lens, z_source = _optional(record, "z_lens"), _optional(record, "z_source")
    z_lens_err = _optional(record, "z_lens_err", default=0.0)
    z_source_err = _optional(record, "z_source_err", default=0.0)
    if z_lens <= 0 or z_source <= 0 or z_source <= z_lens:  # NaN (missing) passes
        raise LineError(f"need 0 < z_lens < z_source, got z_lens={z_lens}, z_source={z_source}")
    if z_lens_err < 0 or z_source_err < 0:
        raise LineError("redshift errors must be >= 0")
    cosmology = (DEFAULT_H0, DEFAULT_OM0)
    if record.get("cosmology") is not None:
        c = _object(record, "cosmology")
        cosmology = (_number(c, "H0", "cosmology."), _number(c, "Om0", "cosmology."))
        problem = cosmology_problem(*cosmology)
        if problem is not None:
            raise LineError(f"cosmology: {problem} (flat LCDM)")
    return System(record.get("id"), lens, point, key == "image", z_lens, z_source, cosmology,
                  z_lens_err, z_source_err)  # fmt: skip


def _optional(record: dict[str, Any], key: str, default: float = math.nan) -> float:
    """A number that may be absent or null (then ``default``)."""
    return default if record.get(key) is None else _number(record, key, "")


def _finite(value: float) -> float | None:
    # JSON has no infinity: a source exactly on a caustic has an infinitely magnified image.
    return float(value) if math.isfinite(value) else None


def _delay_percentiles(
    redshifts: Redshifts, z: tuple[np.ndarray, np.ndarray], cosmo: tuple[float, float],
    n_samples: int, seed: int,
) -> np.ndarray:
    """(n, 2) 16th/84th percentiles of ``D_dt(draw) / D_dt(nominal)`` over redshift draws."""
    if n_samples <= 0 or not np.any(redshifts.uncertain):
        return np.ones((redshifts.n, 2))
    u = latin_hypercube_uniform([np.random.default_rng(seed)] * redshifts.n, n_samples, 2)
    scale = delay_scale(redshifts, u, z_lens=z[0], z_source=z[1], cosmology=flat_lcdm(*cosmo))
    return np.percentile(scale, [16.0, 84.0], axis=1).T


def solve_systems(
    systems: list[System], *, n_samples: int = DEFAULT_MC_SAMPLES, seed: int = 0
) -> list[dict[str, Any]]:
    """Solve validated systems in vectorised batches (one per cosmology and input kind).

    Missing redshifts come from the SL2S prior; the delay percentiles from ``n_samples``
    redshift draws (see the module docstring).
    """
    out: list[dict[str, Any]] = [{} for _ in systems]
    groups: dict[tuple[tuple[float, float], bool], list[int]] = {}
    for i, s in enumerate(systems):
        groups.setdefault((s.cosmology, s.from_image), []).append(i)
    for (cosmo, from_image), idx in groups.items():
        batch = [systems[i] for i in idx]
        model = MassModel.from_mapping(
            {k: np.array([s.lens.get(k, DEFAULTS.get(k, 0.0)) for s in batch]) for k in FIELD_NAMES}
        )
        px = np.array([s.point[0] for s in batch])
        py = np.array([s.point[1] for s in batch])
        points = {"image_x": px, "image_y": py} if from_image else {"source_x": px, "source_y": py}
        redshifts = Redshifts.of(
            len(batch), z_lens=[s.z_lens for s in batch], z_source=[s.z_source for s in batch],
            z_lens_err=[s.z_lens_err for s in batch], z_source_err=[s.z_source_err for s in batch],
        )  # fmt: skip
        z_lens, z_source = redshifts.nominal()
        pred = predict_images(
            model, **points, z_lens=z_lens, z_source=z_source, cosmology=flat_lcdm(*cosmo)
        )
        # Delays are D_dt / c times the Fermat potential, >= 0 after the first image: their
        # percentiles are the distance ratio's percentiles times the nominal delay.
        ratio = _delay_percentiles(redshifts, (z_lens, z_source), cosmo, n_samples, seed)
        for row, i in enumerate(idx):
            if not (np.isfinite(pred.source_x[row]) and np.isfinite(pred.source_y[row])):
                out[i] = {
                    "id": systems[i].id, "source": None, "images": [], "ring": False,
                    "redshifts": None,
                    "error": "the observed image is on the singular lens centre: no source",
                }  # fmt: skip
                continue
            k = int(pred.n_images[row])
            images = [
                {
                    "x": float(pred.x[row, j]),
                    "y": float(pred.y[row, j]),
                    "magnification": _finite(pred.magnification[row, j]),
                    "time_delay_days": float(pred.time_delay_days[row, j]),
                    "time_delay_p16": float(pred.time_delay_days[row, j] * ratio[row, 0]),
                    "time_delay_p84": float(pred.time_delay_days[row, j] * ratio[row, 1]),
                    "fermat_potential_arcsec2": float(pred.fermat_potential[row, j]),
                }
                for j in range(k)
            ]
            out[i] = {
                "id": systems[i].id,
                "source": {"x": float(pred.source_x[row]), "y": float(pred.source_y[row])},
                "images": images,
                "ring": bool(pred.ring[row]),
                "redshifts": {
                    "z_lens": float(z_lens[row]),
                    "z_source": float(z_source[row]),
                    "z_lens_origin": PRIOR if redshifts.lens_from_prior[row] else MEASURED,
                    "z_source_origin": PRIOR if redshifts.source_from_prior[row] else MEASURED,
                    "time_delay_distance_mpc": float(pred.time_delay_distance_mpc[row]),
                },
                "error": None,
            }
    return out


def _id_of(text: str) -> Any:
    """Best-effort id of a rejected line, so its error can be matched to the input."""
    try:
        record = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return None
    return record.get("id") if isinstance(record, dict) else None


def _failed(system_id: Any, error: str) -> dict[str, Any]:
    """The output line of a system that got no solution."""
    return {"id": system_id, "source": None, "images": [], "ring": False, "redshifts": None,
            "error": error}  # fmt: skip


def _solve_each(systems: list[System], *, n_samples: int, seed: int) -> list[dict[str, Any]]:
    """Solve systems together; if that raises, one by one, so only a failing line fails."""
    try:
        return solve_systems(systems, n_samples=n_samples, seed=seed)
    except Exception:  # numerical trouble in one system must not cost the others
        if len(systems) == 1:
            raise
    out = []
    for system in systems:
        try:
            out.extend(solve_systems([system], n_samples=n_samples, seed=seed))
        except Exception as exc:
            out.append(_failed(system.id, f"cannot solve: {type(exc).__name__}: {exc}"))
    return out


def process_lines(
    lines: Iterable[str], *, n_samples: int = DEFAULT_MC_SAMPLES, seed: int = 0
) -> Iterator[dict[str, Any]]:
    """Results for an iterable of input lines, in order (blank lines skipped)."""
    chunk: list[str] = []
    for line in lines:
        if line.strip():
            chunk.append(line)
        if len(chunk) >= CHUNK_LINES:
            yield from _process_chunk(chunk, n_samples, seed)
            chunk = []
    if chunk:
        yield from _process_chunk(chunk, n_samples, seed)


def _process_chunk(chunk: list[str], n_samples: int, seed: int) -> list[dict[str, Any]]:
    results: list[dict[str, Any] | None] = [None] * len(chunk)
    valid: list[tuple[int, System]] = []
    for i, text in enumerate(chunk):
        try:
            valid.append((i, parse_line(text)))
        except LineError as exc:
            results[i] = _failed(_id_of(text), str(exc))
    solved = _solve_each([s for _, s in valid], n_samples=n_samples, seed=seed)
    for (i, _), result in zip(valid, solved, strict=True):
        results[i] = result
    return [r for r in results if r is not None]


def _json_line(result: dict[str, Any]) -> str:
    """``result`` as JSON; JSON has no infinity or NaN, so a line holding one says why not."""
    try:
        return json.dumps(result, allow_nan=False)
    except (ValueError, RecursionError):
        pass
    system_id = result["id"]
    try:
        json.dumps(system_id, allow_nan=False)
    except (ValueError, RecursionError):  # a non-finite number inside the echoed id
        system_id = repr(system_id)[:200]
    try:
        return json.dumps(result | {"id": system_id}, allow_nan=False)
    except (ValueError, RecursionError):
        error = result["error"] or "the solution is not finite (an input out of range?)"
        return json.dumps(_failed(system_id, error), allow_nan=False)


def run(args: argparse.Namespace) -> int:
    """Run ``lenscast solve``; 0 when every line got an answer (results or an error)."""
    try:
        source: IO[str] = sys.stdin if args.input == "-" else open(args.input, encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        print(f"lenscast solve: cannot read {args.input}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        sink: IO[str] = sys.stdout if args.out == "-" else open(args.out, "w", encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        print(f"lenscast solve: cannot write {args.out}: {exc.strerror}", file=sys.stderr)
        if source is not sys.stdin:
            source.close()
        return 2
    try:
        # Progress on stderr only for an interactive terminal (pipes stay clean).
        lines = progress_bar(
            source, unit=" lines", disable=not sys.stderr.isatty(), file=sys.stderr
        )
        for result in process_lines(lines, n_samples=args.mc_samples, seed=args.seed):
            sink.write(_json_line(result) + "\n")
    except UnicodeDecodeError as exc:
        print(f"lenscast solve: input is not UTF-8 text: {exc}", file=sys.stderr)
        return 2
    finally:
        if source is not sys.stdin:
            source.close()
        if sink is not sys.stdout:
            sink.close()
    return 0
