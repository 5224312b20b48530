"""GRAM-T and GRAM-M against the official implementation (../shared/fixtures/official), float32 on CPU.

Chunk tensors are compared with the model path; runtime tensors with the official-compatibility
runtime (the default runtime fixes the official defects, see test_runtime.py)."""

import importlib

import pytest
import torch

from hear_gram.checkpoint import load_into
from hear_gram.model import VARIANTS, GramModel

from conftest import OFFICIAL, official_state_dict, rel_err

TOL = 1e-5


def report(name, ours, ref):
    err = rel_err(ours, ref)
    print(f"{name}: rel {err:.2e} max abs {(ours - ref).abs().max().item():.2e}")
    return err


@pytest.fixture(scope="module", params=["gramt_frame", "gramt_time", "gramm_frame", "gramm_time"])
def case(request, official):
    v = request.param
    model = GramModel(VARIANTS[OFFICIAL[v]].config)
    load_into(model, official_state_dict(v))
    return v, model.eval(), official.expected(v)


def test_chunk_outputs(case):
    v, model, e = case
    with torch.no_grad():
        tokens = model.forward_features(e["chunk_logmel"])
        for s in ("raw", "mean", "cls"):
            out = model.pool(tokens, s)
            assert out.shape == e[f"chunk_{s}"].shape
            assert report(f"{v} chunk_{s}", out, e[f"chunk_{s}"]) <= TOL


def test_decoder_prediction_and_loss(case):
    v, model, e = case
    with torch.no_grad():
        loss, pred, target = model(e["chunk_logmel"], e["train_mask"].bool())
    assert report(f"{v} target patches", target, e["train_target_patches"]) <= TOL
    assert report(f"{v} decoder prediction", pred, e["train_pred"]) <= TOL
    assert report(f"{v} loss", loss.reshape(1), e["train_loss"]) <= TOL


@pytest.mark.parametrize("kind", ["binaural", "mono"])
def test_runtime_compat(case, official_files, kind):
    v, _, e = case
    mod = importlib.import_module(f"hear_gram.{OFFICIAL[v]}")
    rt = mod.load_model(official_files(v), compat=True)
    audio = e[f"audio_{kind}"]
    emb, ts, scene = rt.embed(audio)  # one pass for both outputs; the HEAR functions call embed()
    assert emb.shape == e[f"{kind}_runtime_raw"].shape
    assert report(f"{v} {kind} runtime raw", emb, e[f"{kind}_runtime_raw"]) <= TOL
    assert report(f"{v} {kind} runtime scene", scene, e[f"{kind}_runtime_scene"]) <= TOL
    n = audio.shape[-1]
    expected_ts = torch.arange(emb.shape[1], dtype=torch.float64) * (n / 32000 / emb.shape[1] * 1000)
    assert torch.allclose(ts[0].double(), expected_ts, atol=1e-3)
    if kind == "mono":  # the official binaural timestamps are wrong by design (channel count read as length)
        assert torch.allclose(ts, e["mono_runtime_timestamps"], atol=1e-3)
