"""The pretraining model (training/pretrain_model.py): decoder and loss against the official
implementation, official key names in and out, and the pretraining-only key table of checkpoint.py."""

import pytest
import torch

from hear_gram import checkpoint
from hear_gram.model import VARIANTS
from training.pretrain_model import PretrainModel

from conftest import OFFICIAL, official_state_dict, tiny_config

TOL = 1e-5


@pytest.mark.parametrize("v", ["gramt_frame", "gramt_time", "gramm_frame", "gramm_time"])
def test_decoder_prediction_and_loss_match_the_official(v, official):
    sd = official_state_dict(v)
    model = PretrainModel(VARIANTS[OFFICIAL[v]].config).eval()
    model.load_official_state_dict(sd)
    e = official.expected(v)
    with torch.no_grad():
        loss, pred, target = model(e["chunk_logmel"], e["train_mask"].bool())
    for name, ours in (("train_target_patches", target), ("train_pred", pred), ("train_loss", loss.reshape(1))):
        err, max_abs = e.compare(name, ours)
        print(f"{v} {name}: rel {err:.2e} max abs {max_abs:.2e}")
        assert err <= TOL, name
    # saving gives back the official names and tensors (the wrapper's mel copies aside)
    out = model.official_state_dict()
    inner = {k[len("model."):]: t for k, t in sd.items() if k.startswith("model.")}
    assert set(out) == set(inner)
    assert all(torch.equal(out[k], inner[k]) for k in inner)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_head_table_is_exactly_the_pretraining_models_head(name):
    with torch.device("meta"):
        m = PretrainModel(VARIANTS[name].config)
    head = {k: tuple(t.shape) for k, t in m.state_dict().items() if not k.startswith("encoder.")}
    assert head == checkpoint.head_shapes(m.config)
    assert all(checkpoint.is_head_key(k) for k in head)
    assert not any(checkpoint.is_head_key(k) for k in m.encoder.state_dict())


def test_resume_needs_the_whole_head():
    torch.manual_seed(0)
    m = PretrainModel(tiny_config())
    sd = m.official_state_dict()
    del sd["decoder_blocks.0.mlp.fc2.bias"]
    with pytest.raises(checkpoint.CheckpointError, match=r"missing keys \(1\): decoder_blocks.0.mlp.fc2.bias"):
        PretrainModel(tiny_config()).load_official_state_dict(sd)


def test_gram_m_head_names_and_frozen_parts():
    cfg = tiny_config(encoder="mamba", d_state=16, headdim=16)
    m = PretrainModel(cfg)
    keys = set(m.official_state_dict())
    assert "decoder_v.0.norm1.weight" in keys and "encoder_pos_embed" in keys and "encoder_norm.weight" in keys
    assert not any(k.startswith(("decoder_blocks.", "backbone.", "encoder.")) for k in keys)
    assert not m.encoder_norm.weight.requires_grad and m.mask_token.requires_grad
    assert "mask_token" in dict(PretrainModel(tiny_config()).named_buffers())  # GRAM-T: a buffer, never trained
