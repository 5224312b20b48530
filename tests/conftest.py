"""Shared fixtures: the official parity fixtures (../shared/fixtures/official) and small models."""

import importlib.util
import os

import pytest
import torch

from hear_gram.model import GramConfig, GramModel

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.environ.get("HEAR_GRAM_FIXTURES", os.path.join(REPO, "..", "shared", "fixtures", "official"))

# variant in the fixtures -> hear_gram variant
OFFICIAL = {"gramt_frame": "gram_t_patch", "gramt_time": "gram_t_time",
            "gramm_frame": "gram_m_patch", "gramm_time": "gram_m_time"}


def _official_module():
    path = os.path.join(FIXTURES, "official_checkpoint.py")
    if not os.path.exists(path):
        raise RuntimeError(f"parity fixtures not found at {FIXTURES} (set HEAR_GRAM_FIXTURES)")
    spec = importlib.util.spec_from_file_location("official_checkpoint", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def official():
    """The fixtures' `official_checkpoint` module (state_dict(v), expected(v))."""
    return _official_module()


_CACHE = {}


def official_state_dict(variant):
    """Official runtime-wrapper state dict (`model.*`, `mel_spec.*`), built once per session."""
    if variant not in _CACHE:
        _CACHE[variant] = _official_module().state_dict(variant)
    return _CACHE[variant]


@pytest.fixture(scope="session")
def official_files(tmp_path_factory):
    """variant -> path of the official checkpoint written as safetensors in the runtime-wrapper layout."""
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("official")
    out = {}

    def get(variant):
        if variant not in out:
            path = folder / f"{variant}.safetensors"
            save_file({k: v.contiguous() for k, v in official_state_dict(variant).items()}, str(path))
            out[variant] = str(path)
        return out[variant]

    return get


def rel_err(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def tiny_config(**kw):
    """A GRAM-T shaped model small enough for many CPU passes."""
    base = dict(dim=64, depth=2, num_heads=4, mlp_dim=128, decoder_dim=32, decoder_depth=1, decoder_heads=8)
    base.update(kw)
    return GramConfig(**base)


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    return GramModel(tiny_config()).eval()
