"""Scene synthesis: shapes, SNR, determinism, splits, user corpora with bad files (training/scenes.py)."""
import io
import tarfile

import numpy as np
import pytest
import soundfile as sf
import torch

from training.noise import make_noise
from training.scenes import SceneConfig, SceneSynth, fft_convolve
from tests.test_brir import _lag_ild

FS = 32000
TINY = SceneConfig(n_rooms=2, sets_per_room=3, n_speech=6, n_notes=6, n_events=6, duration_s=2.0,
                   cache_dir=None)


@pytest.fixture(scope="module")
def synth():
    return SceneSynth(TINY, seed=0)


def test_fft_convolve_matches_numpy():
    g = torch.Generator().manual_seed(0)
    x, h = torch.randn(3, 500, generator=g), torch.randn(3, 2, 70, generator=g)
    y = fft_convolve(x, h, 500)
    ref = np.stack([[np.convolve(x[b].numpy(), h[b, c].numpy())[:500] for c in range(2)] for b in range(3)])
    assert y.shape == (3, 2, 500) and np.allclose(y.numpy(), ref, atol=1e-4)


def test_fft_convolve_overlap_save_blocks():
    """Long inputs are convolved in overlap-save blocks: block seams must not show (cut tail and a longer
    n_out included)."""
    from training.mixing import block_size
    g = torch.Generator().manual_seed(1)
    x, h = torch.randn(2, 20000, generator=g), torch.randn(2, 2, 900, generator=g)
    assert block_size(20000, 900) < 20000  # several blocks
    for n_out in (20000, 20500):
        y = fft_convolve(x, h, n_out)
        ref = np.stack([[np.convolve(x[b].numpy(), h[b, c].numpy())[:n_out] for c in range(2)] for b in range(2)])
        assert y.shape == (2, 2, n_out) and np.allclose(y.numpy(), ref, atol=1e-3)


def test_sample_shapes_and_metadata(synth):
    audio, meta = synth.sample(3)
    assert audio.shape == (3, 2, TINY.n_samples) and audio.dtype == torch.float32
    assert torch.isfinite(audio).all() and audio.abs().max() <= TINY.peak + 1e-6
    for m in meta:
        assert TINY.snr_db[0] <= m["snr_db"] <= TINY.snr_db[1]
        assert TINY.rt60_range[0] - 1e-6 <= m["rt60_s"] <= TINY.rt60_range[1] + 1e-6
        assert TINY.elevation_range[0] <= m["elevation_deg"] <= TINY.elevation_range[1]
        assert m["noise_mode"] in ("localized", "diffuse")
        assert (m["n_noise"] == 1) == (m["noise_mode"] == "localized") and m["n_noise"] <= 5
        assert np.allclose(np.linalg.norm(m["direction"]), 1.0)
        assert np.isclose(np.rad2deg(np.arctan2(m["direction"][1], m["direction"][0])), m["azimuth_deg"])


def test_measured_snr_matches_target(synth):
    audio, meta, (s, n) = synth.sample(4, return_parts=True)
    assert torch.allclose(audio, s + n, atol=1e-6)
    for b, m in enumerate(meta):
        sl = slice(m["noise_start"], m["noise_start"] + m["noise_length"])
        snr = 10 * np.log10(float(s[b, :, sl].double().square().sum() / n[b, :, sl].double().square().sum()))
        assert abs(snr - m["snr_db"]) < 0.5


def test_same_seed_same_scenes(tmp_path):
    a = SceneSynth(TINY, seed=5).sample(2)
    b = SceneSynth(SceneConfig(**{**TINY.__dict__, "cache_dir": str(tmp_path)}), seed=5)
    assert torch.equal(a[0], b.sample(2)[0]) and a[1] == SceneSynth(TINY, seed=5).sample(2)[1]
    c = SceneSynth(SceneConfig(**{**TINY.__dict__, "cache_dir": str(tmp_path)}), seed=5)  # from the cache
    assert list(tmp_path.glob("*.npz")) and torch.equal(a[0], c.sample(2)[0])
    assert not torch.equal(a[0], SceneSynth(TINY, seed=6).sample(2)[0])


def test_train_and_test_rooms_differ():
    tr, te = SceneSynth(TINY, seed=0, split="train"), SceneSynth(TINY, seed=0, split="test")
    dims = lambda s: {tuple(m["room_dims_m"]) for m in s.bank.meta}  # noqa: E731
    assert not dims(tr) & dims(te)


def test_spatialize_given_clip_direction(synth):
    rng = np.random.default_rng(0)
    clip = rng.standard_normal(FS).astype(np.float32)
    test = SceneSynth(TINY, seed=0, split="test")
    audio, meta = test.spatialize(clip, azimuth_deg=90, elevation_deg=0, distance_m=1.5, snr_db=float("inf"), rng=1)
    assert audio.shape == (2, FS) and meta["split"] == "test" and meta["noise_mode"] == "none"
    assert meta["azimuth_deg"] == 90 and np.allclose(meta["direction"], [0, 1, 0], atol=1e-9)
    lag, ild = _lag_ild(audio.numpy())
    assert lag < 0 and ild > 0  # source on the left: left ear leads and is louder
    audio, meta, (s, n) = test.spatialize(clip, azimuth_deg=-90, snr_db=10.0, rng=2, return_parts=True)
    sl = slice(meta["noise_start"], meta["noise_start"] + meta["noise_length"])
    snr = 10 * np.log10(float(s[:, sl].square().sum() / n[:, sl].square().sum()))
    assert abs(snr - 10.0) < 0.5 and meta["elevation_deg"] is not None
    again, _ = test.spatialize(clip, azimuth_deg=-90, snr_db=10.0, rng=2)
    assert torch.equal(again, audio)


def test_noise_fades_and_level():
    rng = np.random.default_rng(0)
    x, start, length, kind = make_noise(rng, 10 * FS, "pink")
    w = int(0.2 * FS)
    assert (start, length, kind) == (0, 10 * FS, "pink") and x[0] == 0 and x[-1] == 0
    assert np.abs(x[: w // 10]).max() < np.abs(x[w: 2 * w]).max() / 5
    assert abs(20 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2))) + 14) < 0.1


def _write(path, x, sr=16000):
    sf.write(str(path), x, sr)


def test_bad_user_files_are_skipped_and_counted(tmp_path):
    rng = np.random.default_rng(0)
    src = tmp_path / "src"
    src.mkdir()
    _write(src / "good.wav", 0.1 * rng.standard_normal(16000))
    _write(src / "silent.wav", np.zeros(16000))
    (src / "broken.wav").write_bytes(b"RIFF not really a wav")
    shard = tmp_path / "shard-000000.tar"
    with tarfile.open(shard, "w") as tf:
        for name, data in (("a.flac", None), ("b.flac", b"garbage")):
            if data is None:
                buf = io.BytesIO()
                sf.write(buf, 0.1 * rng.standard_normal(8000), 32000, format="FLAC")
                data = buf.getvalue()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    noise = tmp_path / "noise"
    noise.mkdir()
    (noise / "bad.flac").write_bytes(b"\x00" * 100)
    _write(noise / "ok.wav", 0.1 * rng.standard_normal(8000))
    cfg = SceneConfig(**{**TINY.__dict__, "n_speech": 0, "n_notes": 0, "n_events": 0, "source_dirs": (str(src),),
                         "source_shards": (str(shard),), "noise_dirs": (str(noise),), "p_user_noise": 1.0})
    s = SceneSynth(cfg, seed=0)
    audio, meta = s.sample(12)
    assert torch.isfinite(audio).all() and s.stats["skipped_files"] >= 2
    kinds = {m["source_kind"] for m in meta}
    assert kinds <= {"folder", "audioset"} and all(a.abs().max() > 0 for a in audio)


def test_user_brir_folder_split_by_house(tmp_path):
    rng = np.random.default_rng(0)
    for h in range(12):
        d = tmp_path / f"house{h}" / "90"
        d.mkdir(parents=True)
        ir = np.zeros((4000, 2))
        ir[10, 0], ir[14, 1] = 1.0, 0.5
        ir[20:] = 0.01 * rng.standard_normal((3980, 2)) * np.exp(-np.arange(3980) / 800)[:, None]
        _write(d / "0_1.wav", ir, 16000)
        (d / "0_2.wav").write_bytes(b"broken")
    cfg = SceneConfig(**{**TINY.__dict__, "brir_dirs": (str(tmp_path),)})
    tr, te = SceneSynth(cfg, seed=0), SceneSynth(cfg, seed=0, split="test")
    assert tr.user_brirs is not None and tr.bank is None
    houses_tr = set(tr.user_brirs.houses)
    houses_te = set(te.user_brirs.houses) if te.user_brirs is not None else set()
    assert houses_tr and not houses_tr & houses_te
    audio, meta = tr.sample(3)
    assert audio.shape == (3, 2, cfg.n_samples) and all(m["room_id"] in houses_tr for m in meta)
    assert tr.stats["skipped_files"] >= 1


def test_batched_noise_rendering_matches_single_clips():
    """render_pending shapes a whole batch with one FFT per exponent: every clip must equal its own
    make_noise (same seed, same draws), whatever its neighbours in the batch."""
    from training.noise import Pending, draw_noise, render_pending
    kinds = ["pink", "babble", "white", "brown", "pink", "babble"]
    drawn = [draw_noise(np.random.default_rng(i), FS, k) for i, k in enumerate(kinds)]
    assert all(isinstance(d[0], Pending) for d in drawn)
    batch = render_pending([d[0] for d in drawn])
    for i, (k, x) in enumerate(zip(kinds, batch)):
        ref, start, length, kind = make_noise(np.random.default_rng(i), FS, k)
        assert (start, length, kind) == (0, FS, k) and np.allclose(x, ref, atol=1e-6)
    assert not np.allclose(batch[0], batch[4], atol=1e-3)  # different seeds, different clips


_SCENE_HASH = """
import hashlib, sys
from training.scenes import SceneConfig, SceneSynth
cfg = SceneConfig(n_rooms=2, sets_per_room=2, n_speech=12, n_notes=0, n_events=0, duration_s=2.0,
                  cache_dir=sys.argv[1])
audio, meta = SceneSynth(cfg, seed=0).sample(4)
print(hashlib.sha256(audio.numpy().tobytes()).hexdigest(), sorted({m["source_kind"] for m in meta}))
"""


def test_two_processes_make_identical_scenes(tmp_path):
    """A second process (a --resume, another DDP rank) reproduces the first one's scenes bit for bit and reads
    the pool the first one cached instead of synthesising it again. Speech only, so the scenes depend on
    espeak clips (seeded: tests/test_nathear.py::test_speech_tasks_are_the_same_in_every_process)."""
    import subprocess
    import sys
    pytest.importorskip("espeakng_loader")
    root = __import__("pathlib").Path(__file__).resolve().parents[1]
    run = lambda: subprocess.run([sys.executable, "-c", _SCENE_HASH, str(tmp_path)], cwd=root, check=True,  # noqa: E731
                                 capture_output=True, text=True).stdout.strip()
    first, second = run(), run()
    assert "['speech']" in first and first == second
    assert len(list(tmp_path.glob("pool_*.npz"))) == 1
