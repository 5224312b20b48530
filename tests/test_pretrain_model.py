"""The pretraining model (training/pretrain_model.py): decoder and loss against the official
implementation, official key names in and out, and the pretraining-only key table of checkpoint.py."""

import pytest
import torch

from hear_gram import checkpoint
from hear_gram.model import PATCH, TIME, VARIANTS
from training.decoder import MultiWindowAttention
from training.pretrain_model import PretrainModel, random_mask

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


@pytest.mark.parametrize("layout", [PATCH, TIME], ids=["patch", "time"])
def test_windowed_attention_by_blocks_is_the_dense_masked_softmax(layout):
    """The per-window computation (heads grouped by window, global heads unmasked) gives the output and the
    gradients of one dense (N, N) attention with -inf outside the windows, heads in their own order."""
    torch.manual_seed(0)
    cfg = tiny_config(**layout)
    n = cfg.n_tokens
    # the official order and a shuffled one with a repeated window (heads of one window share a call)
    for windows in (cfg.decoder_windows, (0, 25, 2, 0, 5, 25, 10, 50)):
        att = MultiWindowAttention(32, 8, windows)
        assert sorted(att.head_order) == list(range(8))
        for h in att.attn_heads:  # far from 0, so a bias applied to the wrong head or offset shows
            if h.window:
                torch.nn.init.normal_(h.relative_position_bias_table, std=2.0)
        x = torch.randn(3, n, 32, requires_grad=True)
        params = list(att.parameters())
        ours, dense = att(x), att.dense_forward(x)
        torch.testing.assert_close(ours, dense, rtol=1e-5, atol=1e-6)
        w = torch.randn_like(ours)  # a random cotangent: every output element matters
        g_ours = torch.autograd.grad((ours * w).sum(), [x, *params])
        g_dense = torch.autograd.grad((dense * w).sum(), [x, *params])
        for a, b in zip(g_ours, g_dense):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
        assert all(g.abs().sum() > 0 for g in g_ours)  # every bias table gets a gradient


def test_windows_must_divide_the_tokens():
    att = MultiWindowAttention(32, 2, (0, 7))
    with pytest.raises(ValueError, match="20 tokens are not divisible by the attention window 7"):
        att(torch.randn(1, 20, 32))


@pytest.mark.parametrize("encoder", ["transformer", "mamba"])
def test_masked_encode_embeds_only_the_visible_patches_as_the_conv_does(encoder):
    """encode(x, mask) embeds visible patches with a GEMM; it equals the conv over every patch, then masked."""
    torch.manual_seed(0)
    cfg = tiny_config(encoder=encoder, d_state=16, headdim=16)
    enc = PretrainModel(cfg).encoder
    x = torch.randn(4, cfg.in_channels, cfg.n_mels, cfg.chunk_frames)
    mask = random_mask(4, cfg.n_tokens, cfg.n_masked, generator=torch.Generator().manual_seed(1))
    conv = enc.patch_embed(x).flatten(2).transpose(1, 2) + enc.pos_embed[:, 1:]
    vis = conv[~mask].reshape(4, -1, cfg.dim)
    cls = (enc.cls_token + enc.pos_embed[:, :1]).expand(4, -1, -1)
    ref = enc.backbone(torch.cat([cls, vis], dim=1))
    torch.testing.assert_close(enc.encode(x, mask), ref, rtol=1e-5, atol=1e-5)
    assert vis.shape[1] == cfg.n_tokens - cfg.n_masked


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
