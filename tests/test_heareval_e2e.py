"""hear-eval-kit end to end on mini Nat-HEAR tasks: stock heareval 2021.1.3 computes hear_gram.gram_t_patch
embeddings of 2-channel 32 kHz tasks, its predictions runner scores a scene task, and the localization evaluator
reads heareval's embedding output.  Small weights are built locally (tiny GRAM-T config).

Runs in the hear-eval-kit environment that `make test` builds (heareval_env/setup.sh); its python is given by
HEAR_GRAM_HEAREVAL_PY.  The same commands, for a user (README):

    python -m training.nathear mini nathear_ci --profile ci
    PYTHONPATH=heareval_env/tfstub python -m heareval.embeddings.runner hear_gram.gram_t_patch \\
        --model WEIGHTS --tasks-dir nathear_ci/tasks --task all --embeddings-dir embeddings
    python heareval_env/hear_predict.py embeddings/hear_gram.gram_t_patch/nh_keywords --grid faster --grid-points 2
"""

import json
import os
import subprocess

import numpy as np
import pytest
import torch

from hear_gram.checkpoint import save_model
from hear_gram.model import GramModel

from conftest import REPO, tiny_config

HEAR_PY = os.environ.get("HEAR_GRAM_HEAREVAL_PY")
pytestmark = [pytest.mark.heareval,
              pytest.mark.skipif(not HEAR_PY, reason="HEAR_GRAM_HEAREVAL_PY not set (make test sets it)")]


def hear_env():
    return dict(os.environ, PYTHONPATH=os.path.join(REPO, "heareval_env", "tfstub"),
                TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1", HF_HUB_OFFLINE="1")


def run(args, cwd):
    r = subprocess.run([HEAR_PY, *args], cwd=cwd, env=hear_env(), capture_output=True, text=True, timeout=900)
    print(r.stdout[-3000:], r.stderr[-3000:])
    assert r.returncode == 0, f"{args[:3]} failed"
    return r


def test_heareval_embeddings_and_predictions_on_mini_nathear(tmp_path):
    pytest.importorskip("soundfile")
    from training import localization, nathear

    suite = tmp_path / "nathear"
    nathear.make_mini(suite, "ci", seed=0, progress=False, tasks=("nh_keywords", "nh_azimuth"), sizes=(15, 5, 5))
    torch.manual_seed(0)
    weights, _ = save_model(GramModel(tiny_config()), str(tmp_path / "weights"))

    run(["-m", "heareval.embeddings.runner", "hear_gram.gram_t_patch", "--model", weights,
         "--tasks-dir", str(suite / "tasks"), "--task", "all", "--embeddings-dir", "embeddings"], tmp_path)
    emb = tmp_path / "embeddings" / "hear_gram.gram_t_patch"
    n, d = json.loads((emb / "nh_keywords" / "train.embedding-dimensions.json").read_text())
    assert n == 15 and d == 8 * 64  # raw strategy: 8 frequency patches x dim 64 (tiny config)

    run([os.path.join(REPO, "heareval_env", "hear_predict.py"), str(emb / "nh_keywords"),
         "--grid", "faster", "--grid-points", "2"], tmp_path)
    scores = json.loads((emb / "nh_keywords" / "test.predicted-scores.json").read_text())
    test = scores["test"]
    assert isinstance(test["test_score"], float) and np.isfinite(test["test_score"])
    assert 0.0 <= test["test_top1_acc"] <= 1.0

    # localization: heareval stores the direction labels; our evaluator reads its memmaps
    data = {s: localization.read_heareval_split(emb / "nh_azimuth", s) for s in ("train", "valid", "test")}
    assert data["train"][0].shape == (15, d) and np.allclose(np.linalg.norm(data["test"][1], axis=1), 1, atol=1e-5)
    res = localization.evaluate_doa(data, png=str(tmp_path / "doa.png"), max_epochs=50)
    assert np.isfinite(res["doa_mean_deg"]) and 0 <= res["doa_median_deg"] <= 180
    assert (tmp_path / "doa.png").exists()
