#!/usr/bin/env bash
# One call on a lent GPU box (H100/H200, 16 cores), from the repo root, <= 9 min wall:
#     bash benchmarks/gpu_pretrain_check.sh [extra args for benchmarks/gpu_pretrain_check.py]
# Writes report.md, results.json, loss_curve.png, numbers.json and logs to $OUT (weights stay in /tmp).
# Dry run on a CPU (tiny model, tiny suite, a few minutes):
#     OUT=/tmp/gpu_dry bash benchmarks/gpu_pretrain_check.sh --toy --device cpu --budget-s 300 --reserve-s 150
set -euo pipefail
PY=${PYTHON:-python3}
OUT=${OUT:-gpu_check_out}
exec "$PY" -m benchmarks.gpu_pretrain_check --out "$OUT" "$@"
