"""GRAM-T and GRAM-M against the official implementation (tests/fixtures/official), float32 on CPU.

Full-size models; the large official outputs are stored as fixed random projections of their last axis
(official_fixtures.Expected.compare), which keep the relative error within a few percent.

Chunk tensors are compared with the encoder path (the decoder and loss in test_pretrain_model.py); runtime tensors with the official-compatibility
runtime (the default runtime fixes the official defects, see test_runtime.py)."""

import importlib

import pytest
import torch

from hear_gram.checkpoint import load_encoder
from hear_gram.model import VARIANTS

from conftest import OFFICIAL, official_state_dict

TOL = 1e-5


def report(e, v, name, ours):
    err, max_abs = e.compare(name, ours)
    print(f"{v} {name}: rel {err:.2e} max abs {max_abs:.2e}{'' if name in e else ' (projected)'}")
    return err


@pytest.fixture(scope="module", params=["gramt_frame", "gramt_time", "gramm_frame", "gramm_time"])
def case(request, official):
    v = request.param
    model = load_encoder(VARIANTS[OFFICIAL[v]].config, official_state_dict(v))
    return v, model.eval(), official.expected(v)


def test_chunk_outputs(case):
    v, model, e = case
    with torch.no_grad():
        tokens = model.forward_features(e["chunk_logmel"])
        for s in ("raw", "mean", "cls"):
            assert report(e, v, f"chunk_{s}", model.pool(tokens, s)) <= TOL


@pytest.mark.parametrize("kind", ["binaural", "mono"])
def test_runtime_compat(case, official_files, kind):
    v, _, e = case
    mod = importlib.import_module(f"hear_gram.{OFFICIAL[v]}")
    rt = mod.load_model(official_files(v), compat=True)
    audio = e[f"audio_{kind}"]
    emb, ts, scene = rt.embed(audio)  # one pass for both outputs; the HEAR functions call embed()
    assert report(e, v, f"{kind}_runtime_raw", emb) <= TOL  # compare() checks the (B, frames) layout too
    assert report(e, v, f"{kind}_runtime_scene", scene) <= TOL
    n = audio.shape[-1]
    expected_ts = torch.arange(emb.shape[1], dtype=torch.float64) * (n / 32000 / emb.shape[1] * 1000)
    assert torch.allclose(ts[0].double(), expected_ts, atol=1e-3)
    if kind == "mono":  # the official binaural timestamps are wrong by design (channel count read as length)
        assert torch.allclose(ts, e["mono_runtime_timestamps"], atol=1e-3)
