#!/usr/bin/env bash
# Run the quick and the full GPU calibration on this machine, everything under one folder.
#   bench/calibrate_gpu.sh [OUT_DIR] [extra kvplan calibrate flags...]
# Prints how long each mode took; the profiles are OUT_DIR/{quick,full}/<gpu>-calibrated.toml.
set -euo pipefail
out="${1:-calibration/run-$(date -u +%Y%m%dT%H%M%SZ)}"
shift || true
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/nvidia-smi.csv"
for mode in quick full; do
  flag=""; [ "$mode" = quick ] && flag="--quick"
  start=$(date +%s.%N)
  COLUMNS=140 kvplan calibrate $flag -o "$out/$mode" --ssd-path "${SSD_PATH:-$out}" "$@" \
    | tee "$out/$mode.log"
  end=$(date +%s.%N)
  printf '%s mode: %.1f s\n' "$mode" "$(echo "$end - $start" | bc)" | tee -a "$out/timings.txt"
done
