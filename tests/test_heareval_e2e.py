"""hear-eval-kit end to end: stock heareval 2021.1.3 computes hear_gram.gram_t_patch embeddings of 2-channel
32 kHz tasks, its predictions runner scores a scene task, and the localization evaluator reads heareval's
embedding output.  Small weights are built locally (tiny GRAM-T config); the tasks (tests/hear_tasks.py) are
easy enough that a working pipeline must score far above chance.

Runs in the hear-eval-kit environment that `make test` builds (heareval_env/setup.sh); its python is given by
HEAR_GRAM_HEAREVAL_PY.  The same commands, for a user (README):

    python -m training.minisuite nathear_ci --preset tiny
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
from hear_gram.model import GramEncoder

import hear_tasks
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


def test_heareval_embeddings_and_predictions_solve_easy_tasks(tmp_path):
    """Two tasks a working pipeline must solve far above chance even with random weights (tests/hear_tasks.py):
    band-limited noise low vs high (heareval's own predictions runner, top-1 >= 0.9; chance 0.5) and white noise
    from left / front / right (our DOA probe on heareval's embedding output, median error <= 5 degrees; guessing
    gives ~60-90)."""
    pytest.importorskip("soundfile")
    from training import localization, taskio

    tasks = tmp_path / "tasks"
    hear_tasks.write_task(tasks, "bands", sizes=(16, 8, 8))
    hear_tasks.write_task(tasks, "sides", sizes=(24, 12, 12))
    torch.manual_seed(0)
    weights, _ = save_model(GramEncoder(tiny_config()), str(tmp_path / "weights"))

    run(["-m", "heareval.embeddings.runner", "hear_gram.gram_t_patch", "--model", weights,
         "--tasks-dir", str(tasks), "--task", "all", "--embeddings-dir", "embeddings"], tmp_path)
    emb = tmp_path / "embeddings" / "hear_gram.gram_t_patch"
    n, d = json.loads((emb / "toy_bands" / "train.embedding-dimensions.json").read_text())
    assert n == 16 and d == 8 * 64  # raw strategy: 8 frequency patches x dim 64 (tiny config)

    run([os.path.join(REPO, "heareval_env", "hear_predict.py"), str(emb / "toy_bands"),
         "--grid", "faster", "--grid-points", "2"], tmp_path)
    test = json.loads((emb / "toy_bands" / "test.predicted-scores.json").read_text())["test"]
    assert test["test_top1_acc"] >= 0.9, test

    # localization: heareval stores the direction labels; our evaluator reads its memmaps
    data = {s: taskio.read_heareval_split(emb / "toy_sides", s) for s in ("train", "valid", "test")}
    assert data["train"][0].shape == (24, d)
    labels = sorted(tuple(float(v) for v in y) for y in data["test"][1])
    assert labels == sorted(list(hear_tasks.SIDES.values()) * 4)
    res = localization.evaluate_doa(data, png=str(tmp_path / "doa.png"), max_epochs=100)
    assert res["doa_median_deg"] <= 5 and res["doa_mean_deg"] <= 10, res
    assert (tmp_path / "doa.png").stat().st_size > 1000
