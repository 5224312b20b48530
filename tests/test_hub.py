"""The real `huggingface_hub.hf_hub_download` against a Hub cache that the test builds (no network)."""

import json
import os
import subprocess
import sys

import pytest
import torch

from hear_gram.checkpoint import save_model
from hear_gram.model import GramEncoder

from conftest import REPO, tiny_config

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _make_cache(root, repo_id, folder):
    """Lay out `folder`'s files as a Hub cache snapshot of `repo_id` at COMMIT, with refs/main."""
    base = root / ("models--" + repo_id.replace("/", "--"))
    snap = base / "snapshots" / COMMIT
    snap.mkdir(parents=True)
    for name in os.listdir(folder):
        os.replace(os.path.join(folder, name), snap / name)
    (base / "refs").mkdir()
    (base / "refs" / "main").write_text(COMMIT)


def _run(code, cache, offline=True):
    env = dict(os.environ, HF_HUB_CACHE=str(cache), HF_HUB_OFFLINE="1" if offline else "0",
               PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def cache(tmp_path):
    torch.manual_seed(3)
    m = GramEncoder(tiny_config())
    save_model(m, str(tmp_path / "export"))
    root = tmp_path / "hub"
    _make_cache(root, "labhamlet/gramt-binaural", str(tmp_path / "export"))
    torch.save(m.state_dict()["cls_token"], str(tmp_path / "cls.pt"))
    return root, tmp_path / "cls.pt"


def test_default_repo_from_the_cache_offline(cache):
    root, cls = cache
    code = ("import torch, hear_gram\n"
            "m = hear_gram.load_model()\n"
            f"assert torch.equal(m.model.cls_token, torch.load({str(cls)!r}))\n"
            "print(m.model.config.dim)\n"
            "m2 = hear_gram.load_model(revision='" + COMMIT + "')\n"
            "m3 = hear_gram.load_model('labhamlet/gramt-binaural@" + COMMIT + "')\n"
            "print('ok')\n")
    r = _run(code, root)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["64", "ok"]


def test_missing_repo_offline_says_what_to_do(cache):
    root, _ = cache
    r = _run("import hear_gram.gram_t_time as m; m.load_model()", root)
    assert r.returncode != 0
    assert "labhamlet/gramt-binaural-time" in r.stderr and "Pass weights explicitly" in r.stderr
