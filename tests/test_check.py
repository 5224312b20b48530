"""Official packagings on local files (issue 15): any wrapper prefix, encoder-only files, transformers
config.json, mono and ambisonics models, and every outcome of `hear-gram check`."""

import json

import pytest
import torch
from safetensors.torch import save_file

import hear_gram.gram_t_patch as gtp
from hear_gram import cli
from hear_gram.checkpoint import CheckpointError, is_head_key

from test_hub import HF_CONFIG, official_tiny


def _write(folder, tensors, config=None):
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(folder / "model.safetensors"))
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config))
    return str(folder)


def _check(path, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["check", path])
    return e.value.code, capsys.readouterr().out


@pytest.fixture(scope="module")
def tiny():
    return official_tiny(4)


def test_encoder_only_and_prefixed_files_load_the_same_encoder(tiny, tmp_path):
    m, sd = tiny
    enc_only = {k: v for k, v in sd.items() if not is_head_key(k.replace("decoder_v.", "decoder_blocks."))}
    assert len(enc_only) < len(sd)
    hf = _write(tmp_path / "hf", {"gramt." + k: v for k, v in enc_only.items()}, HF_CONFIG)
    for path in (_write(tmp_path / "full", sd), _write(tmp_path / "enc", enc_only), hf):
        rt = gtp.load_model(path)
        for k, v in m.encoder.state_dict().items():
            assert torch.equal(rt.model.state_dict()[k], v), (path, k)


def test_a_head_key_present_is_checked(tiny, tmp_path):
    _, sd = tiny
    bad = dict(sd, **{"decoder_embed.weight": torch.zeros(32, 95)})
    with pytest.raises(CheckpointError, match=r"decoder_embed.weight: checkpoint \(32, 95\) vs model \(32, 96\)"):
        gtp.load_model(_write(tmp_path / "bad", bad))


def test_transformers_config_must_describe_the_weights_and_ambisonics_is_refused(tiny, tmp_path):
    _, sd = tiny
    w = {"gramt." + k: v for k, v in sd.items()}
    with pytest.raises(CheckpointError, match=r"does not describe the weights: dim: config.json 768 vs weights 96"):
        gtp.load_model(_write(tmp_path / "a", w, dict(HF_CONFIG, encoder_hidden_dim=768)))
    with pytest.raises(CheckpointError, match="ambisonics GRAM .*not support"):
        gtp.load_model(_write(tmp_path / "b", w, dict(HF_CONFIG, model_type="gramt-ambisonics")))
    with pytest.raises(CheckpointError, match="model_type 'bert' is not a GRAM model"):
        gtp.load_model(_write(tmp_path / "c", w, dict(HF_CONFIG, model_type="bert")))


def test_mono_model_takes_mono_and_downmixes_binaural(tmp_path):
    m, sd = official_tiny(5, in_channels=1)
    rt = gtp.load_model(_write(tmp_path / "mono", sd, dict(HF_CONFIG, model_type="gramt-mono")))
    assert rt.config.in_channels == 1
    x = torch.rand(1, 2, 40000) - 0.5
    emb, _ = rt.get_timestamp_embeddings(x)
    ref, _ = rt.get_timestamp_embeddings(x.mean(1))
    assert torch.allclose(emb, ref, atol=1e-5) and emb.shape[-1] == 8 * 96
    st = rt.stream(channels=2)  # streaming binaural audio into the mono model: the same downmix
    parts = [st.push(x[0, :, :25000])[0], st.push(x[0, :, 25000:])[0], st.flush()[0]]
    assert torch.allclose(torch.cat(parts), emb[0], atol=1e-5)


def test_gram_m_encoder_only_file_loads(tmp_path):
    from conftest import official_state_dict
    from hear_gram.checkpoint import load_encoder
    from hear_gram.model import VARIANTS

    sd = official_state_dict("gramm_time")
    enc = {k: v for k, v in sd.items() if not (k.startswith("model.") and is_head_key(
        k[len("model."):].replace("decoder_v.", "decoder_blocks.")))}
    assert "model.encoder_norm.weight" not in enc and "model.encoder_v.norm_f.weight" in enc
    m = load_encoder(VARIANTS["gram_m_time"].config, enc)
    assert torch.equal(m.backbone.norm_f.weight, sd["model.encoder_v.norm_f.weight"])


def test_check_reads_a_hub_header_without_the_weights(tiny, monkeypatch):
    """`check owner/name` off the cache: the header from huggingface_hub.get_safetensors_metadata."""
    import huggingface_hub
    from huggingface_hub.utils._safetensors import SafetensorsFileMetadata, SafetensorsRepoMetadata, TensorInfo

    from hear_gram import check as check_mod

    _, sd = tiny
    calls = []

    def fake(repo_id, revision=None, **kw):
        calls.append((repo_id, revision))
        tensors = {"gramt." + k: TensorInfo(dtype="F32", shape=list(v.shape), data_offsets=(0, 4 * v.numel()))
                   for k, v in sd.items()}
        f = SafetensorsFileMetadata(metadata={}, tensors=tensors)
        return SafetensorsRepoMetadata(metadata=None, sharded=False, weight_map={k: "model.safetensors" for k in tensors},
                                       files_metadata={"model.safetensors": f})

    def nothing(*a, **kw):  # neither the cache nor the Hub has a file: no network in the test
        raise FileNotFoundError("not cached")

    monkeypatch.setattr(huggingface_hub, "get_safetensors_metadata", fake)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", nothing)
    lines, ok = check_mod.check("someone/gram-t@abc123")
    assert ok and calls == [("someone/gram-t", "abc123")], lines
    assert "(header from the Hub)" in lines[0] and "prefix 'gramt.'" in "\n".join(lines)


def test_check_outcomes(tiny, tmp_path, capsys):
    _, sd = tiny
    ok = {
        "full": _write(tmp_path / "full", sd),
        "wrapper": _write(tmp_path / "wrapper", {"encoder.model." + k: v for k, v in sd.items()}),
        "hf": _write(tmp_path / "hf", {"gramt." + k: v for k, v in sd.items()}, HF_CONFIG),
        "encoder-only": _write(tmp_path / "enc", {k: v for k, v in sd.items() if not is_head_key(k)}),
        "partial": _write(tmp_path / "part", {k: v for k, v in sd.items() if not k.startswith("decoder_blocks.")}),
    }
    expect = {"full": "pretraining head: complete", "wrapper": "prefix 'encoder.model.'",
              "hf": "from transformers config (model_type 'gramt-binaural-frame')",
              "encoder-only": "pretraining head: absent", "partial": "pretraining head: partial"}
    for name, path in ok.items():
        code, out = _check(path, capsys)
        assert code == 0 and "OK: loads with hear_gram.gram_t_patch.load_model" in out, (name, out)
        assert expect[name] in out and "variant: gram_t_patch (16x8 patches, 2 channel(s), dim 96" in out, name
    missing = dict(sd)
    del missing["encoder.layers.encoder_layer_1.ln_2.bias"]
    fail = {
        "missing": (_write(tmp_path / "m", {"gramt." + k: v for k, v in missing.items()}),
                    "mismatch: missing keys (1): gramt.encoder.layers.encoder_layer_1.ln_2.bias"),
        "shape": (_write(tmp_path / "s", dict(sd, **{"spec_pred.0.bias": torch.zeros(3)})),
                  "mismatch: shape mismatch: spec_pred.0.bias: checkpoint (3,) vs model (256,)"),
        "unexpected": (_write(tmp_path / "u", dict(sd, **{"encoder.extra": torch.zeros(3)})),
                       "mismatch: unexpected keys (1): encoder.extra"),
        "not gram": (_write(tmp_path / "n", {"foo.weight": torch.zeros(2)}), "FAIL: not a GRAM checkpoint"),
        "two prefixes": (_write(tmp_path / "t", {**{"a." + k: v for k, v in sd.items()}, "b.x": torch.zeros(1)}),
                         "FAIL: keys outside the wrapper prefix 'a.' (1): b.x"),
        "ambisonics": (_write(tmp_path / "amb", sd, dict(HF_CONFIG, model_type="gramt-ambisonics")),
                       "FAIL: " + str(tmp_path / "amb" / "config.json") + ": model_type 'gramt-ambisonics'"),
        "no file": (str(tmp_path / "nothing.safetensors"), "is neither a file, a folder, nor a Hub repo id"),
    }
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    fail["corrupt"] = (str(corrupt), "corrupt or unreadable safetensors file")
    for name, (path, msg) in fail.items():
        code, out = _check(path, capsys)
        assert code == 1 and msg in out, (name, out)


def test_loaded_model_does_not_depend_on_its_file(tiny, tmp_path):
    """The tensors are read into memory the model owns (no memory map): truncating the file in place
    afterwards must not crash (SIGBUS) or change the model."""
    import subprocess
    import sys

    from conftest import REPO

    path = _write(tmp_path / "w", tiny[1])
    code = ("import torch, hear_gram.gram_t_patch as g\n"
            f"rt = g.load_model({path!r})\n"
            "before = rt.get_scene_embeddings(torch.zeros(1, 2, 32000) + 0.1)\n"
            f"open({path!r} + '/model.safetensors', 'wb').close()\n"
            "assert torch.equal(rt.get_scene_embeddings(torch.zeros(1, 2, 32000) + 0.1), before)\n"
            "print('ok')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       env={**__import__("os").environ, "PYTHONPATH": REPO})
    assert r.returncode == 0 and r.stdout.split() == ["ok"], (r.returncode, r.stderr[-2000:])
