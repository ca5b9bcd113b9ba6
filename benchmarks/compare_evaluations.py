"""Side-by-side summary of ``lenscast evaluate`` reports (models compared on the same set).

Usage::

    python -m benchmarks.compare_evaluations \
        --report "1.6.0=runs/eval_160/evaluation.json" \
        --report "2.0.0=docs/evaluation/realistic_lens_light/evaluation.json"

Reads each ``evaluation.json`` and prints one JSON object, per label: the set, the number of
lenses, and for θ_E, e1, e2 and the centre the median, the 68 % half-width and the ±1σ
coverage (all lenses), the image positions and fractional delays (θ_E above the report's cut,
from the true source and from the observed first image), the fraction with the right image
count, the θ_E statistics per true-θ_E bin, the lens evidence (when the report has it) and the
mass model's θ_E σ on the set's non-lenses. Nothing is recomputed: the figures are the
reports', laid side by side.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

_PARAMETERS = ("theta_e", "e1", "e2", "center_x", "center_y")
_KEEP = ("median", "half_width_68", "coverage_1sigma")


def _pick(stats: dict[str, Any], keys: tuple[str, ...] = _KEEP) -> dict[str, float]:
    return {k: round(float(stats[k]), 4) for k in keys if k in stats}


def summarise(report: dict[str, Any]) -> dict[str, Any]:
    """The comparable figures of one ``lenscast evaluate`` report."""
    out: dict[str, Any] = {"data": report["data"]["path"], "model": report["model"]["version"]}
    if report.get("parameters"):
        params = report["parameters"]["all"]
        out["n_lenses"] = params["theta_e"]["n"]
        out["parameters"] = {name: _pick(params[name]) for name in _PARAMETERS}
        images = report["images"]
        out["images"] = {
            where: {
                "image_dx": _pick(images[where]["image_dx"], ("median", "half_width_68")),
                "image_dy": _pick(images[where]["image_dy"], ("median", "half_width_68")),
                "fractional_delay": _pick(images[where]["fractional_delay"],
                                          ("median", "half_width_68")),
            }
            for where in ("from_true_source", "from_first_image") if where in images
        }
        out["same_image_count"] = round(
            float(images["from_true_source"]["fraction_same_image_count"]), 4)
        out["theta_e_by_bin"] = [
            {"bin": f"{b['low']:g}-{b['high']:g}", "n": b["n"],
             **_pick(b["parameters"]["theta_e"])}
            for b in report["binned_by_theta_e"]
        ]
    if "lens_evidence" in report:
        out["lens_evidence"] = {k: v for k, v in report["lens_evidence"].items()
                                if k != "reliability"}
    if "non_lenses" in report:
        out["non_lenses"] = report["non_lenses"]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--report", action="append", required=True, metavar="LABEL=PATH",
                        help="an evaluation.json and its label (repeat)")
    args = parser.parse_args(argv)
    out = {}
    for item in args.report:
        label, sep, path = item.partition("=")
        if not sep or not label:
            print(f"--report takes LABEL=PATH, got {item!r}", file=sys.stderr)
            return 2
        try:
            report = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as error:
            print(f"cannot read {path}: {error}", file=sys.stderr)
            return 2
        out[label] = summarise(report)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
