"""hearvalidator (the released validator, 32 kHz accepted) passes for the HEAR modules.

Runs in the hear-eval-kit environment that `make test` builds (heareval_env/setup.sh); its python is
given by HEAR_GRAM_HEAREVAL_PY."""

import os
import subprocess

import pytest
import torch

from hear_gram.checkpoint import save_model
from hear_gram.model import VARIANTS, GramEncoder

from conftest import REPO, tiny_config

HEAR_PY = os.environ.get("HEAR_GRAM_HEAREVAL_PY")
pytestmark = pytest.mark.skipif(not HEAR_PY, reason="HEAR_GRAM_HEAREVAL_PY not set (make test sets it)")


def hear_env():
    return dict(os.environ, PYTHONPATH=os.path.join(REPO, "heareval_env", "tfstub"),
                TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1", HF_HUB_OFFLINE="1")


@pytest.mark.parametrize("variant", ["gram_t_patch", "gram_t_time", "gram_m_patch", "gram_m_time"])
def test_hearvalidator_passes(variant, tmp_path):
    torch.manual_seed(0)
    cfg = VARIANTS[variant].config
    small = tiny_config(patch=cfg.patch, decoder_windows=cfg.decoder_windows, encoder=cfg.encoder,
                        d_state=16, headdim=16)
    w, _ = save_model(GramEncoder(small), str(tmp_path / variant))
    r = subprocess.run([HEAR_PY, os.path.join(REPO, "heareval_env", "validate.py"), f"hear_gram.{variant}",
                        "--model", w, "--device", "cpu"], env=hear_env(), capture_output=True, text=True,
                       timeout=900)
    print(r.stdout[-2000:], r.stderr[-2000:])
    assert r.returncode == 0 and "Looks good" in r.stdout
