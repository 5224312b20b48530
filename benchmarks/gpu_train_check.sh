#!/usr/bin/env bash
# One call on a fresh GPU box (H100/H200), from the repository root; at most 4 minutes:
#     bash benchmarks/gpu_train_check.sh [--steps N] [--no-compile]
# Needs torch with CUDA and this repository's requirements (numpy, scipy, soundfile); the embedded scene
# generators (espeakng-loader, tinysoundfont, pretty_midi) are optional: a missing one shrinks the smoke pool.
# Prints the table of benchmarks/gpu_train_check.py and one GOAL line per backbone.
set -euo pipefail
PY=${PYTHON:-python3}
timeout 235 "$PY" -m benchmarks.gpu_train_check "$@"
