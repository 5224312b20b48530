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


# -- official packagings (issue 15) ---------------------------------------------------------------
# A GRAM-T patch model small enough for many files, whose architecture the loader can infer from shapes
# alone with gram_t_patch's defaults (12 heads, 8 decoder heads, the official decoder windows).
OFFICIAL_TINY = dict(dim=96, depth=2, num_heads=12, mlp_dim=192, decoder_dim=32, decoder_depth=1)
HF_CONFIG = {"model_type": "gramt-binaural-frame", "architectures": ["GRAMTModel"],
             "auto_map": {"AutoConfig": "configuration_gramt.GRAMTConfig", "AutoModel": "model.GRAMTModel"},
             "patch_size": [16, 8], "frequency_stride": 16, "time_stride": 8, "encoder_hidden_dim": 96,
             "encoder_num_layers": 2, "encoder_num_heads": 12, "decoder_embedding_dim": 32,
             "decoder_window_sizes": [2, 5, 10, 25, 50, 100, 0, 0], "input_length": 200, "num_mel_bins": 128}


def official_tiny(seed, **kw):
    """Official-layout (Lightning-module names, encoder + decoder) weights of a small model."""
    from hear_gram.model import GramConfig
    from training.pretrain_model import PretrainModel

    torch.manual_seed(seed)
    m = PretrainModel(GramConfig(**{**OFFICIAL_TINY, **kw}))
    return m, {k: v.contiguous() for k, v in m.official_state_dict().items()}


def _repo(root, repo_id, tensors, config=None):
    from safetensors.torch import save_file

    folder = root.parent / ("src-" + repo_id.replace("/", "-"))
    folder.mkdir(parents=True)
    save_file(tensors, str(folder / "model.safetensors"))
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config))
    _make_cache(root, repo_id, str(folder))


@pytest.fixture
def official_cache(tmp_path):
    """The repos as the authors publish them: mixin (`model.` + `mel_spec.melspec.*`), transformers
    (config.json with model_type/auto_map, weights under `gramt.`), mono (transformers, 1 channel)."""
    root = tmp_path / "hub"
    mixin, sd = official_tiny(1)
    mel = {"mel_spec.melspec." + k: v.clone() for k, v in mixin.encoder.melspec.state_dict().items()}
    _repo(root, "labhamlet/gramt-binaural", {**{"model." + k: v for k, v in sd.items()}, **mel},
          config={"model_size": "base"})  # a PyTorchModelHubMixin config.json: no model_type, ignored
    frame, sd = official_tiny(2)
    _repo(root, "labhamlet/gramt-binaural-frame", {"gramt." + k: v for k, v in sd.items()}, config=HF_CONFIG)
    mono, sd = official_tiny(3, in_channels=1)
    _repo(root, "labhamlet/gramt-mono", {"gramt." + k: v for k, v in sd.items()},
          config=dict(HF_CONFIG, model_type="gramt-mono"))
    refs = {name: m.encoder.cls_token.detach() for name, m in (("mixin", mixin), ("frame", frame), ("mono", mono))}
    torch.save(refs, str(tmp_path / "refs.pt"))
    return root, tmp_path / "refs.pt"


def test_official_packagings_from_the_hub_cache(official_cache):
    root, refs = official_cache
    code = ("import torch, hear_gram, hear_gram.gram_t_patch as g\n"
            f"refs = torch.load({str(refs)!r})\n"
            "m = hear_gram.load_model()\n"  # the transformers repo labhamlet/gramt-binaural-frame comes first
            "assert torch.equal(m.model.cls_token, refs['frame']) and m.config.num_heads == 12\n"
            "m = g.load_model('labhamlet/gramt-binaural')\n"  # mixin layout
            "assert torch.equal(m.model.cls_token, refs['mixin'])\n"
            "mono = g.load_model('labhamlet/gramt-mono')\n"
            "assert mono.config.in_channels == 1 and torch.equal(mono.model.cls_token, refs['mono'])\n"
            "x = torch.rand(2, 2, 40000) - 0.5\n"
            "a = mono.get_scene_embeddings(x)\n"  # binaural into a mono model: the waveform average
            "b = mono.get_scene_embeddings(x.mean(1))\n"
            "assert a.shape == (2, 8 * 96) and torch.allclose(a, b, atol=1e-5)\n"
            "from hear_gram.check import check\n"  # a cached repo is checked from the cache, offline
            "lines, ok = check('labhamlet/gramt-binaural-frame')\n"
            "assert ok and '(Hub cache)' in lines[0] and \"prefix 'gramt.'\" in '\\n'.join(lines), lines\n"
            "print('ok')\n")
    r = _run(code, root)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["ok"]


def test_default_repo_falls_back_and_the_error_lists_both_tries(official_cache, tmp_path):
    root, refs = official_cache
    import shutil

    shutil.rmtree(root / "models--labhamlet--gramt-binaural-frame")
    r = _run("import torch, hear_gram\n"
             f"assert torch.equal(hear_gram.load_model().model.cls_token, torch.load({str(refs)!r})['mixin'])\n"
             "print('ok')", root)
    assert r.returncode == 0, r.stderr
    shutil.rmtree(root / "models--labhamlet--gramt-binaural")
    r = _run("import hear_gram; hear_gram.load_model()", root)
    assert r.returncode != 0
    assert "tried:\n  labhamlet/gramt-binaural-frame: " in r.stderr and "\n  labhamlet/gramt-binaural: " in r.stderr
