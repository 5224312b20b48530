import errno
import math
import os

import numpy as np
import pytest
import soundfile as sf
import torch

from hear_gram import cli
from hear_gram.audio import read_audio, resample
from hear_gram.checkpoint import save_model
from hear_gram.model import GramEncoder
from hear_gram.runtime import load_runtime

from conftest import tiny_config


@pytest.mark.parametrize("orig", [16000, 22050, 44100, 48000])
def test_resample_keeps_a_sine(orig):
    x = torch.sin(2 * math.pi * 997 * torch.arange(orig) / orig).double()
    y = resample(x, orig, 32000)
    ref = torch.sin(2 * math.pi * 997 * torch.arange(y.shape[-1]) / 32000).double()
    assert y.shape[-1] == 32000
    assert (y - ref)[300:-300].abs().max() < 2e-3


@pytest.mark.parametrize("orig", [22050, 44100, 11025])
def test_resample_skips_only_zero_taps(orig):
    """Many-phase ratios compute only the taps inside the window: the result is the dense polyphase conv1d's."""
    from hear_gram.audio import _resample_kernel

    x = torch.randn(2, 3 * orig + 17, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    up, down, width, kernel = _resample_kernel(orig, 32000)
    F = torch.nn.functional
    dense = F.conv1d(F.pad(x[:, None], (width, width + down)), kernel, stride=down).transpose(1, 2).reshape(2, -1)
    dense = dense[:, : math.ceil(up * x.shape[1] / down)]
    torch.testing.assert_close(resample(x, orig, 32000), dense, rtol=0, atol=1e-12)


def test_resample_removes_what_the_new_rate_cannot_hold():
    x = torch.sin(2 * math.pi * 20000 * torch.arange(48000) / 48000)  # above 16 kHz Nyquist of 32 kHz
    assert resample(x, 48000, 32000)[300:-300].abs().max() < 0.02


@pytest.fixture
def weights(tmp_path):
    torch.manual_seed(0)
    w, _ = save_model(GramEncoder(tiny_config()), str(tmp_path / "w"))
    return str(tmp_path / "w")


def test_embed_files_and_folders_skipping_bad_ones(tmp_path, weights, capsys):
    d = tmp_path / "audio"
    (d / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    sf.write(str(d / "mono16k.wav"), rng.uniform(-0.5, 0.5, 16000 * 3).astype(np.float32), 16000)
    stereo = rng.uniform(-0.5, 0.5, (44100 * 2, 2)).astype(np.float32)
    sf.write(str(d / "sub" / "stereo44k.flac"), stereo, 44100)
    (d / "broken.wav").write_bytes(b"RIFF\x00\x00not really a wav")
    sf.write(str(d / "quad.wav"), rng.uniform(-0.5, 0.5, (32000, 4)).astype(np.float32), 32000)
    out = tmp_path / "emb.npz"
    with pytest.raises(SystemExit) as e:
        cli.main(["embed", str(d), "--weights", weights, "--out", str(out), "--kind", "both"])
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert "broken.wav: cannot read audio" in err and "quad.wav: 4 channels" in err
    z = np.load(out)
    files = [f.split("/")[-1] for f in z["files"]]
    assert files == ["mono16k.wav", "stereo44k.flac"]
    assert z["scene"].shape == (2, 64 * 8) and z["timestamp_embeddings_0"].shape[0] == z["timestamps_0"].shape[0]
    rt = load_runtime("gram_t_patch", weights)
    direct = rt.get_scene_embeddings(read_audio(str(d / "sub" / "stereo44k.flac"))[None])
    assert np.allclose(z["scene"][1], direct[0].numpy(), atol=1e-5)


def test_convert_lightning_checkpoint(tmp_path, weights):
    from training.pretrain_model import PretrainModel

    m = PretrainModel(tiny_config())  # a Lightning checkpoint holds the whole model, official names
    torch.save({"state_dict": m.official_state_dict(), "global_step": 5}, str(tmp_path / "step=5.ckpt"))
    cli.main(["convert", str(tmp_path / "step=5.ckpt"), str(tmp_path / "model.safetensors")])
    # the converted file carries no config: give the architecture through a folder with config.json
    import shutil

    shutil.copy(str(tmp_path / "w" / "config.json"), str(tmp_path / "config.json"))
    rt = load_runtime("gram_t_patch", str(tmp_path / "model.safetensors"))
    assert torch.equal(rt.model.cls_token, m.encoder.cls_token)


def test_smoke_command(capsys):
    cli.main(["smoke", "--variant", "gram_t_time"])
    assert "timestamp embeddings (1, 200, 768) every 20 ms" in capsys.readouterr().out


# -- outputs and bad input (issue 11, findings 3 and 14) ----------------------------------------------------

def _wav(path, seconds=1.0, sr=32000):
    sf.write(str(path), np.random.default_rng(0).uniform(-0.5, 0.5, (int(seconds * sr), 2)).astype(np.float32), sr)
    return str(path)


@pytest.fixture
def no_model_load(monkeypatch):
    """Fails the test if the model is loaded: the checks under test must come before any work."""
    def boom(*a, **k):
        raise AssertionError("the model was loaded before the output was checked")
    monkeypatch.setattr("hear_gram.runtime.load_runtime", boom)


def test_embed_never_replaces_an_existing_output_without_overwrite(tmp_path, weights, no_model_load, capsys):
    wav, out = _wav(tmp_path / "a.wav"), tmp_path / "emb.npz"
    out.write_bytes(b"precious")
    with pytest.raises(SystemExit, match=r"--out .*emb.npz exists; pass --overwrite to replace it"):
        cli.main(["embed", wav, "--weights", weights, "--out", str(out)])
    assert out.read_bytes() == b"precious"


def test_embed_overwrite_replaces_the_output(tmp_path, weights):
    wav, out = _wav(tmp_path / "a.wav"), tmp_path / "emb.npz"
    out.write_bytes(b"old")
    cli.main(["embed", wav, "--weights", weights, "--out", str(out), "--overwrite"])
    assert np.load(out)["scene"].shape == (1, 64 * 8)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav", "emb.npz", "w"]  # no temporary file left


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_embed_never_writes_over_an_input(tmp_path, weights, no_model_load, overwrite):
    wav = _wav(tmp_path / "x.wav")
    before = open(wav, "rb").read()
    with pytest.raises(SystemExit, match=r"--out .*x.wav is also an input"):
        cli.main(["embed", str(tmp_path), "--weights", weights, "--out", wav] + overwrite)
    assert open(wav, "rb").read() == before


@pytest.mark.parametrize("case, match", [
    ("missing_folder", r"folder .*nowhere does not exist"),
    ("directory", r"is an existing directory"),
])
def test_embed_checks_the_output_path_before_any_work(tmp_path, weights, no_model_load, case, match):
    wav = _wav(tmp_path / "a.wav")
    out = {"missing_folder": tmp_path / "nowhere" / "emb.npz", "directory": tmp_path / "w"}[case]
    with pytest.raises(SystemExit, match=match):
        cli.main(["embed", wav, "--weights", weights, "--out", str(out)])
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_embed_refuses_an_unwritable_output_folder(tmp_path, weights, no_model_load):
    wav = _wav(tmp_path / "a.wav")
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    with pytest.raises(SystemExit, match=r"folder .*ro is not writable"):
        cli.main(["embed", wav, "--weights", weights, "--out", str(ro / "emb.npz")])


def test_embed_full_disk_is_a_clear_error_and_leaves_no_temporary_file(tmp_path, weights, monkeypatch):
    wav, out = _wav(tmp_path / "a.wav"), tmp_path / "emb.npz"
    out.write_bytes(b"old")

    def full_disk(file, **arrays):
        open(file, "wb").write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", full_disk)
    with pytest.raises(SystemExit, match=r"cannot write .*emb.npz: no space left on device \(nothing was replaced"):
        cli.main(["embed", wav, "--weights", weights, "--out", str(out), "--overwrite"])
    assert out.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav", "emb.npz", "w"]


def test_embed_bad_command_lines_are_named_errors(tmp_path, weights, no_model_load):
    wav = _wav(tmp_path / "a.wav")
    out = str(tmp_path / "e.npz")
    with pytest.raises(SystemExit, match=r"input not found: .*missing.wav"):
        cli.main(["embed", str(tmp_path / "missing.wav"), "--out", out])
    with pytest.raises(SystemExit, match=r"--model 'gram_x' is not a variant; known: gram_m_patch"):
        cli.main(["embed", wav, "--model", "gram_x", "--out", out])
    with pytest.raises(SystemExit, match=r"--device 'gpu7' is not a device name"):
        cli.main(["embed", wav, "--device", "gpu7", "--out", out])
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match=r"--device cuda: CUDA is not available on this machine"):
            cli.main(["embed", wav, "--device", "cuda", "--out", out])
    assert not os.path.exists(out)


def test_embed_reports_a_truncated_wav(tmp_path, weights, capsys):
    good = _wav(tmp_path / "good.wav")
    data = open(good, "rb").read()
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 2])  # header still declares the full length
    with pytest.raises(ValueError, match=r"truncated wav: its header declares 128000 data bytes, the file holds 63978"):
        read_audio(str(tmp_path / "cut.wav"))
    with pytest.raises(SystemExit):
        cli.main(["embed", str(tmp_path / "cut.wav"), good, "--weights", weights, "--out", str(tmp_path / "e.npz")])
    assert "cut.wav: truncated wav" in capsys.readouterr().err
    assert [f.split("/")[-1] for f in np.load(tmp_path / "e.npz")["files"]] == ["good.wav"]


def test_convert_refuses_to_replace_its_output_or_input(tmp_path):
    from hear_gram.checkpoint import official_state_dict

    m = GramEncoder(tiny_config())
    ckpt = tmp_path / "m.ckpt"
    torch.save({"state_dict": official_state_dict(m)}, str(ckpt))
    (tmp_path / "out.safetensors").write_bytes(b"keep")
    with pytest.raises(SystemExit, match="exists; pass --overwrite"):
        cli.main(["convert", str(ckpt), str(tmp_path / "out.safetensors")])
    assert (tmp_path / "out.safetensors").read_bytes() == b"keep"
    with pytest.raises(SystemExit, match="is also an input"):
        cli.main(["convert", str(ckpt), str(ckpt), "--overwrite"])


@pytest.mark.parametrize("kind, strategy", [("both", "raw"), ("timestamp", "mean")])
def test_embed_stream_equals_embed_and_never_reads_a_file_whole(tmp_path, weights, capsys, monkeypatch, kind,
                                                                strategy):
    """`--stream` reads blocks (resampled on the fly) and writes the same .npz as the whole-file path."""
    d = tmp_path / "audio"
    d.mkdir()
    rng = np.random.default_rng(1)
    sf.write(str(d / "a44k.flac"), rng.uniform(-0.5, 0.5, (int(44100 * 5.3), 2)).astype(np.float32), 44100)
    sf.write(str(d / "b32k.wav"), rng.uniform(-0.5, 0.5, int(32000 * 2.7)).astype(np.float32), 32000)
    (d / "broken.wav").write_bytes(b"RIFF\x00\x00not really a wav")
    common = ["embed", str(d), "--weights", weights, "--kind", kind, "--strategy", strategy]
    with pytest.raises(SystemExit):
        cli.main(common + ["--out", str(tmp_path / "whole.npz")])
    monkeypatch.setattr(sf, "read", lambda *a, **k: pytest.fail("--stream read a whole file"))
    with pytest.raises(SystemExit):
        cli.main(common + ["--out", str(tmp_path / "stream.npz"), "--stream", "--block-seconds", "0.7"])
    assert "broken.wav: cannot read audio" in capsys.readouterr().err
    whole, stream = np.load(tmp_path / "whole.npz"), np.load(tmp_path / "stream.npz")
    assert sorted(whole.files) == sorted(stream.files) and list(whole["files"]) == list(stream["files"])
    for k in whole.files:
        if k != "files":
            assert whole[k].shape == stream[k].shape and np.allclose(whole[k], stream[k], rtol=1e-5, atol=1e-6), k
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".hear-gram-")]  # temporary parts removed
    cli.main(["embed", str(d / "b32k.wav")] + common[2:] + ["--out", str(tmp_path / "h.npz"), "--stream",
                                                     "--out-dtype", "float16"])
    h = np.load(tmp_path / "h.npz")
    assert h["timestamp_embeddings_0"].dtype == np.float16
    assert np.allclose(h["timestamp_embeddings_0"], whole["timestamp_embeddings_1"], rtol=1e-2, atol=1e-2)
