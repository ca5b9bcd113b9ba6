#!/usr/bin/env bash
# One prepared training run on a GPU machine: the shipped default model trained further on a
# fresh simulated set that is written while it trains.
#
# The machine's CPU cores simulate a new training set (PSF |e| 0-0.1, as model 1.3.0's last
# training) while the GPU trains on the shards written so far, held on the GPU
# (`lenscast train --device cuda`, resident data; see docs/training-on-a-gpu.md). Every epoch's
# resume point is copied to OUT_DIR as it is written, so a run cut off early still returns its
# last state. Run from the repository root, with `python3` able to import the project.
#
# Usage: trainer/scripts/gpu_refine.sh OUT_DIR
# Environment (defaults): MINUTES (6.5) training budget; N_TRAIN (1500000) systems asked of
# the simulator (it is stopped when training ends); SIM_WORKERS (13); DEVICE (cuda);
# SEED (3) training seed; DATA_SEED (12) simulation seed; WORK (/tmp/lenscast-gpu) scratch;
# EXPECT_SPLIT: the HUDF catalogue's split fingerprint here (the run stops if the machine's
# differs: its training set could then hold test galaxies).
set -euo pipefail
out=${1:?usage: gpu_refine.sh OUT_DIR}
minutes=${MINUTES:-6.5}
n_train=${N_TRAIN:-1500000}
workers=${SIM_WORKERS:-13}
device=${DEVICE:-cuda}
seed=${SEED:-3}
data_seed=${DATA_SEED:-12}
work=${WORK:-/tmp/lenscast-gpu}
expect_split=${EXPECT_SPLIT:-afaaa954e934aade}
mkdir -p "$out" "$work"

python3 -c 'from lenscast.trainer.simulation.hudf import hudf_catalogue as c
print(c().fingerprint(pixels=False), c().fingerprint())' | tee "$out/catalogue.txt"
if [[ $(cut -d" " -f1 "$out/catalogue.txt") != "$expect_split" ]]; then
    echo "HUDF catalogue split differs from this project's ($expect_split): stopping" >&2
    exit 3
fi

python3 -m lenscast simulate --split val --n 5000 --seed 2 --psf-ellipticity 0 0.1 \
    --out "$work/val_psf" --workers "$workers" --no-progress
python3 -m lenscast simulate --split train --n "$n_train" --seed "$data_seed" \
    --psf-ellipticity 0 0.1 --out "$work/train" --workers "$workers" --no-progress \
    > "$out/simulate.log" 2>&1 &
simulator=$!
(while sleep 15; do
    cp "$work/run/last.pt" "$work/run/history.jsonl" "$out/" 2>/dev/null || true
done) &
copier=$!
trap 'kill $copier $simulator 2>/dev/null || true' EXIT

python3 -m lenscast train --config trainer/configs/hsc-gpu.json --seed "$seed" \
    --data "$work/train" --val "$work/val_psf" --out "$work/run" \
    --init-onnx model/weights/lenscast-hsc.onnx --device "$device" --resident \
    --max-minutes "$minutes"
cp "$work/run/last.pt" "$work/run/history.jsonl" "$work/run/config.json" "$out/"
cp "$work/train/manifest.json" "$out/train_manifest.json"
