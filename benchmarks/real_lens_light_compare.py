"""lenscast against the HOLISMOKES IX public network on real lens light, side by side.

EVALUATION ONLY: the images are built from the HOLISMOKES IX release's 16 example cutouts
(``benchmarks/real_lens_light_set.py``); nothing is trained, calibrated, selected or tuned on
them.

Both networks run on the same images through :class:`lenscast.model.predictor.OnnxMassPredictor`
(ours: the shipped graph; theirs: ``benchmarks/holismokes9/export_onnx.py``'s export, already in
lenscast's conventions). Printed JSON:

* ``accuracy``: per network and per true-θ_E bin (:data:`THETA_E_BINS`), for θ_E, the centre
  and e1/e2, the median and 68 % half-width (16-84 %) of predicted − true and the ±1σ
  coverage; for all systems and for those passing the training set's arc-contrast cut (0.5);
* ``per_galaxy_theta_e``: Δθ_E per real galaxy (all systems);
* ``nonlenses``: each network's θ_E and σ on the galaxies without arcs;
* ``p_lens`` (graphs with that output): lenses kept and non-lenses flagged at the card's
  default threshold, and the ROC AUC of lenses against the no-arc galaxies;
* ``speed``: onnxruntime, 1 thread, batch 64, images per CPU second (per core) and per
  wall-clock second, median of ``--rounds`` interleaved rounds (``onnx_throughput``'s timer).

Usage (from the repository root)::

    python -m benchmarks.real_lens_light_compare --data /work/data/realsky-eval \
        --nonlens-data /work/data/realsky-eval-nonlens \
        --holismokes /work/data/holismokes9/holismokes9.onnx \
        --model model/weights/lenscast-hsc.onnx \
        --speed model/weights/lenscast-hsc-fast.onnx model/weights/lenscast-hsc-fast-int8.onnx \
        --out docs/evaluation/real_lens_light/compare_1.6.0.json \
        --markdown docs/evaluation/real_lens_light/compare_1.6.0.md
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from benchmarks.onnx_throughput import images_per_second
from lenscast.model import parameter_spec as spec
from lenscast.model.predictor import OnnxMassPredictor, load_model_card
from lenscast.trainer.dataset import load_shards
from lenscast.trainer.training.calibration import coverage
from lenscast.trainer.training.evaluation import summary

#: True-θ_E bin edges of the comparison (the table of docs/evaluation/real_lens_light.md), arcsec.
THETA_E_BINS = (0.5, 0.8, 1.0, 1.5, 2.0, 3.0)
#: Parameters compared.
COMPARED = ("theta_e", "center_x", "center_y", "e1", "e2")
#: The training set's arc-contrast cut (``trainer/simulation/simulator.py``).
MIN_CONTRAST = 0.5
#: Name of the optional lens-evidence output (``/work/notes`` contract: ``p_lens``).
P_LENS_OUTPUT = "p_lens"


def residual_table(mean: dict[str, np.ndarray], sigma: dict[str, np.ndarray],
                   truths: dict[str, np.ndarray], mask: np.ndarray) -> dict:
    """Median, 68 % half-width and ±1σ coverage of predicted − true for :data:`COMPARED`."""
    out: dict[str, Any] = {"n": int(mask.sum())}
    for name in COMPARED:
        stats = summary(mean[name][mask] - truths[name][mask])
        stats["coverage_1sigma"] = (float(coverage(mean[name][mask], sigma[name][mask],
                                                   truths[name][mask])) if mask.any()
                                    else float("nan"))
        out[name] = {k: stats[k] for k in ("median", "half_width_68", "coverage_1sigma")}
    return out


def binned(mean: dict[str, np.ndarray], sigma: dict[str, np.ndarray],
           truths: dict[str, np.ndarray], selection: np.ndarray) -> list[dict]:
    """:func:`residual_table` per true-θ_E bin, restricted to ``selection``."""
    theta = truths["theta_e"]
    rows = []
    for low, high in zip(THETA_E_BINS[:-1], THETA_E_BINS[1:], strict=True):
        mask = selection & (theta >= low) & (theta < high)
        rows.append({"theta_e_low": low, "theta_e_high": high,
                     **residual_table(mean, sigma, truths, mask)})
    return rows


def per_galaxy(residual: np.ndarray, galaxy: np.ndarray) -> list[dict]:
    """Median and 68 % half-width of a residual per lens galaxy (what held out by galaxy sees)."""
    rows = []
    for g in np.unique(galaxy):
        stats = summary(residual[galaxy == g])
        rows.append({"lens_galaxy": int(g), "n": stats["n"], "median": stats["median"],
                     "half_width_68": stats["half_width_68"]})
    return rows


def p_lens(path: Path, images: np.ndarray) -> np.ndarray | None:
    """The graph's ``p_lens`` output for ``images``, or None if it has none."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    if P_LENS_OUTPUT not in [o.name for o in session.get_outputs()]:
        return None
    return np.concatenate([
        session.run([P_LENS_OUTPUT], {spec.ONNX_INPUT_NAME: images[i:i + 256]})[0].reshape(-1)
        for i in range(0, len(images), 256)])


def roc_auc(positives: np.ndarray, negatives: np.ndarray) -> float:
    """Area under the ROC curve: P(score of a lens > score of a non-lens), ties counted half."""
    greater = (positives[:, None] > negatives[None, :]).mean()
    ties = (positives[:, None] == negatives[None, :]).mean()
    return float(greater + 0.5 * ties)


def p_lens_threshold(path: Path) -> float:
    """The card's default lens-evidence threshold (0.5 when the card names none)."""
    evidence = load_model_card(path).get("lens_evidence", {})
    return float(evidence.get("default_threshold", 0.5))


def accuracy(path: Path, lenses, nonlenses) -> dict:
    """Everything but speed for one network (see module docstring)."""
    predictor = OnnxMassPredictor(path)
    prediction = predictor.predict(lenses.images)
    truths = lenses.truths
    everything = np.ones(len(lenses), dtype=bool)
    passing = truths["arc_contrast"] >= MIN_CONTRAST
    on_nonlenses = predictor.predict(nonlenses.images)
    upright = nonlenses.truths["orientation"] == 0
    out = {
        "model": {"path": str(path), "name": predictor.identity.name,
                  "version": predictor.identity.version},
        "all": {"overall": residual_table(prediction.mean, prediction.sigma, truths, everything),
                "binned": binned(prediction.mean, prediction.sigma, truths, everything)},
        "contrast_ge_0.5": {
            "overall": residual_table(prediction.mean, prediction.sigma, truths, passing),
            "binned": binned(prediction.mean, prediction.sigma, truths, passing)},
        "per_galaxy_theta_e": per_galaxy(prediction.mean["theta_e"] - truths["theta_e"],
                                         truths["lens_galaxy"]),
        "nonlenses": {
            "n": len(nonlenses),
            "theta_e_percentiles_5_50_95": np.percentile(on_nonlenses.mean["theta_e"],
                                                         [5, 50, 95]).tolist(),
            "sigma_theta_e_percentiles_5_50_95": np.percentile(on_nonlenses.sigma["theta_e"],
                                                               [5, 50, 95]).tolist(),
            "per_galaxy_upright": [
                {"lens_galaxy": int(g), "theta_e": float(t), "sigma_theta_e": float(s)}
                for g, t, s in zip(nonlenses.truths["lens_galaxy"][upright],
                                   on_nonlenses.mean["theta_e"][upright],
                                   on_nonlenses.sigma["theta_e"][upright], strict=True)],
        },
    }
    evidence_lenses = p_lens(path, lenses.images)
    evidence_nonlenses = p_lens(path, nonlenses.images)
    if evidence_lenses is not None and evidence_nonlenses is not None:
        threshold = p_lens_threshold(path)
        out["p_lens"] = {
            "threshold": threshold,
            "fraction_lenses_kept": float(np.mean(evidence_lenses >= threshold)),
            "fraction_nonlenses_flagged": float(np.mean(evidence_nonlenses < threshold)),
            "roc_auc": roc_auc(evidence_lenses, evidence_nonlenses),
            "p_lens_lenses_percentiles_5_50_95": np.percentile(evidence_lenses,
                                                               [5, 50, 95]).tolist(),
            "p_lens_nonlenses_percentiles_5_50_95": np.percentile(evidence_nonlenses,
                                                                  [5, 50, 95]).tolist(),
        }
    return out


def speed(paths: list[Path], *, rounds: int, seconds: float) -> dict:
    """Batch-64 single-thread throughput of each graph, rounds interleaved across graphs."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    sessions = {str(p): ort.InferenceSession(str(p), sess_options=options,
                                             providers=["CPUExecutionProvider"])
                for p in paths}
    cpu: dict[str, list[float]] = {k: [] for k in sessions}
    wall: dict[str, list[float]] = {k: [] for k in sessions}
    for _ in range(rounds):
        for name, session in sessions.items():
            w, c = images_per_second(session, 64, repeats=1, seconds=seconds)
            wall[name] += w
            cpu[name] += c
    return {"threads": 1, "batch": 64, "rounds": rounds, "seconds_per_round": seconds,
            "cpu": platform.processor() or platform.machine(), "onnxruntime": ort.__version__,
            "graphs": {name: {"images_per_cpu_second_median": float(np.median(cpu[name])),
                              "images_per_wall_second_median": float(np.median(wall[name])),
                              "images_per_cpu_second_all": [round(r, 1) for r in cpu[name]]}
                       for name in sessions}}


def _cell(stats: dict) -> str:
    return (f"{stats['median']:+.2f} ± {stats['half_width_68']:.2f} "
            f"({stats['coverage_1sigma']:.0%})")


def markdown(result: dict, *, selection: str = "contrast_ge_0.5") -> str:
    """Tables of ``result`` (θ_E per bin for every network; centre, e1/e2; no-arc; speed)."""
    runs = result["accuracy"]
    names = [f"{r['model']['name']} {r['model']['version']}" for r in runs.values()]
    lines = [f"Systems: {selection} (median ± 68 % half-width of predicted − true, "
             "±1σ coverage in brackets)", "",
             "| true θ_E | n | " + " | ".join(f"Δθ_E {n}" for n in names) + " |",
             "|---|---|" + "---|" * len(names)]
    first = next(iter(runs.values()))[selection]["binned"]
    for k, row in enumerate(first):
        cells = [_cell(r[selection]["binned"][k]["theta_e"]) for r in runs.values()]
        lines.append(f"| {row['theta_e_low']:g}–{row['theta_e_high']:g}\" | {row['n']} | "
                     + " | ".join(cells) + " |")
    lines += ["", "| network (all θ_E) | Δθ_E | Δcenter_x | Δcenter_y | Δe1 | Δe2 |",
              "|---|---|---|---|---|---|"]
    for name, r in zip(names, runs.values(), strict=True):
        overall = r[selection]["overall"]
        lines.append(f"| {name} | " + " | ".join(_cell(overall[p]) for p in COMPARED) + " |")
    lines += ["", "| network | no-arc galaxies: θ_E 5 / 50 / 95 % | σ_θE 5 / 50 / 95 % |",
              "|---|---|---|"]
    for name, r in zip(names, runs.values(), strict=True):
        t = r["nonlenses"]["theta_e_percentiles_5_50_95"]
        s = r["nonlenses"]["sigma_theta_e_percentiles_5_50_95"]
        lines.append(f"| {name} | " + " / ".join(f"{v:.2f}" for v in t) + " | "
                     + " / ".join(f"{v:.2f}" for v in s) + " |")
    if "speed" in result:
        lines += ["", "| graph (onnxruntime, 1 thread, batch 64) | images per CPU second "
                  "(per core) | per wall second |", "|---|---|---|"]
        for graph, v in result["speed"]["graphs"].items():
            lines.append(f"| `{graph}` | {v['images_per_cpu_second_median']:.0f} | "
                         f"{v['images_per_wall_second_median']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; print (and optionally write) the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="real-lens-light lens set")
    parser.add_argument("--nonlens-data", type=Path, required=True, help="the no-arc set")
    parser.add_argument("--holismokes", type=Path, required=True,
                        help="HOLISMOKES IX ONNX export (benchmarks/holismokes9/export_onnx.py)")
    parser.add_argument("--model", type=Path, nargs="+", required=True,
                        help="lenscast ONNX graph(s) compared for accuracy")
    parser.add_argument("--speed", type=Path, nargs="*", default=[],
                        help="further graphs timed (e.g. the fast and int8 graphs)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=1.0, help="length of one timed round")
    parser.add_argument("--no-speed", action="store_true", help="skip the timing")
    parser.add_argument("--out", type=Path, default=None, help="JSON output")
    parser.add_argument("--markdown", type=Path, default=None, help="Markdown tables output")
    args = parser.parse_args(argv)

    lenses = load_shards(args.data)
    nonlenses = load_shards(args.nonlens_data)
    for name, data in (("--data", lenses), ("--nonlens-data", nonlenses)):
        if "lens_galaxy" not in data.truths:
            parser.error(f"{name} is not a real-lens-light set (no lens_galaxy column)")
    result: dict = {
        "data": {"lenses": str(args.data), "n_lenses": len(lenses),
                 "n_contrast_ge_0.5": int(np.sum(lenses.truths["arc_contrast"] >= MIN_CONTRAST)),
                 "nonlenses": str(args.nonlens_data), "n_nonlenses": len(nonlenses),
                 "evaluation_only": lenses.manifest.get("evaluation_only", "")},
        "theta_e_bins": THETA_E_BINS,
        "accuracy": {str(p): accuracy(p, lenses, nonlenses)
                     for p in [args.holismokes, *args.model]},
    }
    if not args.no_speed:
        result["speed"] = speed([args.holismokes, *args.model, *args.speed], rounds=args.rounds,
                                seconds=args.seconds)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(markdown(result))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
