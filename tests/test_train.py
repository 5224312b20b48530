"""training/train.py, data.py, export.py: loss falls, exact resume, NaN stop, 2-process gloo DDP, export round trip.

All runs use the `tiny` preset (a 64-wide GRAM-T on 2 clips x 4 crops of the smoke scene corpus): seconds each.
"""

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from hear_gram.model import GramConfig
from training import export as export_mod
from training.data import CropStream
from training.scenes import SceneConfig
from training.train import CKPT_NAME, NonFiniteLoss, get_lr, main, read_checkpoint, resolve_config, train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ci(out_dir, *args):
    return resolve_config(["--preset=tiny", f"--out_dir={out_dir}", *args])


@pytest.fixture(scope="module")
def ci_run(tmp_path_factory):
    """One uninterrupted ci run of 16 steps (checkpoint every 8)."""
    out = tmp_path_factory.mktemp("ci_run")
    result = train(ci(out))
    return out, result["losses"]


def test_smoke_loss_falls(ci_run):
    _, losses = ci_run
    assert len(losses) == 16 and all(math.isfinite(x) for x in losses)
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    assert last < 0.9 * first, losses


def test_resume_reproduces_uninterrupted_run(ci_run, tmp_path):
    _, full = ci_run
    first = train(ci(tmp_path, "--stop_at_step=8"))["losses"]
    assert read_checkpoint(str(tmp_path / CKPT_NAME))["step"] == 8
    # the CLI form: no preset, the config comes from the checkpoint; stop_at_step is not inherited
    cfg = resolve_config([f"--out_dir={tmp_path}", "--resume"])
    assert cfg["resume"] is True and cfg["stop_at_step"] == -1 and cfg["preset"] == "tiny"
    second = train(cfg)["losses"]
    assert len(first) == 8 and len(second) == 8
    torch.testing.assert_close(torch.tensor(first + second), torch.tensor(full), rtol=0, atol=1e-6)


def _resumes_exactly(tmp_path, *extra) -> list:
    """4 steps straight vs 2 steps, stop, --resume for 2 more: the same losses; -> the straight run's."""
    args = ["--max_steps=4", "--ckpt_every=2", *extra]
    full = train(ci(tmp_path / "full", *args))["losses"]
    first = train(ci(tmp_path / "half", *args, "--stop_at_step=2"))["losses"]
    second = train(resolve_config([f"--out_dir={tmp_path / 'half'}", "--resume"]))["losses"]
    assert len(full) == 4 and first + second == full
    return full


def test_scene_workers_resume_exactly(tmp_path):
    """Background scene synthesis (data_workers=2): deterministic, and resumable mid-stream."""
    _resumes_exactly(tmp_path, "--data_workers=2")


def test_device_scene_path_resumes_exactly(tmp_path):
    """scene_backend=torch (scene material on the training device; here CPU tensors, the code a GPU runs)."""
    full = _resumes_exactly(tmp_path, "--scene_backend=torch")
    cpu = train(ci(tmp_path / "numpy", "--max_steps=4", "--stop_at_step=2", "--scene_backend=auto"))["losses"]
    assert cpu != full[:2]  # a different scene stream: the backend really changed (auto is numpy on a CPU)
    # a checkpoint whose scenes came from the other backend (auto on a GPU) is not resumed with this one
    path = str(tmp_path / "numpy" / CKPT_NAME)
    ckpt = torch.load(path, weights_only=False)
    assert ckpt["rng"][0]["data"]["backend"] == "numpy"
    ckpt["rng"][0]["data"]["backend"] = "torch"
    torch.save(ckpt, path)
    with pytest.raises(ValueError, match="scene backend and this run's is 'numpy'.*--scene_backend=torch"):
        train(resolve_config([f"--out_dir={tmp_path / 'numpy'}", "--resume"]))


def test_resume_refuses_a_different_run(ci_run, tmp_path):
    out, _ = ci_run
    with pytest.raises(ValueError, match="lr="):
        train(ci(out, "--resume", "--lr=0.1"))


def test_nan_stops_and_keeps_last_good_checkpoint(tmp_path, capsys):
    cfg = ci(tmp_path, "--ckpt_every=4", "--debug_nan_step=6")
    with pytest.raises(NonFiniteLoss, match=r"at step 6.*last good checkpoint.*step 4"):
        train(cfg)
    ckpt = read_checkpoint(str(tmp_path / CKPT_NAME))
    assert ckpt["step"] == 4
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())
    # the script form exits with status 2 and a clear message; a folder holding a run is left alone
    assert main(["--preset=tiny", f"--out_dir={tmp_path}", "--ckpt_every=4", "--debug_nan_step=0"]) == 2
    assert "holds a run (ckpt.pt, log.jsonl, config.json" in capsys.readouterr().err
    assert read_checkpoint(str(tmp_path / CKPT_NAME))["step"] == 4
    assert main(["--preset=tiny", f"--out_dir={tmp_path / 'new'}", "--ckpt_every=4", "--debug_nan_step=0"]) == 2
    err = capsys.readouterr().err
    assert "non-finite loss" in err and "(none written yet)" in err


def test_ddp_two_gloo_processes(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=REPO)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "training.train", "--preset=tiny", f"--out_dir={tmp_path}", "--max_steps=4",
           "--ckpt_every=2", "--backend=gloo", "--device=cpu"]
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    ckpt = read_checkpoint(str(tmp_path / CKPT_NAME))
    assert ckpt["step"] == 4 and ckpt["world_size"] == 2 and len(ckpt["rng"]) == 2
    # per-rank data streams: different positions/seeds on the two ranks
    a, b = (s["data"]["crops"] for s in ckpt["rng"])
    assert not torch.equal(a, b)
    assert not any(k.startswith("module.") for k in ckpt["model"])
    log = [json.loads(x) for x in open(tmp_path / "log.jsonl")]
    assert log[-1]["step"] == 4 and math.isfinite(log[-1]["loss"])
    # binaural: the interaural part of the loss (rank 0's crops) is logged; it is a part, so below the loss
    assert all(0 < x["loss_interaural"] < x["loss"] for x in log), log


def test_export_round_trip(ci_run, tmp_path):
    run, _ = ci_run
    info = export_mod.export(str(run), str(tmp_path / "export"))
    assert info["max_abs_err"] == 0.0, info  # the same float32 computation on both sides
    assert sorted(os.listdir(tmp_path / "export")) == ["README.md", "config.json", "model.safetensors"]
    cfg = json.load(open(tmp_path / "export" / "config.json"))
    assert cfg["format"] == "hear_gram" and cfg["config"]["log_eps"] == 1e-5 and cfg["config"]["dim"] == 64
    assert cfg["training"]["step"] == 16 and cfg["variant"] == "gram_t_patch"
    import hear_gram.gram_t_patch as gtp

    rt = gtp.load_model(str(tmp_path / "export"))
    assert rt.model.config.log_eps == 1e-5  # inference uses the eps the weights were trained with
    trained, _ = export_mod.load_training_model(str(run))
    for k, v in trained.encoder.state_dict().items():
        assert torch.equal(rt.model.state_dict()[k], v), k


def test_push_to_hub_uploads_the_export_folder(ci_run, tmp_path, monkeypatch):
    from huggingface_hub import HfApi

    run, _ = ci_run
    folder = str(tmp_path / "export")
    export_mod.export(str(run), folder, verify=False)
    calls = {}
    monkeypatch.setenv("HF_TOKEN", "hf_dummy")

    def fake_create(self, repo_id, **kw):
        calls["create"] = (repo_id, kw.get("private"), self.token)

    def fake_upload(self, repo_id, folder_path, **kw):  # no network: record what would be sent
        calls["upload"] = (repo_id, sorted(os.listdir(folder_path)), kw.get("repo_type"))
        return "https://huggingface.co/me/gram/commit/0"

    monkeypatch.setattr(HfApi, "create_repo", fake_create)
    monkeypatch.setattr(HfApi, "upload_folder", fake_upload)
    assert export_mod.main([str(run), folder, "--push-to-hub", "me/gram", "--private", "--no-verify",
                            "--overwrite"]) == 0
    assert calls["create"] == ("me/gram", True, "hf_dummy")
    assert calls["upload"] == ("me/gram", ["README.md", "config.json", "model.safetensors"], "model")
    with pytest.raises(FileNotFoundError, match="not an export folder"):
        export_mod.push_to_hub(str(tmp_path), "me/gram")


def test_gram_m_trains_and_exports(tmp_path):
    out = tmp_path / "run"
    result = train(ci(out, "--variant=gram_m_patch", "--max_steps=3", "--warmup_steps=1"))
    assert len(result["losses"]) == 3 and all(math.isfinite(x) for x in result["losses"])
    info = export_mod.export(str(out), str(tmp_path / "export"))
    assert info["variant"] == "gram_m_patch" and info["max_abs_err"] == 0.0


def test_tensorboard_and_reconstruction_png(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib (train extra) draws the reconstruction PNG")
    pytest.importorskip("tensorboard", reason="tensorboard (train extra) writes the event files")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(ci(tmp_path, "--max_steps=2", "--image_every=2", "--tensorboard"))
    assert (tmp_path / "images" / "step_0000002.png").stat().st_size > 1000
    ea = EventAccumulator(str(tmp_path / "tb"))
    ea.Reload()
    steps = [e.step for e in ea.Scalars("train/loss")]
    assert steps == [1, 2] and all(math.isfinite(e.value) for e in ea.Scalars("train/loss"))


def test_config_resolution_and_errors():
    cfg = resolve_config(["--preset", "smoke", "--model.dim=96", "--clips=3", "--lr=1", "--resume=False"])
    assert cfg["model"]["dim"] == 96 and cfg["model"]["log_eps"] == 1e-5 and cfg["model"]["depth"] == 2
    assert cfg["clips"] == 3 and cfg["lr"] == 1.0 and isinstance(cfg["lr"], float)
    assert cfg["scene_preset"] == "smoke" and cfg["crops_per_clip"] == 8 and cfg["betas"] == (0.9, 0.95)
    paper = resolve_config(["--preset=paper"])
    assert (paper["clips"], paper["crops_per_clip"], paper["max_steps"], paper["warmup_steps"]) == (32, 16, 500_000,
                                                                                                  10_000)
    assert resolve_config(["--preset=gram_m_time"])["variant"] == "gram_m_time"
    with pytest.raises(ValueError, match="unknown config key 'nope'"):
        resolve_config(["--nope=1"])
    with pytest.raises(ValueError, match="model fields"):
        resolve_config(["--model.nope=1"])
    with pytest.raises(TypeError, match="clips='four'"):
        resolve_config(["--clips=four"])
    with pytest.raises(TypeError, match="expected int"):
        resolve_config(["--clips=2.5"])
    with pytest.raises(ValueError, match="unknown preset"):
        resolve_config(["--preset=nope"])


def test_lr_schedule():
    assert get_lr(0, 1.0, 10, 110) == 0.0
    assert get_lr(5, 1.0, 10, 110) == 0.5
    assert get_lr(10, 1.0, 10, 110) == 1.0
    assert abs(get_lr(60, 1.0, 10, 110) - 0.5) < 1e-12
    assert abs(get_lr(110, 1.0, 10, 110, min_lr=0.1) - 0.1) < 1e-12


def test_crop_stream_shapes_masks_and_state():
    mcfg = GramConfig(dim=64, depth=1, num_heads=4, mlp_dim=64, decoder_dim=32, decoder_depth=1, log_eps=1e-5)
    from hear_gram.features import LogMel

    mel = LogMel(log_eps=1e-5)
    s = CropStream(SceneConfig.preset("smoke"), mcfg, clips=1, crops_per_clip=4, seed=3, rank=1)
    state = s.state_dict()
    x, mask = s.next_batch(mel)
    assert x.shape == (4, 2, 200, 128) and x.dtype == torch.float32 and torch.isfinite(x).all()
    assert mask.shape == (4, 200) and (mask.sum(1) == 160).all()
    s.load_state_dict(state)
    x2, mask2 = s.next_batch(mel)
    assert torch.equal(x, x2) and torch.equal(mask, mask2)
    with pytest.raises(ValueError, match="unknown SceneConfig fields"):
        SceneConfig.preset("smoke", {"nope": 1})


# -- out_dir, settings and checkpoints (issue 11, findings 2, 11, 12) -------------------------------------------

def _old_run(folder):
    """A folder holding a previous run (and a file of the user's)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {CKPT_NAME: b"old checkpoint", "log.jsonl": b'{"step": 99}\n', "config.json": b"{}", "notes.txt": b"mine"}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return files


def test_a_folder_holding_a_run_needs_resume_or_overwrite(tmp_path, capsys):
    files = _old_run(tmp_path)
    assert main(["--preset=tiny", f"--out_dir={tmp_path}", "--max_steps=2"]) == 2
    assert (f"--out_dir='{tmp_path}' holds a run (ckpt.pt, log.jsonl, config.json): pass --resume to continue it "
            f"or --overwrite to replace it") in capsys.readouterr().err
    # a run that fails validation touches nothing, --overwrite or not
    assert main(["--preset=tiny", f"--out_dir={tmp_path}", "--overwrite", "--clips=0"]) == 2
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == files


def test_overwrite_replaces_only_the_run_and_cleans_stale_checkpoint_temporaries(tmp_path, capsys):
    _old_run(tmp_path)
    (tmp_path / "ckpt.pt.tmp4242").write_bytes(b"killed write, older naming")
    (tmp_path / ".ckpt.pt.x1y2.tmp").write_bytes(b"killed write")
    assert main(["--preset=tiny", f"--out_dir={tmp_path}", "--overwrite", "--max_steps=2", "--log_every=1",
                 "--progress=False"]) == 0
    err = capsys.readouterr().err
    assert "removed the previous run's ckpt.pt, log.jsonl, config.json" in err
    assert "removed 2 temporary checkpoint file(s) left by a killed write: .ckpt.pt.x1y2.tmp, ckpt.pt.tmp4242" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt", "config.json", "log.jsonl", "notes.txt"]
    assert (tmp_path / "notes.txt").read_bytes() == b"mine"
    assert [json.loads(line)["step"] for line in (tmp_path / "log.jsonl").read_text().splitlines()] == [1, 2]
    assert read_checkpoint(str(tmp_path / CKPT_NAME))["step"] == 2


@pytest.mark.parametrize("override, message", [
    ("--ckpt_every=0", "--ckpt_every=0: must be an integer >= 1"),
    ("--clips=0", "--clips=0: must be an integer >= 1"),
    ("--clips=-1", "--clips=-1: must be an integer >= 1"),
    ("--max_steps=-5", "--max_steps=-5: must be an integer >= 1"),
    ("--betas=(0.9,)", "--betas=(0.9,): must be two numbers in [0, 1)"),
    ("--dtype=float16", "--dtype='float16': must be auto, float32 or bfloat16"),
    ("--model.dim=65", "GramConfig dim=65: is not divisible by num_heads=4"),
    ("--model.depth=0", "GramConfig depth=0: must be >= 1"),
    ("--model=3", "model=3: expected a dict of model fields"),
    ("--lr=-0.1", "--lr=-0.1: must be a finite number > 0"),
    ("--input_frames=100", "--input_frames=100: must be >= chunk_frames=200"),
    ("--device=gpu", "--device='gpu': is not a device name"),
])
def test_settings_are_checked_before_any_work(tmp_path, capsys, override, message):
    out = tmp_path / "run"
    assert main(["--preset=tiny", f"--out_dir={out}", override]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("content, message", [
    (b"", "is empty (0 bytes): not a training checkpoint"),
    ([1, 2, 3], "is not a hear_gram training checkpoint (holds a list)"),
    ({"step": 3}, "is not a hear_gram training checkpoint (holds a dict without format"),
    ("no optimizer", "is an incomplete training checkpoint: it lacks ['optimizer']"),
    ("truncated", "is not a readable training checkpoint"),
])
def test_bad_checkpoints_are_named_errors(tmp_path, capsys, content, message):
    from training.train import CKPT_FORMAT, CKPT_KEYS, RunError

    path = tmp_path / CKPT_NAME
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content in ("no optimizer", "truncated"):
        ckpt = {"format": CKPT_FORMAT, **{k: {} for k in CKPT_KEYS if k != "optimizer"}, "model": {"w": torch.ones(999)}}
        torch.save(ckpt, str(path))
        if content == "truncated":
            path.write_bytes(path.read_bytes()[:300])
    else:
        torch.save(content, str(path))
    with pytest.raises(RunError, match="^" + str(path).replace(".", r"\.") + " " + message.replace("(", r"\(").replace(
            ")", r"\)").replace("[", r"\[").replace("]", r"\]")):
        read_checkpoint(str(path))
    assert main([f"--out_dir={tmp_path}", "--resume"]) == 2
    assert message in capsys.readouterr().err


def test_full_disk_during_a_checkpoint_write_keeps_the_old_one_and_no_temporary(tmp_path, monkeypatch, capsys):
    """The temporary file is a link to /dev/full: the real writer meets a real ENOSPC."""
    import tempfile as tf

    from training.train import RunError, atomic_save

    real = tf.mkstemp

    def on_full_disk(prefix="", suffix="", dir=None):
        fd, path = real(prefix=prefix, suffix=suffix, dir=dir)
        if not prefix.startswith(".ckpt.pt."):  # config.json: a normal disk
            return fd, path
        os.close(fd)
        os.remove(path)
        os.symlink("/dev/full", path)
        return os.open(path, os.O_WRONLY), path

    path = tmp_path / CKPT_NAME
    path.write_bytes(b"the previous checkpoint")
    monkeypatch.setattr("hear_gram.outputs.tempfile.mkstemp", on_full_disk)
    with pytest.raises(RunError, match=r"cannot write .*ckpt.pt: no space left on device \(nothing was replaced; the "
                                       r"temporary file was removed\); the previous checkpoint is kept"):
        atomic_save({"model": torch.zeros(100_000)}, str(path))
    assert os.listdir(tmp_path) == [CKPT_NAME] and path.read_bytes() == b"the previous checkpoint"
    # through the script: exit status 2 and the message, no temporary file
    out = tmp_path / "run"
    assert main(["--preset=tiny", f"--out_dir={out}", "--max_steps=1", "--progress=False"]) == 2
    assert "no space left on device" in capsys.readouterr().err
    assert sorted(os.listdir(out)) == ["config.json", "log.jsonl"]


def test_export_never_replaces_an_export_or_the_run_without_overwrite(tmp_path, capsys):
    """Checked before the checkpoint is read: the run here is only a name."""
    run, out = tmp_path / "run", tmp_path / "export"
    run.mkdir()
    (run / "config.json").write_text("the run's own")
    out.mkdir()
    (out / "model.safetensors").write_bytes(b"an older export")
    assert export_mod.main([str(run), str(out)]) == 2
    assert f"export folder {out} holds an export (model.safetensors); pass --overwrite to replace it" in \
        capsys.readouterr().err
    assert export_mod.main([str(run), str(run), "--overwrite"]) == 2
    assert "is the run folder" in capsys.readouterr().err
    assert (run / "config.json").read_text() == "the run's own"
    assert (out / "model.safetensors").read_bytes() == b"an older export"
    assert export_mod.main([str(run), str(tmp_path / "new"), "--overwrite"]) == 2  # passes the checks, no ckpt.pt
    assert "no training checkpoint at" in capsys.readouterr().err


def test_model_card_says_what_the_weights_are():
    from hear_gram.model import VARIANTS
    from training.model_card import what_this_is

    demo = what_this_is(dict(dim=256, depth=2, num_heads=4, mlp_dim=512), {"step": 900, "global_batch_crops": 64},
                        "gram_t_patch")
    assert demo.startswith("**A small demonstration model, not GRAM.**"), demo
    assert "dim 256, depth 2" in demo and "dim 768, depth 12" in demo and "900 steps x 64 crops" in demo
    assert "use the official weights" in demo and "with its interaural part" in demo
    paper = what_this_is(VARIANTS["gram_t_patch"].config.to_dict(), {"step": 180_000, "global_batch_crops": 512},
                         "gram_t_patch")
    assert paper.startswith("**The gram_t_patch architecture**") and "demonstration" not in paper, paper
    assert "official weights" not in paper  # the paper's size and budget: nothing to warn about
