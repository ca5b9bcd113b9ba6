#!/usr/bin/env bash
# Model 2.1.0: export, calibrate and evaluate the run of trainer/scripts/realsky_train.sh.
#
# The default graph averages 4 views (229 MFLOP per image, under the ~440 of the HOLISMOKES IX
# network), the fast graph 2. Both are calibrated on the realistic validation set (sigma
# scale, mean offset and Platt constants of p_lens at export, then the theta_e-dependent
# sigma, then the sigma widened below the p_lens threshold), never on a test set. The evaluations write docs/evaluation and the model cards.
# Run from the repository root.
#
# Usage: trainer/scripts/realsky_export.sh
# Environment (defaults): DATA (/work/data); RUN ($DATA/runs/realsky); CHECKPOINT
# ($RUN/last.pt); OUT (model/weights); VERSION (2.1.0); LENSCAST (python -m lenscast);
# INT8 (1: also the int8 fast graph).
set -euo pipefail
data=${DATA:-/work/data}
run=${RUN:-$data/runs/realsky}
checkpoint=${CHECKPOINT:-$run/last.pt}
out=${OUT:-model/weights}
version=${VERSION:-2.1.0}
lenscast=${LENSCAST:-python -m lenscast}
note="model 1.6.0 fine-tuned on realistic lens light (LRG-bright at every theta_E, envelopes, \
twists, colour gradients, companions, coadd effects) and non-lenses, with the lens-evidence \
output p_lens (trainer/scripts/realsky_train.sh)"

for graph in default fast; do
  if [[ $graph == default ]]; then name=lenscast-hsc; views=4; else name=lenscast-hsc-fast; views=2; fi
  $lenscast export --checkpoint "$checkpoint" --out "$out/$name.onnx" --name "$name" \
    --version "$version" --views "$views" --calibrate "$data/val_real" --note "$note"
  $lenscast recalibrate --model "$out/$name.onnx" --data "$data/val_real" \
    --out "$out/$name.onnx" --version "$version"
  $lenscast recalibrate --model "$out/$name.onnx" --data "$data/val_real" \
    --out "$out/$name.onnx" --version "$version" --evidence-spread
done

eval_dir=docs/evaluation
$lenscast evaluate --model "$out/lenscast-hsc.onnx" --data "$data/test_real" \
  --out "$eval_dir/realistic_lens_light" --update-card
$lenscast evaluate --model "$out/lenscast-hsc.onnx" --data "$data/test" --out "$eval_dir" \
  --update-card
$lenscast evaluate --model "$out/lenscast-hsc-fast.onnx" --data "$data/test_real" \
  --out "$eval_dir/fast/realistic_lens_light" --update-card
$lenscast evaluate --model "$out/lenscast-hsc-fast.onnx" --data "$data/test" \
  --out "$eval_dir/fast" --update-card
if [[ -f $data/test_real_20k/manifest.json ]]; then
  $lenscast evaluate --model "$out/lenscast-hsc.onnx" --data "$data/test_real_20k" \
    --out "$eval_dir/realistic_lens_light_20k"
fi
if [[ -f $data/test_lenstronomy/manifest.json ]]; then
  $lenscast evaluate --model "$out/lenscast-hsc.onnx" --data "$data/test_lenstronomy" \
    --out "$eval_dir/lenstronomy_holdout"
fi
if [[ -f $data/realsky-eval/manifest.json ]]; then
  $lenscast evaluate --model "$out/lenscast-hsc.onnx" --data "$data/realsky-eval" \
    --out "$eval_dir/real_lens_light"
  $lenscast evaluate --model "$out/lenscast-hsc.onnx" --data "$data/realsky-eval-nonlens" \
    --out "$eval_dir/real_lens_light_nonlenses"
fi

[[ ${INT8:-1} == 1 ]] || exit 0
# The int8 fast graph: quantized from the fast graph before its theta_e-dependent sigma, then
# that sigma fitted on its own outputs (the Platt constants of p_lens stay the float graph's).
$lenscast export --checkpoint "$checkpoint" --out "$run/nocal/lenscast-hsc-fast.onnx" \
  --name lenscast-hsc-fast --version "$version" --views 2 --calibrate "$data/val_real" \
  --note "$note"
$lenscast quantize --model "$run/nocal/lenscast-hsc-fast.onnx" --calibration "$data/val_real" \
  --out "$out/lenscast-hsc-fast-int8.onnx" --name lenscast-hsc-fast-int8 --version "$version" \
  --note "network of model $version, int8 convolutions (lenscast quantize); sigma recalibrated on the int8 outputs (lenscast recalibrate)"
$lenscast recalibrate --model "$out/lenscast-hsc-fast-int8.onnx" --data "$data/val_real" \
  --out "$out/lenscast-hsc-fast-int8.onnx" --version "$version"
$lenscast recalibrate --model "$out/lenscast-hsc-fast-int8.onnx" --data "$data/val_real" \
  --out "$out/lenscast-hsc-fast-int8.onnx" --version "$version" --evidence-spread
$lenscast evaluate --model "$out/lenscast-hsc-fast-int8.onnx" --data "$data/test_real" \
  --out "$eval_dir/fast_int8/realistic_lens_light" --update-card
$lenscast evaluate --model "$out/lenscast-hsc-fast-int8.onnx" --data "$data/test" \
  --out "$eval_dir/fast_int8" --update-card
