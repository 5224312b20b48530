"""Shared fixtures: the official parity fixtures (tests/fixtures/official, see official_fixtures.py) and small
models."""

import os

# numpy's OpenBLAS spins its worker threads while waiting: on the shared 2-core test machine the small matrix
# products of the scene renderer ran 15x slower with 2 BLAS threads than with 1 (test_brir's cue test: 32 s vs
# 2 s wall).  Set before numpy is imported; subprocesses (demo, heareval) inherit it; an explicit value wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from hear_gram.model import GramConfig, GramEncoder  # noqa: E402

import official_fixtures  # noqa: E402
from official_fixtures import OFFICIAL  # noqa: E402,F401  (re-exported for the tests)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def official():
    """The parity fixtures' module (state_dict(v), expected(v)); see tests/official_fixtures.py."""
    return official_fixtures


_CACHE = {}


def official_state_dict(variant):
    """Official runtime-wrapper state dict (`model.*`, `mel_spec.*`), built once per session."""
    if variant not in _CACHE:
        _CACHE[variant] = official_fixtures.state_dict(variant)
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
    return GramEncoder(tiny_config()).eval()
