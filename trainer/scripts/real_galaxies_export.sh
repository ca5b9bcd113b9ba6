#!/usr/bin/env bash
# Export, calibrate and evaluate the candidate of trainer/scripts/real_galaxies_train.sh beside
# the shipped default model, on the same held-out sets.
#
# The candidate's default graph (4 views) is calibrated on the three validation sets as one
# (real galaxies, realistic and analytic lens light: sigma scale, mean offset and Platt constants
# of p_lens at export, then the theta_e-dependent sigma, then the sigma widened below the p_lens
# threshold), never on a test set. The candidate is then evaluated on the held-out real
# galaxies (test_gz) and the realistic and default simulated test sets (the shipped model on
# test_gz; its reports on the other two are the committed ones), and both models on the arcs
# painted on real HSC galaxies with the HOLISMOKES IX network beside them
# (docs/evaluation/real_lens_light.md; evaluation only). A candidate with colour-residual input
# planes is evaluated once more with them switched off.
# Run from the repository root after "real_galaxies_train.sh train" and "... tests".
#
# Usage: trainer/scripts/real_galaxies_export.sh
# Environment (defaults): DATA (/work/data); RUN ($DATA/runs/real_galaxies); CHECKPOINT
# ($RUN/last.pt); VERSION (2.2.0-rc2); NOTE (the model card's note: what the run is); REPORT
# (docs/evaluation/real_galaxies) where the reports go; SHIPPED (model/weights/lenscast-hsc.onnx);
# LENSCAST (python -m lenscast).
set -euo pipefail
data=${DATA:-/work/data}
run=${RUN:-$data/runs/real_galaxies}
checkpoint=${CHECKPOINT:-$run/last.pt}
version=${VERSION:-2.2.0-rc2}
report=${REPORT:-docs/evaluation/real_galaxies}
shipped=${SHIPPED:-model/weights/lenscast-hsc.onnx}
lenscast=${LENSCAST:-python -m lenscast}
candidate=$run/lenscast-hsc-$version.onnx
note=${NOTE:-"model 2.1.0 fine-tuned on real SDSS ellipticals as lens light and real-galaxy \
non-lenses beside realistic and analytic lens light (trainer/scripts/real_galaxies_train.sh)"}
calibration=("$data/val_gz" "$data/val_real" "$data/val_analytic")

$lenscast export --checkpoint "$checkpoint" --out "$candidate" --name lenscast-hsc \
  --version "$version" --views 4 --calibrate "${calibration[@]}" --note "$note"
$lenscast recalibrate --model "$candidate" --data "${calibration[@]}" --out "$candidate" \
  --version "$version"
$lenscast recalibrate --model "$candidate" --data "${calibration[@]}" --out "$candidate" \
  --version "$version" --evidence-spread

for set in test_gz test_real test; do
  $lenscast evaluate --model "$candidate" --data "$data/$set" --out "$report/$version/$set"
done
# The shipped model on the real galaxies, kept if present (it does not depend on the candidate);
# its reports on test_real and test are docs/evaluation/realistic_lens_light/ and docs/evaluation/.
[[ -f $report/shipped/test_gz/evaluation.json ]] ||
  $lenscast evaluate --model "$shipped" --data "$data/test_gz" --out "$report/shipped/test_gz"
if [[ -f $data/realsky-eval/manifest.json ]]; then
  python -m benchmarks.real_lens_light_compare --data "$data/realsky-eval" \
    --nonlens-data "$data/realsky-eval-nonlens" \
    --holismokes "$data/holismokes9/holismokes9.onnx" --model "$candidate" "$shipped" \
    --no-speed --out "$report/compare_$version.json" --markdown "$report/compare_$version.md"
fi
# A candidate with colour-residual planes is evaluated again with them switched off: how much
# of its answers they carry (benchmarks.colour_residual_ablation).
if python -c 'import json, sys; sys.exit(not json.load(open(sys.argv[1]))["architecture"].get(
    "colour_residuals"))' "${candidate%.onnx}.json"; then
  ablated=${candidate%.onnx}-no-planes.onnx
  python -m benchmarks.colour_residual_ablation --model "$candidate" --out "$ablated" \
    --report "$report/$version/colour_residual_ablation.json"
  for set in test_gz test_real; do
    $lenscast evaluate --model "$ablated" --data "$data/$set" --out "$report/$version-no-planes/$set"
  done
  if [[ -f $data/realsky-eval/manifest.json ]]; then
    python -m benchmarks.real_lens_light_compare --data "$data/realsky-eval" \
      --nonlens-data "$data/realsky-eval-nonlens" \
      --holismokes "$data/holismokes9/holismokes9.onnx" --model "$candidate" "$ablated" \
      --no-speed --out "$report/compare_$version-no-planes.json" \
      --markdown "$report/compare_$version-no-planes.md"
  fi
fi
cp "${candidate%.onnx}.md" "$report/model_card_$version.md"
