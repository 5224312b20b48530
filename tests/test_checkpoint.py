import json
import os

import pytest
import torch
from safetensors.torch import save_file

import hear_gram.gram_t_patch as gtp
import hear_gram.gram_t_time as gtt
from hear_gram.checkpoint import (RENAMES, CheckpointError, from_official, head_shapes, infer_config, load_encoder,
                                  parse_keys, read_safetensors, save_model, to_official)
from hear_gram.model import VARIANTS, GramEncoder

from conftest import OFFICIAL, official_state_dict, tiny_config


def _layouts(sd):
    bare = {k[len("model."):]: v for k, v in sd.items() if k.startswith("model.")}
    hub = {"encoder." + k: v for k, v in sd.items()}
    no_mel = {k: v for k, v in bare.items() if not k.startswith("melspec.")}
    return {"runtime": sd, "bare": bare, "hub": hub, "bare_without_melspec": no_mel}


def test_every_official_layout_loads_to_the_same_weights():
    sd = official_state_dict("gramt_frame")
    ref = None
    for name, layout in _layouts(sd).items():
        m = load_encoder(VARIANTS["gram_t_patch"].config, layout)
        w = m.state_dict()["backbone.layers.11.mlp.3.weight"]
        assert torch.equal(w, sd["model.encoder.layers.encoder_layer_11.mlp.3.weight"]), name
        if ref is not None:
            assert all(torch.equal(a, b) for a, b in zip(ref.values(), m.state_dict().values()))
        ref = m.state_dict()
    assert parse_keys(_layouts(sd)["hub"]).prefix == "encoder.model."


@pytest.mark.parametrize("v", sorted(OFFICIAL))
def test_rename_table_and_dropped_keys(v):
    """Official keys -> encoder + head: the head is exactly the pretraining-only table, the encoder
    exactly GramEncoder's keys, and renaming back gives the official names."""
    sd = official_state_dict(v)
    cfg = VARIANTS[OFFICIAL[v]].config
    enc, head, layout = from_official(sd)
    assert layout.prefix == "model." and layout.backbone == cfg.encoder
    assert {k: tuple(t.shape) for k, t in head.items()} == head_shapes(cfg)
    with torch.device("meta"):
        own = GramEncoder(cfg).state_dict()
    assert {k: tuple(t.shape) for k, t in enc.items()} == {k: tuple(t.shape) for k, t in own.items()}
    inner = {k[len("model."):] for k in sd if k.startswith("model.")}
    assert set(to_official({**enc, **head}, cfg.encoder)) == inner
    assert len(RENAMES[cfg.encoder]) >= 3


def test_inference_loads_only_the_encoder(official_files):
    rt = gtp.load_model(official_files("gramt_frame"))
    n = sum(p.numel() for p in rt.parameters())
    assert n == 85_254_144  # 111.0 M with the decoder (gram_spec §3.1)
    assert not any("decoder" in k or k == "mask_token" for k in rt.model.state_dict())


def test_loading_reads_only_the_encoders_tensors(tmp_path, monkeypatch):
    """A file with the whole pretraining model: the head is checked from the header, its tensors never read."""
    from hear_gram import checkpoint
    from training.pretrain_model import PretrainModel

    torch.manual_seed(0)
    model = PretrainModel(tiny_config())
    save_model(model, str(tmp_path))
    read, real = [], checkpoint.safe_open

    class Recording:  # safe_open, noting every tensor read
        def __init__(self, *args, **kwargs):
            self.f = real(*args, **kwargs)

        def __enter__(self):
            self.f.__enter__()
            return self

        def __exit__(self, *exc):
            return self.f.__exit__(*exc)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def get_tensor(self, key):
            read.append(key)
            return self.f.get_tensor(key)

    monkeypatch.setattr(checkpoint, "safe_open", Recording)
    rt = gtp.load_model(str(tmp_path))
    assert sorted(read) == sorted(to_official(model.encoder.state_dict(), "transformer"))
    assert not set(read) & set(to_official(dict.fromkeys(head_shapes(model.config)), "transformer"))
    for k, v in model.encoder.state_dict().items():
        assert torch.equal(rt.model.state_dict()[k], v), k


def test_missing_unexpected_and_wrong_shape_keys_are_named():
    sd = {k[len("model."):]: v for k, v in official_state_dict("gramt_time").items() if k.startswith("model.")}
    cfg = VARIANTS["gram_t_time"].config
    broken = dict(sd)
    del broken["encoder.layers.encoder_layer_3.ln_2.bias"]
    with pytest.raises(CheckpointError, match=r"missing keys \(1\): encoder.layers.encoder_layer_3.ln_2.bias"):
        load_encoder(cfg, broken)
    extra = dict(sd, **{"encoder.layers.encoder_layer_12.ln_1.weight": torch.ones(768)})
    with pytest.raises(CheckpointError, match="unexpected keys.*encoder_layer_12"):
        load_encoder(cfg, extra)
    wrong = dict(sd, **{"spec_pred.0.bias": torch.zeros(3)})
    with pytest.raises(CheckpointError, match=r"spec_pred.0.bias: checkpoint \(3,\)"):
        load_encoder(cfg, wrong)
    with pytest.raises(CheckpointError, match="not a GRAM checkpoint"):
        load_encoder(cfg, {"foo.weight": torch.zeros(1)})


def test_mel_buffers_in_a_checkpoint_must_match_the_recipe():
    sd = {k[len("model."):]: v for k, v in official_state_dict("gramt_time").items() if k.startswith("model.")}
    sd["melspec.mel_scale.fb"] = sd["melspec.mel_scale.fb"] * 2
    with pytest.raises(CheckpointError, match="melspec.mel_scale.fb differs"):
        load_encoder(VARIANTS["gram_t_time"].config, sd)


def test_infer_config_from_official_shapes():
    for v, name in (("gramt_frame", "gram_t_patch"), ("gramt_time", "gram_t_time")):
        assert infer_config(official_state_dict(v)) == VARIANTS[name].config


def test_own_export_round_trip(tmp_path):
    torch.manual_seed(1)
    m = GramEncoder(tiny_config())
    w, c = save_model(m, str(tmp_path / "export"))
    cfg = json.load(open(c))
    assert cfg["format"] == "hear_gram" and cfg["config"]["dim"] == 64
    rt = gtp.load_model(str(tmp_path / "export"))
    for k, v in m.state_dict().items():
        assert torch.equal(rt.model.state_dict()[k], v), k
    sd, meta = read_safetensors(w)
    assert set(sd) == set(to_official(m.state_dict(), "transformer")) and meta["format"] == "hear_gram"
    assert "encoder.layers.encoder_layer_0.ln_1.weight" in sd  # exports carry the official names


def test_bad_files_give_clear_errors(tmp_path, official_files):
    with pytest.raises(FileNotFoundError, match="not found"):
        gtp.load_model(str(tmp_path / "nope.safetensors"))
    bad = tmp_path / "corrupt.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(CheckpointError, match="corrupt or unreadable"):
        gtp.load_model(str(bad))
    truncated = tmp_path / "truncated" / "model.safetensors"
    truncated.parent.mkdir()
    data = open(official_files("gramt_time"), "rb").read()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or unreadable"):
        gtt.load_model(str(truncated.parent))
    pickled = tmp_path / "model.ckpt"
    torch.save({"state_dict": {}}, str(pickled))
    with pytest.raises(CheckpointError, match="only .safetensors"):
        gtp.load_model(str(pickled))


def test_wrong_variant_is_refused(official_files):
    with pytest.raises(CheckpointError, match="128x2 patches, not gram_t_patch; load it with hear_gram.gram_t_time"):
        gtp.load_model(official_files("gramt_time"))


def test_unknown_option_is_an_error(official_files):
    with pytest.raises(TypeError, match="unknown option"):
        gtt.load_model(official_files("gramt_time"), strategi="raw")


def test_saved_weights_get_the_same_file_mode_as_the_config(tmp_path):
    """Issue 11 finding 15: safetensors creates its file 0600; an export is shared, like its config.json."""
    old = os.umask(0o022)
    try:
        w, c = save_model(GramEncoder(tiny_config()), str(tmp_path / "export"))
    finally:
        os.umask(old)
    assert oct(os.stat(w).st_mode & 0o777) == oct(os.stat(c).st_mode & 0o777) == "0o644"
    assert sorted(os.listdir(tmp_path / "export")) == ["config.json", "model.safetensors"]  # no temporary files


# -- configs and weights that must not load silently (issue 11, findings 4, 9, 10) ---------------------------------

def _export(tmp_path, **kw):
    torch.manual_seed(0)
    model = GramEncoder(tiny_config(**kw)).eval()
    save_model(model, str(tmp_path / "w"))
    return tmp_path / "w", model


def _edit_config(folder, **fields):
    d = json.loads((folder / "config.json").read_text())
    d["config"].update(fields)
    (folder / "config.json").write_text(json.dumps(d))


def test_a_config_json_never_overrides_the_weights_own_config(tmp_path):
    from hear_gram.runtime import load_runtime

    folder, _ = _export(tmp_path, num_heads=8)
    _edit_config(folder, num_heads=4)
    for spec in (folder, folder / "model.safetensors"):
        with pytest.raises(CheckpointError, match=r"config\.json says num_heads=4 but .*model\.safetensors embeds "
                                                  r"num_heads=8: fix or remove config\.json"):
            load_runtime("gram_t_patch", str(spec))
    _edit_config(folder, num_heads=8)  # agreeing files load
    assert load_runtime("gram_t_patch", str(folder)).config.num_heads == 8


@pytest.mark.parametrize("text, match", [
    ("{not json", r"config\.json: malformed JSON \(Expecting property name .* at line 1 column 2\)"),
    ('["a"]', r"config\.json: expected a JSON object, got list"),
    ('{"format": "hear_gram"}', r"config\.json: no 'config' entry"),
    ('{"format": "hear_gram", "config": 3}', r"config\.json: the config is a int"),
    ('{"format": "hear_gram", "config": {"dim": "64"}}', r"config\.json: GramConfig dim='64': must be an integer"),
    ('{"format": "hear_gram", "config": {"depth": 0}}', r"config\.json: GramConfig depth=0: must be >= 1"),
    ('{"format": "hear_gram", "config": {"layers": 2}}', r"config\.json: unknown GramConfig fields \['layers'\]"),
])
def test_bad_config_json_is_a_named_error(tmp_path, text, match):
    from hear_gram.runtime import load_runtime

    folder, model = _export(tmp_path)
    sd = read_safetensors(str(folder / "model.safetensors"))[0]
    save_file(sd, str(folder / "model.safetensors"))  # no embedded config: config.json is the only one
    (folder / "config.json").write_text(text)
    with pytest.raises(CheckpointError, match=match):
        load_runtime("gram_t_patch", str(folder))


def test_integer_weights_are_refused(tmp_path, capsys):
    from hear_gram.runtime import load_runtime

    folder, _ = _export(tmp_path)
    sd, meta = read_safetensors(str(folder / "model.safetensors"))
    sd["patch_embed.proj.weight"] = sd["patch_embed.proj.weight"].to(torch.int32)
    save_file(sd, str(folder / "model.safetensors"), metadata=meta)
    with pytest.raises(CheckpointError, match=r"weights must be floating point .*1 tensor\(s\) are not: "
                                              r"patch_embed\.proj\.weight \(I32\)"):
        load_runtime("gram_t_patch", str(folder))
    from hear_gram import cli

    with pytest.raises(SystemExit) as e:  # `hear-gram check` says the same
        cli.main(["check", str(folder)])
    assert e.value.code != 0 and "FAIL: " in (out := capsys.readouterr().out) and "weights must be floating point" in out


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_weights_load_as_float32(tmp_path, dtype):
    """The file's tensors (front-end tables included) in fp16/bf16: they load, upcast to float32, and the
    front end keeps the float32 recipe instead of the rounded copies."""
    from hear_gram.runtime import GramRuntime, load_runtime

    folder, model = _export(tmp_path)
    sd, meta = read_safetensors(str(folder / "model.safetensors"))
    assert "melspec.mel_scale.fb" in sd
    save_file({k: v.to(dtype) for k, v in sd.items()}, str(folder / "model.safetensors"), metadata=meta)
    rt = load_runtime("gram_t_patch", str(folder))
    assert all(p.dtype == torch.float32 for p in rt.model.parameters())
    assert torch.equal(rt.model.melspec.mel_scale.fb, model.melspec.mel_scale.fb)
    rounded = GramEncoder(model.config)
    rounded.load_state_dict({k: v.to(dtype).float() if not k.startswith("melspec.") else v
                             for k, v in model.state_dict().items()})
    audio = torch.randn(1, 2, 32000, generator=torch.Generator().manual_seed(0)) * 0.1
    ref = GramRuntime(rounded.eval(), "gram_t_patch").get_scene_embeddings(audio)
    assert torch.equal(rt.get_scene_embeddings(audio), ref)


def test_weights_without_a_config_whose_head_count_is_unknown_are_refused(tmp_path):
    from hear_gram.runtime import load_runtime

    folder, _ = _export(tmp_path)  # 64 wide: the variant's 12 heads do not divide it
    sd = read_safetensors(str(folder / "model.safetensors"))[0]
    os.remove(folder / "config.json")
    save_file(sd, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: the weights hold a 64-wide transformer encoder "
                                              r"and no config: its attention head count cannot be read from the "
                                              r"tensors, and the variant's 12 heads do not divide 64"):
        load_runtime("gram_t_patch", str(folder))
