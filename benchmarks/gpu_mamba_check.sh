#!/usr/bin/env bash
# Run benchmarks/gpu_mamba_check.py (python -m benchmarks.gpu_mamba_check) on a fresh GPU box (no network), from the repo root:
#     bash benchmarks/gpu_mamba_check.sh [CARRY_DIR] [extra args for gpu_mamba_check.py]
# CARRY_DIR (default .m2gpu, git-ignored; carry it to the box) may hold:
#   wheels/*.whl   installed offline with --no-deps: einops (needed by mamba_ssm's kernels), and
#                  optionally mamba_ssm / causal_conv1d wheels built for the box's torch + CUDA
#   src/*/         a source checkout with setup.py (e.g. mamba_ssm-2.2.5 from
#                  `pip download --no-deps --no-binary :all: mamba_ssm==2.2.5`, unpacked): installed with
#                  MAMBA_SKIP_CUDA_BUILD=TRUE CAUSAL_CONV1D_SKIP_CUDA_BUILD=TRUE pip install --no-build-isolation
#                  --no-deps (Python + Triton files only; no CUDA compile)
#   mamba_ssm/     the bare package folder (python files of mamba_ssm/), passed as --mamba-src
#   fx/            another fixture folder in the format of tests/fixtures/official (default: that one),
#                  passed as --fixtures
# Without the compiled selective_scan_cuda, `import mamba_ssm` fails in its __init__; the .py then
# imports the Triton kernels as a bare package from --mamba-src (DIR/mamba_ssm, or site-packages).
set -euo pipefail
D=${1:-.m2gpu}
shift || true
PY=${PYTHON:-python3}
shopt -s nullglob
whl=("$D"/wheels/*.whl)
if ((${#whl[@]})); then "$PY" -m pip install -q --no-index --no-deps "${whl[@]}"; fi
for s in "$D"/src/*/; do
  MAMBA_SKIP_CUDA_BUILD=TRUE CAUSAL_CONV1D_SKIP_CUDA_BUILD=TRUE \
    "$PY" -m pip install -q --no-build-isolation --no-deps "$s"
done
args=()
if [ -d "$D/mamba_ssm" ]; then
  args+=(--mamba-src "$D")
else  # an installed mamba_ssm without its CUDA extension: import it bare from site-packages
  site=$("$PY" -c 'import importlib.util as u; s = u.find_spec("mamba_ssm"); import os; print(os.path.dirname(os.path.dirname(s.origin)) if s else "")')
  if [ -n "$site" ]; then args+=(--mamba-src "$site"); fi
fi
if [ -f "$D/fx/keys.json" ]; then args+=(--fixtures "$D/fx"); fi
exec "$PY" -m benchmarks.gpu_mamba_check "${args[@]}" "$@"
