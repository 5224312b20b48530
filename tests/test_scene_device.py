"""The torch backend of SceneSynth (training/scene_device.py), run on CPU tensors: the same code path a GPU runs.

Scene statistics (SNR, ITD/ILD signs, RT60), the assembly of tracks and babble from the device-resident pool,
determinism per seed and per rank, exact resume of the data stream, and agreement of the two backends' mixers.
"""
import numpy as np
import pytest
import torch

from hear_gram.model import GramConfig
from training.brir import schroeder_rt60
from training.data import CropStream
from training.mixing import mix_numpy, mix_torch
from training.noise import syllable_envelope as syllable_envelope_np
from training.scene_device import TALKERS, syllable_envelope
from training.scenes import SceneConfig, SceneSynth
from tests.test_brir import _lag_ild

FS = 32000
TINY = SceneConfig(n_rooms=2, sets_per_room=3, n_speech=6, n_notes=6, n_events=6, duration_s=2.0, cache_dir=None)


@pytest.fixture(scope="module", autouse=True)
def shared_cache(tmp_path_factory):
    """One bank/pool cache for the module: each configuration's bank is rendered once."""
    global TINY
    plain = TINY
    TINY = SceneConfig(**{**plain.__dict__, "cache_dir": str(tmp_path_factory.mktemp("scene_cache"))})
    yield
    TINY = plain


@pytest.fixture(scope="module")
def synth():
    return SceneSynth(TINY, seed=0, backend="torch")


def test_backend_is_a_constructor_argument(synth):
    assert synth.backend == "torch" and synth.material is not None
    assert SceneSynth(TINY, seed=0).backend == "numpy"  # auto on a CPU
    with pytest.raises(ValueError, match="backend must be one of"):
        SceneSynth(TINY, backend="jax")
    with pytest.raises(ValueError, match="noise_dirs or brir_dirs"):
        SceneSynth(SceneConfig(**{**TINY.__dict__, "noise_dirs": ("/nonexistent",)}), backend="torch")


def test_snr_peak_and_metadata(synth):
    audio, meta, (s, n) = synth.sample(8, return_parts=True)
    assert audio.shape == (8, 2, TINY.n_samples) and audio.dtype == torch.float32
    assert torch.isfinite(audio).all() and audio.abs().amax() <= TINY.peak + 1e-6
    torch.testing.assert_close(audio, s + n, rtol=0, atol=1e-6)
    for b, m in enumerate(meta):
        snr = 10 * np.log10(float(s[b].double().square().sum() / n[b].double().square().sum()))
        assert abs(snr - m["snr_db"]) < 0.05 and TINY.snr_db[0] <= m["snr_db"] <= TINY.snr_db[1]
        assert m["noise_type"] in TINY.noise_types and m["source_kind"] in ("speech", "note", "event")
        assert 1 <= len(m["source_ids"]) <= TINY.max_items_per_track and 0 < m["gain"] <= 1.0
        peak = float((s[b] + n[b]).abs().max()) / m["gain"]  # before the clamp
        assert (m["gain"] == 1.0) == (peak <= TINY.peak)


def test_dry_rows_are_the_planned_segments(synth):
    """Tracks and babble come from one gather + index_add: rebuild them segment by segment from the plan."""
    mat = synth.material
    rng = np.random.default_rng(1)
    for _ in range(3):
        plan = mat.draw(rng, 6)
        if "babble" in plan.noise_type:
            break
    x = mat.dry(plan).numpy()
    B, n = 6, TINY.n_samples
    pool = mat.pool.numpy()
    track, talk = np.zeros(B * n, np.float32), np.zeros(B * TALKERS * n, np.float32)
    for buf, src, dst, lens in ((track, plan.seg_src, plan.seg_dst, plan.seg_len),
                                (talk, plan.bab_src, plan.bab_dst, plan.bab_len)):
        for s, d, L in zip(src, dst, lens):
            assert not buf[d: d + L].any()  # segments never overlap inside a buffer row
            buf[d: d + L] = pool[s: s + L]
    np.testing.assert_array_equal(x[:B], track.reshape(B, n))  # the tracks: pool samples only
    babble = talk.reshape(B, TALKERS, n).sum(1) * mat.fade.numpy()
    for b, t in enumerate(plan.noise_type):
        if t == "babble":  # speech babble: the summed talkers (4-8 of them), faded
            np.testing.assert_allclose(x[B + b], babble[b], atol=1e-6)
            talkers = {int(d // n) for d in plan.bab_dst if d // (TALKERS * n) == b}
            assert 4 <= len(talkers) <= 8 and np.abs(babble[b]).max() > 0
    assert set((plan.seg_dst // n).tolist()) == set(range(B))  # every scene has a track


def test_speechless_babble_envelope_matches_numpy():
    on = np.random.default_rng(0).random((5, 2 * FS // 800 + 1)) < 0.6
    ref = syllable_envelope_np(on, 2 * FS)
    got = syllable_envelope(torch.from_numpy(on), 2 * FS).double().numpy()
    np.testing.assert_allclose(got, ref, atol=1e-6)
    cfg = SceneConfig(**{**TINY.__dict__, "n_speech": 0, "noise_weights": (0, 0, 0, 1)})
    audio, meta = SceneSynth(cfg, seed=0, backend="torch").sample(3)
    assert {m["noise_type"] for m in meta} == {"babble"} and torch.isfinite(audio).all()


def test_itd_ild_signs_and_rt60():
    """Target sets from the device-resident bank keep their cues: sources on the left lead and are louder at
    the left ear; the RT60 of each set's BRIR is its room's (BRIRs long enough to measure T20)."""
    cfg = SceneConfig(**{**TINY.__dict__, "n_rooms": 4, "sets_per_room": 8, "rt60_range": (0.2, 0.3),
                         "distance_range": (1.5, 2.0), "elevation_range": (-10.0, 10.0), "snr_db": (60.0, 60.0)})
    synth = SceneSynth(cfg, seed=0, backend="torch")
    _, meta, (s, _) = synth.sample(24, return_parts=True)
    checked = 0
    for b, m in enumerate(meta):
        if 45 <= abs(m["azimuth_deg"]) <= 135:
            lag, ild = _lag_ild(s[b].numpy())
            side = np.sign(m["azimuth_deg"])  # +: left
            assert np.sign(-lag) == side and np.sign(ild) == side, (m["azimuth_deg"], lag, ild)
            checked += 1
    assert checked >= 5
    long = SceneSynth(SceneConfig(**{**cfg.__dict__, "n_rooms": 2, "sets_per_room": 2, "brir_length_s": 0.8}),
                      seed=0, backend="torch")
    _, meta = long.sample(4)
    for m in meta:
        h = long.material.target[m["set_index"]].float().numpy()
        assert abs(schroeder_rt60(h, FS) - m["rt60_s"]) < 0.2 * m["rt60_s"], m["rt60_s"]


def test_same_seed_same_scenes_other_seed_not():
    a = SceneSynth(TINY, seed=5, backend="torch").sample(3)
    b = SceneSynth(TINY, seed=5, backend="torch").sample(3)
    assert torch.equal(a[0], b[0]) and a[1] == b[1]
    assert not torch.equal(a[0], SceneSynth(TINY, seed=6, backend="torch").sample(3)[0])


def _stream(rank=0):
    mcfg = GramConfig(dim=64, depth=1, num_heads=4, mlp_dim=64, decoder_dim=32, decoder_depth=1, log_eps=1e-5)
    return CropStream(TINY, mcfg, clips=2, crops_per_clip=3, input_frames=220, seed=3, rank=rank,
                      backend="torch")


def test_crop_stream_resumes_exactly_and_ranks_differ():
    from hear_gram.features import LogMel

    mel = LogMel(log_eps=1e-5)
    s = _stream()
    assert s.synth.backend == "torch"
    s.next_batch(mel)
    state = s.state_dict()
    x1, m1 = s.next_batch(mel)
    x2, m2 = s.next_batch(mel)
    r = _stream()
    r.load_state_dict(state)
    y1, n1 = r.next_batch(mel)
    y2, n2 = r.next_batch(mel)
    assert torch.equal(x1, y1) and torch.equal(x2, y2) and torch.equal(m1, n1) and torch.equal(m2, n2)
    other = _stream(rank=1)
    other.next_batch(mel)
    assert not torch.equal(other.next_batch(mel)[0], x1)
    with pytest.raises(ValueError, match="data_workers"):
        CropStream(TINY, GramConfig(), 2, 2, workers=2, backend="torch")


def test_the_two_mixers_agree():
    g = torch.Generator().manual_seed(0)
    s, n = torch.randn(4, 2, 3000, generator=g), 0.3 * torch.randn(4, 2, 3000, generator=g)
    s[0] *= 10  # one scene over the peak: clamped
    snr = [5.0, 12.0, 30.0, float("inf")]
    a_np, (s_np, n_np), g_np = mix_numpy(s.numpy().copy(), n.numpy().copy(), snr, 0.99, [(0, 3000)] * 4, True)
    a_t, (s_t, n_t), g_t = mix_torch(s, n, torch.tensor(snr), 0.99, None, True)
    np.testing.assert_allclose(a_t.numpy(), a_np, atol=1e-5)
    np.testing.assert_allclose(n_t.numpy(), n_np, atol=1e-5)
    np.testing.assert_allclose(g_t.numpy(), g_np, rtol=1e-5)
    assert g_np[0] < 1.0 and np.abs(a_np).max() <= 0.99 + 1e-6 and not n_np[3].any()


def test_user_corpora_stream_through_dataloader_workers(tmp_path):
    """source_dirs / source_shards on the torch backend: DataLoader workers decode + resample dry clips; the
    stream is the same for 0 and 2 workers and resumes exactly; broken files are skipped."""
    import io
    import tarfile

    import soundfile as sf

    rng = np.random.default_rng(0)
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        sf.write(str(src / f"c{i}.wav"), 0.1 * rng.standard_normal(22050), 22050)
    (src / "broken.wav").write_bytes(b"RIFF not really a wav")
    shard = tmp_path / "shard-000000.tar"
    with tarfile.open(shard, "w") as tf:
        buf = io.BytesIO()
        sf.write(buf, 0.1 * rng.standard_normal(44100), 44100, format="FLAC")
        info = tarfile.TarInfo("a.flac")
        info.size = len(buf.getvalue())
        tf.addfile(info, io.BytesIO(buf.getvalue()))
    cfg = SceneConfig(**{**TINY.__dict__, "source_dirs": (str(src),), "source_shards": (str(shard),),
                         "p_user_source": 1.0})
    mcfg = GramConfig(dim=64, depth=1, num_heads=4, mlp_dim=64, decoder_dim=32, decoder_depth=1, log_eps=1e-5)
    from hear_gram.features import LogMel

    mel = LogMel(log_eps=1e-5)
    streams = [CropStream(cfg, mcfg, clips=3, crops_per_clip=2, input_frames=220, seed=1, backend="torch",
                          workers=w) for w in (0, 2)]
    try:
        a, b = ([s.next_batch(mel)[0] for _ in range(2)] for s in streams)
        assert all(torch.equal(u, v) for u, v in zip(a, b))  # the worker count does not change the stream
        state = streams[1].state_dict()
        assert state["clips"]["pos"] == 6
        nxt = streams[1].next_batch(mel)[0]
        streams[0].load_state_dict(state)
        assert torch.equal(streams[0].next_batch(mel)[0], nxt)
    finally:
        for s in streams:
            s.close()
    audio, meta = SceneSynth(cfg, seed=0, backend="torch").sample(4)
    assert {m["source_kind"] for m in meta} <= {"folder", "audioset"} and torch.isfinite(audio).all()
    assert all(a.abs().max() > 0 for a in audio)
