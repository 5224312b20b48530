#!/usr/bin/env bash
# A virtual environment with stock hear-eval-kit 2021.1.3 and hearvalidator 2021.0.2 on Python 3.11 and a
# current torch, plus hear_gram itself (editable).  Usage: bash heareval_env/setup.sh VENV
# Then, for every heareval command:  export PYTHONPATH=$PWD/heareval_env/tfstub TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1
set -euo pipefail
VENV=${1:?usage: setup.sh VENV}
REPO=$(cd "$(dirname "$0")/.." && pwd)
python3 -m venv "$VENV"
PIP="$VENV/bin/pip --disable-pip-version-check -q"
SP=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# torch 2.13.0: the CPU wheel this machine keeps on disk (an open range pulls a multi-GB CUDA build).
# Override with TORCH_SPEC="torch==X" elsewhere.
$PIP install "${TORCH_SPEC:-torch==2.13.0}"
# torchaudio: heareval imports it; PyPI's 2.11.0 has no torch pin but ships a CUDA extension that cannot
# load beside a CPU torch; without its .so files it runs as pure Python, which is all heareval needs.
$PIP install --no-deps torchaudio==2.11.0
rm -f "$SP"/torchaudio/lib/*.so
# heareval's own pins cannot install on Python 3.11 (numpy==1.19.2, numba==0.48), so its runtime
# dependencies are listed here with the upper bounds that running it revealed:
#   numpy<2 (pytorch-lightning 1.9 uses np.Inf), setuptools<81 (dcase_util imports pkg_resources),
#   pytorch-lightning<2 (heareval uses *_epoch_end hooks and Trainer(gpus=...)).
$PIP install "numpy<2" "setuptools<81" "pytorch-lightning>=1.6,<2" click dcase-util intervaltree \
    more-itertools pandas pynvml python-slugify sed-eval soundfile torchinfo tqdm scikit-learn scipy \
    huggingface_hub safetensors matplotlib
# heareval 2021.1.3 is the last release (GitHub HEAD is the same code); hearvalidator 2021.0.2 is the
# only one on PyPI.  --no-deps: their pins are the ones replaced above (tensorflow: see tfstub/).
$PIP install --no-deps heareval==2021.1.3 hearvalidator==2021.0.2
$PIP install --no-deps -e "$REPO"
PYTHONPATH="$REPO/heareval_env/tfstub" "$VENV/bin/python" -c \
  "import heareval.embeddings.runner, heareval.predictions.task_predictions, hearvalidator.validate, hear_gram; print('heareval env OK')"
