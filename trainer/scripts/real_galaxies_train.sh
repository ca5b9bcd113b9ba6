#!/usr/bin/env bash
# A candidate model on real lens galaxies: model 2.1.0 fine-tuned on SDSS ellipticals as lens
# light (trainer/simulation/real_galaxies.py), mixed with 2.0.0's two kinds of simulated lens
# light (realistic and loosely tied analytic) so that it keeps what it reads on them.
#
# Stage "train": simulates the validation set, then the three training sets at once (one
# worker each) while fine-tuning the shipped default model on the shards written so far.
# Stage "tests": the held-out real-galaxy set (test-split galaxies only), and the realistic and
# analytic validation sets the export script calibrates on beside val_gz.
# Stage "resume": continues training from RUN/last.pt. Run from the repository root after
# trainer/scripts/fetch_real_galaxies.sh "$GALAXIES".
#
# Usage: trainer/scripts/real_galaxies_train.sh train|tests|resume
# Environment (defaults): DATA (/work/data) data root; GALAXIES ($DATA/gz1) real-galaxy
# catalogue; RUN ($DATA/runs/real_galaxies) run directory; MINUTES (55) training budget;
# INIT (model/weights/lenscast-hsc.onnx, model 2.1.0); CONFIG
# (trainer/configs/hsc-realsky.json; trainer/configs/hsc-realsky-residuals.json adds the
# colour-residual input planes); LENSCAST (python -m lenscast).
set -euo pipefail
stage=${1:?usage: real_galaxies_train.sh train|tests|resume}
data=${DATA:-/work/data}
galaxies=${GALAXIES:-$data/gz1}
run=${RUN:-$data/runs/real_galaxies}
minutes=${MINUTES:-55}
init=${INIT:-model/weights/lenscast-hsc.onnx}
config=${CONFIG:-trainer/configs/hsc-realsky.json}
lenscast=${LENSCAST:-python -m lenscast}
common=(--psf-ellipticity 0 0.1 --source-placement mixed --mass-light-misalignment 25 0.15
        --gaussian-psf-fraction 0.3 --non-lens-fraction 0.35 --workers 1 --no-progress)
real=(--lens-light real --real-galaxies "$galaxies")
# 2.0.0's analytic mix: light loosely tied to theta_e, half the PSFs Gaussian, fewer non-lenses.
analytic=(--lens-light-scatter 1.0 --lens-size-scatter 0.25 --gaussian-psf-fraction 0.5
          --non-lens-fraction 0.2)
train=(--config "$config" --seed 9
       --data "$data/train_gz" "$data/train_real" "$data/train_analytic" --val "$data/val_gz"
       --out "$run"
       --max-minutes "$minutes" --threads 2 --no-progress)

case $stage in
  train)
    mkdir -p "$run"
    cp "$init" "$run/init.onnx"  # the starting point, kept beside the run
    $lenscast simulate --split val --n 3000 --seed 72 "${common[@]}" "${real[@]}" \
      --out "$data/val_gz"
    # The training sets are written while the network trains (it picks up new shards at
    # every epoch): real ellipticals, and 2.0.0's realistic and analytic light against
    # forgetting what it reads on them.
    $lenscast simulate --split train --n 30000 --seed 71 "${common[@]}" "${real[@]}" \
      --out "$data/train_gz" &
    real_sim=$!
    $lenscast simulate --split train --n 15000 --seed 61 "${common[@]}" --lens-light realistic \
      --out "$data/train_real" &
    realistic_sim=$!
    $lenscast simulate --split train --n 15000 --seed 63 "${common[@]}" "${analytic[@]}" \
      --out "$data/train_analytic" &
    analytic_sim=$!
    until compgen -G "$data/train_gz/shard_0000[2-9].npz" > /dev/null; do sleep 10; done
    $lenscast train "${train[@]}" --init-onnx "$run/init.onnx"
    wait "$real_sim" "$realistic_sim" "$analytic_sim"
    ;;
  resume)
    $lenscast train "${train[@]}" --resume
    ;;
  tests)
    $lenscast simulate --split test --n 3000 --seed 73 "${common[@]}" "${real[@]}" \
      --out "$data/test_gz"
    # 2.0.0's validation sets (trainer/scripts/realsky_train.sh, same seeds): with val_gz, the
    # export script calibrates on all three kinds of lens light at once.
    $lenscast simulate --split val --n 5000 --seed 62 "${common[@]}" --lens-light realistic \
      --out "$data/val_real"
    $lenscast simulate --split val --n 3000 --seed 66 "${common[@]}" "${analytic[@]}" \
      --out "$data/val_analytic"
    ;;
  *)
    echo "unknown stage $stage (train, tests or resume)" >&2
    exit 2
    ;;
esac
