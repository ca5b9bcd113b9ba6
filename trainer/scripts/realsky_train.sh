#!/usr/bin/env bash
# Model 2.0.0's data and training run on 2 CPU cores: realistic lens light and non-lenses.
#
# Stage "train": simulates the validation set, then the training mix (realistic lens light
# with a uniform and a VDF-shaped theta_E prior, plus 1.6.0-style analytic lens light, each
# with non-lenses) while fine-tuning the shipped 1.6.0 graph with the lens-evidence head on
# the shards written so far (trainer/configs/hsc-realsky.json). Stage "tests": the held-out sets (run beside training).
# Stage "resume": continues training from RUN/last.pt. Every step is resumable: simulate keeps
# finished shards. Run from the repository root.
#
# Usage: trainer/scripts/realsky_train.sh train|tests|resume
# Environment (defaults): DATA (/work/data) data root; RUN ($DATA/runs/realsky) run directory;
# MINUTES (70) training budget; INIT (model/weights/lenscast-hsc.onnx, model 1.6.0);
# LENSCAST (python -m lenscast).
set -euo pipefail
stage=${1:?usage: realsky_train.sh train|tests|resume}
data=${DATA:-/work/data}
run=${RUN:-$data/runs/realsky}
minutes=${MINUTES:-70}
init=${INIT:-model/weights/lenscast-hsc.onnx}
lenscast=${LENSCAST:-python -m lenscast}
common=(--psf-ellipticity 0 0.1 --source-placement mixed --mass-light-misalignment 25 0.15
        --workers 2 --no-progress)
analytic=(--lens-light-scatter 1.0 --lens-size-scatter 0.25 --gaussian-psf-fraction 0.5)
realistic=(--lens-light realistic --gaussian-psf-fraction 0.3)
train=(--config trainer/configs/hsc-realsky.json --seed 7
       --data "$data/train_real" "$data/train_real_vdf" "$data/train_analytic"
       --val "$data/val_real" --out "$run" --max-minutes "$minutes" --threads 2 --no-progress)

case $stage in
  train)
    mkdir -p "$run"
    cp "$init" "$run/init.onnx"  # the starting point, kept beside the run
    $lenscast simulate --split val --n 5000 --seed 62 "${common[@]}" "${realistic[@]}" \
      --non-lens-fraction 0.35 --out "$data/val_real"
    # The training sets are written while the network trains: the trainer picks up new shards
    # at every epoch (2 CPU cores cannot afford to simulate first and train afterwards).
    (
      $lenscast simulate --split train --n 45000 --seed 61 "${common[@]}" "${realistic[@]}" \
        --non-lens-fraction 0.35 --out "$data/train_real"
      $lenscast simulate --split train --n 20000 --seed 65 --theta-e-prior vdf "${common[@]}" \
        "${realistic[@]}" --non-lens-fraction 0.35 --out "$data/train_real_vdf"
      $lenscast simulate --split train --n 20000 --seed 63 "${common[@]}" "${analytic[@]}" \
        --non-lens-fraction 0.2 --out "$data/train_analytic"
    ) &
    simulating=$!
    until compgen -G "$data/train_real/shard_0000[4-9].npz" > /dev/null; do sleep 10; done
    $lenscast train "${train[@]}" --init-onnx "$run/init.onnx"
    wait "$simulating"
    ;;
  resume)
    $lenscast train "${train[@]}" --resume
    ;;
  tests)
    $lenscast simulate --split test --n 6000 --seed 64 "${common[@]}" "${realistic[@]}" \
      --non-lens-fraction 0.35 --out "$data/test_real"
    # A larger draw of the same kind: reliability bins of several hundred systems each.
    $lenscast simulate --split test --n 20000 --seed 67 "${common[@]}" "${realistic[@]}" \
      --non-lens-fraction 0.35 --out "$data/test_real_20k"
    $lenscast simulate --split test --n 6000 --seed 3 --workers 2 --no-progress \
      --out "$data/test"
    $lenscast simulate --split val --n 3000 --seed 66 "${common[@]}" "${analytic[@]}" \
      --non-lens-fraction 0.2 --out "$data/val_analytic"
    python -m benchmarks.lenstronomy_holdout --n 3000 --seed 11 --out "$data/test_lenstronomy"
    ;;
  *)
    echo "unknown stage $stage (train, tests or resume)" >&2
    exit 2
    ;;
esac
