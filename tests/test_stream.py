"""Streaming embeddings equal the offline runtime on the whole clip, for any block size."""

import numpy as np
import pytest
import torch

from hear_gram.model import TIME, GramEncoder
from hear_gram.runtime import GramRuntime

from conftest import rel_err, tiny_config

SR = 32000


def runtime(strategy="raw", time=False, in_channels=2, **kw):
    torch.manual_seed(0)
    cfg = tiny_config(**(TIME if time else {}), in_channels=in_channels)
    return GramRuntime(GramEncoder(cfg), "gram_t_time" if time else "gram_t_patch", strategy=strategy, **kw)


def noise(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def stream_all(rt, x, sizes, layout="cf"):
    """Push x (C, n) in blocks of the given sizes (cycled); -> (emb, ts, scene, per-push outputs)."""
    s = rt.stream(channels=x.shape[0])
    embs, tss, pushed, a, i = [], [], [], 0, 0
    while a < x.shape[1]:
        b = min(x.shape[1], a + sizes[i % len(sizes)])
        block = x[:, a:b] if layout == "cf" else x[:, a:b].T.numpy()
        e, t = s.push(block)
        assert e.shape[0] == t.shape[0]
        embs.append(e), tss.append(t), pushed.append((b, t))
        a, i = b, i + 1
    e, t = s.flush()
    embs.append(e), tss.append(t)
    return torch.cat(embs), torch.cat(tss), s.scene_embedding, pushed


@pytest.mark.parametrize("strategy, time, seconds", [
    ("raw", False, 7.3), ("raw", True, 4.01), ("mean", False, 6.37), ("cls", False, 4.0), ("raw", False, 1.3),
    ("mean", False, 2.0), ("raw", False, 6.0), ("raw", False, 6.006),
])
def test_stream_equals_offline_for_random_block_sizes(strategy, time, seconds):
    rt = runtime(strategy, time, max_chunks=2)
    x = noise(2, int(seconds * SR), seed=int(seconds * 1000))
    ref, ref_ts, ref_scene = rt.embed(x[None])
    rng = np.random.default_rng(int(seconds * 100))
    sizes = [int(v) for v in rng.integers(1, 3 * SR, 50)] + [1, 7, 320, 20000]
    rng.shuffle(sizes)
    for layout, blocks in [("cf", sizes), ("tm", [int(v) for v in rng.integers(100, 9000, 40)])]:
        emb, ts, scene, _ = stream_all(rt, x, blocks, layout)
        assert emb.shape == ref[0].shape and torch.equal(ts, ref_ts[0])
        assert rel_err(emb, ref[0]) <= 1e-6 and rel_err(scene, ref_scene[0]) <= 1e-6


def test_each_embedding_is_out_as_soon_as_its_chunk_has_arrived():
    """Frames of the chunk [s, s+200) appear in the push that brings sample (s+199)*320 + 512."""
    rt = runtime("raw", max_chunks=1)
    x = noise(2, int(7.5 * SR), seed=3)
    _, _, _, pushed = stream_all(rt, x, [3200])  # 100 ms blocks
    for received, ts in pushed:
        if len(ts):  # 25 frames per chunk, the chunk that needed the audio just received
            assert len(ts) == 25
            s = int(round((ts[0].item() - 35.0) / 10))  # start frame of the chunk
            need = (s + 199) * 320 + 512
            assert received - 3200 < need <= received
    assert [len(t) for _, t in pushed if len(t)] == [25, 25, 25]  # chunks at 0, 2, 4 s; 6 s on flush


def test_mono_stream_into_binaural_model_and_binaural_into_mono_model():
    x = noise(1, int(3.3 * SR), seed=5)
    rt = runtime("raw")
    emb, ts, _, _ = stream_all(rt, x, [5000, 777])
    ref, ref_ts = rt.get_timestamp_embeddings(x)
    assert rel_err(emb, ref[0]) <= 1e-6 and torch.equal(ts, ref_ts[0])
    mono = runtime("raw", in_channels=1)
    xb = noise(2, int(3.3 * SR), seed=6)
    emb, _, _, _ = stream_all(mono, xb, [4000])
    assert rel_err(emb, mono.get_timestamp_embeddings(xb[None])[0][0]) <= 1e-6


def test_stream_errors_are_clear():
    rt = runtime()
    s = rt.stream()
    with pytest.raises(ValueError, match="does not fit a 2-channel stream"):
        s.push(torch.zeros(3, 100))
    with pytest.raises(ValueError, match="NaN or inf"):
        s.push(torch.full((2, 100), float("nan")))
    with pytest.raises(TypeError, match="int16"):
        s.push(np.zeros((2, 100), np.int16))
    s.push(torch.zeros(2, 100))
    with pytest.raises(ValueError, match="100 samples.*513"):
        s.flush()
    s = rt.stream()
    s.push(torch.zeros(2, 1000))
    s.flush()
    with pytest.raises(RuntimeError, match="flushed"):
        s.push(torch.zeros(2, 10))
    with pytest.raises(ValueError, match="compat=True"):
        runtime(compat=True).stream()


def test_stream_keeps_bounded_audio():
    rt = runtime("raw")
    s = rt.stream()
    for i in range(40):  # 20 s in 0.5 s blocks
        s.push(noise(2, SR // 2, seed=i))
        # the next regular chunk (2 s) and the offline plan's last chunk (the last 2 s) + STFT context
        assert s._buf.shape[1] + sum(b.shape[1] for b in s._blocks) <= int(4.1 * SR) + SR // 2
