#!/usr/bin/env bash
# A candidate model on real lens galaxies: model 2.1.0 fine-tuned on SDSS ellipticals as lens
# light (trainer/simulation/real_galaxies.py), mixed with 2.0.0's realistic analytic lens light.
#
# Stage "train": simulates the validation set, then both training sets at once (one worker
# each) while fine-tuning the shipped default model on the shards written so far.
# Stage "tests": the held-out real-galaxy set (test-split galaxies only).
# Stage "resume": continues training from RUN/last.pt. Run from the repository root after
# trainer/scripts/fetch_real_galaxies.sh "$GALAXIES".
#
# Usage: trainer/scripts/real_galaxies_train.sh train|tests|resume
# Environment (defaults): DATA (/work/data) data root; GALAXIES ($DATA/gz1) real-galaxy
# catalogue; RUN ($DATA/runs/real_galaxies) run directory; MINUTES (50) training budget;
# INIT (model/weights/lenscast-hsc.onnx, model 2.1.0); LENSCAST (python -m lenscast).
set -euo pipefail
stage=${1:?usage: real_galaxies_train.sh train|tests|resume}
data=${DATA:-/work/data}
galaxies=${GALAXIES:-$data/gz1}
run=${RUN:-$data/runs/real_galaxies}
minutes=${MINUTES:-50}
init=${INIT:-model/weights/lenscast-hsc.onnx}
lenscast=${LENSCAST:-python -m lenscast}
common=(--psf-ellipticity 0 0.1 --source-placement mixed --mass-light-misalignment 25 0.15
        --gaussian-psf-fraction 0.3 --non-lens-fraction 0.35 --workers 1 --no-progress)
real=(--lens-light real --real-galaxies "$galaxies")
train=(--config trainer/configs/hsc-realsky.json --seed 8
       --data "$data/train_gz" "$data/train_real" --val "$data/val_gz" --out "$run"
       --max-minutes "$minutes" --threads 2 --no-progress)

case $stage in
  train)
    mkdir -p "$run"
    cp "$init" "$run/init.onnx"  # the starting point, kept beside the run
    $lenscast simulate --split val --n 3000 --seed 72 "${common[@]}" "${real[@]}" \
      --out "$data/val_gz"
    # Both training sets are written while the network trains (it picks up new shards at
    # every epoch): real ellipticals, and 2.0.0's realistic analytic light against forgetting.
    $lenscast simulate --split train --n 40000 --seed 71 "${common[@]}" "${real[@]}" \
      --out "$data/train_gz" &
    real_sim=$!
    $lenscast simulate --split train --n 20000 --seed 61 "${common[@]}" --lens-light realistic \
      --out "$data/train_real" &
    realistic_sim=$!
    until compgen -G "$data/train_gz/shard_0000[2-9].npz" > /dev/null; do sleep 10; done
    $lenscast train "${train[@]}" --init-onnx "$run/init.onnx"
    wait "$real_sim" "$realistic_sim"
    ;;
  resume)
    $lenscast train "${train[@]}" --resume
    ;;
  tests)
    $lenscast simulate --split test --n 3000 --seed 73 "${common[@]}" "${real[@]}" \
      --out "$data/test_gz"
    ;;
  *)
    echo "unknown stage $stage (train, tests or resume)" >&2
    exit 2
    ;;
esac
