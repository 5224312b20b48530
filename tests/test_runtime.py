"""Runtime behaviour on small random models: input layouts, bad inputs, chunking, timestamps, pooling."""

import numpy as np
import pytest
import torch

from hear_gram.model import TIME, GramEncoder
from hear_gram.runtime import GramRuntime

from conftest import rel_err, tiny_config

SR = 32000


def runtime(strategy="raw", time=False, compat=False, **kw):
    torch.manual_seed(0)
    cfg = tiny_config(**(TIME if time else {}))
    return GramRuntime(GramEncoder(cfg), "gram_t_time" if time else "gram_t_patch", strategy=strategy,
                       compat=compat, **kw)


def noise(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("time", [False, True])
@pytest.mark.parametrize("strategy", ["raw", "mean", "cls"])
def test_declared_sizes_equal_returned_sizes(time, strategy):
    rt = runtime(strategy, time)
    emb, ts = rt.get_timestamp_embeddings(noise(2, 2, 3 * SR))
    scene = rt.get_scene_embeddings(noise(2, 2, 3 * SR))
    assert emb.shape[2] == rt.timestamp_embedding_size and scene.shape == (2, rt.scene_embedding_size)
    assert emb.dtype == scene.dtype == torch.float32 and ts.shape == emb.shape[:2]


def test_binaural_layouts_agree_and_mono_equals_duplicated_binaural():
    rt = runtime()
    x = noise(2, 2, SR + 1234)
    a, ta = rt.get_timestamp_embeddings(x)
    b, tb = rt.get_timestamp_embeddings(x.transpose(1, 2).contiguous())
    c, _ = rt.get_timestamp_embeddings(x.numpy())
    assert torch.equal(a, b) and torch.equal(ta, tb) and torch.equal(a, c)
    m = noise(2, SR, seed=1)
    assert torch.allclose(rt.get_scene_embeddings(m), rt.get_scene_embeddings(m[:, None].repeat(1, 2, 1)), atol=1e-6)
    assert torch.allclose(rt.get_scene_embeddings(m), rt.get_scene_embeddings(m[:, None]), atol=1e-6)
    # left and right are not interchangeable for a binaural model
    assert not torch.allclose(rt.get_scene_embeddings(x), rt.get_scene_embeddings(x.flip(1)), atol=1e-4)


@pytest.mark.parametrize("time", [False, True])
@pytest.mark.parametrize("seconds", [0.5, 1.07, 1.98, 2.0, 2.5, 4.0, 6.37])
def test_timestamps_are_token_centres_inside_the_clip(time, seconds):
    rt = runtime(time=time)
    n = int(seconds * SR)
    emb, ts = rt.get_timestamp_embeddings(noise(2, 2, n))
    hop = 80.0 if not time else 20.0
    first = 35.0 if not time else 5.0  # centre of frames [0, 8) or [0, 2) at 10 ms per frame
    assert torch.allclose(ts[0], first + hop * torch.arange(ts.shape[1]).float())
    assert ts[0, -1] <= 1000 * n / SR  # no frame centred after the clip ends
    assert ts[0, -1] + hop > 1000 * n / SR - hop  # and none missing at the end
    assert torch.equal(ts[0], ts[1])


def test_no_phantom_chunk_and_padding_does_not_enter_the_scene():
    rt = runtime()
    calls = []
    orig = rt.model.forward_features
    rt.model.forward_features = lambda x, layer=None: calls.append(x.shape[0]) or orig(x, layer)
    x = noise(1, 2, 4 * SR)  # 401 frames: the official runtime runs 3 chunks, the last one all padding
    emb, _ = rt.get_timestamp_embeddings(x)
    assert sum(calls) == 2 and emb.shape[1] == 50  # 50 tokens of 80 ms cover the 4 s
    scene = rt.get_scene_embeddings(x)
    assert torch.allclose(scene, emb.mean(dim=1), atol=1e-6)
    calls.clear()
    rt.get_timestamp_embeddings(noise(1, 2, int(4.5 * SR)))  # 451 frames: a third, right-aligned chunk
    assert sum(calls) == 3
    calls.clear()
    rt.compat = True  # compat mode runs the phantom chunk, as the official runtime does
    rt.get_timestamp_embeddings(x)
    assert sum(calls) == 3


def test_chunks_match_independent_two_second_passes():
    """The first 25 output frames of a 5 s clip are exactly the raw output of its first 2 s chunk."""
    rt = runtime()
    x = noise(1, 2, 5 * SR)
    emb, _ = rt.get_timestamp_embeddings(x)
    lm = rt.logmel(x)
    with torch.no_grad():
        first = rt.model.pool(rt.model.forward_features(lm[:, :, :200]), "raw")
        # 501 frames -> 63 tokens -> 504 frames: the last chunk [304, 504) ends with 3 frames of 0.0
        tail = torch.cat([lm[:, :, 304:], torch.zeros(1, 2, 3, 128)], dim=2)
        last = rt.model.pool(rt.model.forward_features(tail), "raw")
    assert torch.allclose(emb[:, :25], first, atol=1e-5)
    assert torch.allclose(emb[:, 50:], last[:, 25 - 13:], atol=1e-5)


def test_batching_and_memory_cap_do_not_change_results():
    x = noise(3, 2, int(4.3 * SR))
    a = runtime(max_chunks=1).get_timestamp_embeddings(x)[0]
    b = runtime(max_chunks=64).get_timestamp_embeddings(x)[0]
    alone = runtime().get_timestamp_embeddings(x[1:2])[0]
    assert torch.allclose(a, b, atol=1e-5) and torch.allclose(a[1:2], alone, atol=1e-5)


def test_layer_option():
    x = noise(1, 2, SR)
    full = runtime().get_scene_embeddings(x)
    assert torch.allclose(runtime(layer=2).get_scene_embeddings(x), full, atol=1e-6)
    assert torch.allclose(runtime(layer=-1).get_scene_embeddings(x), runtime(layer=1).get_scene_embeddings(x))
    assert not torch.allclose(runtime(layer=0).get_scene_embeddings(x), full, atol=1e-3)
    with pytest.raises(ValueError, match="layer=3"):
        runtime(layer=3)


@pytest.mark.parametrize("strategy", ["mean", "cls"])
@pytest.mark.parametrize("seconds, chunks", [(5.5, 3), (1.07, 1), (2.0, 1)])
def test_mean_and_cls_give_one_vector_per_chunk(strategy, seconds, chunks):
    rt = runtime(strategy)
    emb, ts = rt.get_timestamp_embeddings(noise(2, 2, int(seconds * SR)))
    assert emb.shape == (2, chunks, 64) and ts.shape == (2, chunks)
    assert torch.all(ts[0, 1:] > ts[0, :-1]) and ts[0, -1] <= 1000 * seconds


@pytest.mark.parametrize("bad, err, match", [
    (torch.full((1, 2, SR), float("nan")), ValueError, "NaN or inf"),
    (torch.cat([torch.zeros(1, SR), torch.full((1, SR), float("inf"))]), ValueError, r"clips \[1\]"),
    (torch.zeros(2, SR, dtype=torch.int16), TypeError, "int16.*32768"),
    (np.zeros((2, SR), dtype=np.int16), TypeError, "int16.*32768"),
    (torch.zeros(SR), ValueError, r"audio\[None\]"),
    (torch.zeros(1, 1, 2, SR), ValueError, "2-D .* or 3-D"),
    (torch.zeros(1, 4, SR), ValueError, "more than 2 channels"),
    (torch.zeros(1, SR, 6), ValueError, "more than 2 channels"),
    (torch.zeros(1, 2, 2), ValueError, "too short"),
    (torch.zeros(2, 2, 0), ValueError, r"shape \(2, 2, 0\) is too short: clips need at least 513 samples"),
    (torch.zeros(2, 1, 2), ValueError, "too short"),
    (torch.zeros(2, 300), ValueError, "too short.*513 samples"),
    (torch.zeros(2, 0), ValueError, "too short"),
    ([[0.0] * 1000], TypeError, "torch.Tensor or numpy"),
])
def test_bad_inputs_give_clear_errors(bad, err, match):
    with pytest.raises(err, match=match):
        runtime().get_scene_embeddings(bad)


def test_empty_batch_is_a_documented_empty_result():
    rt = runtime()
    emb, ts = rt.get_timestamp_embeddings(torch.zeros(0, 2, SR))
    assert emb.shape == (0, 0, rt.timestamp_embedding_size) and ts.shape == (0, 0)
    assert rt.get_scene_embeddings(torch.zeros(0, SR)).shape == (0, rt.scene_embedding_size)


def test_silence_and_shortest_clip_give_finite_embeddings():
    rt = runtime()
    assert torch.isfinite(rt.get_scene_embeddings(torch.zeros(2, 2, SR))).all()
    emb, ts = rt.get_timestamp_embeddings(torch.zeros(1, 513))
    assert emb.shape[1] == 1 and torch.isfinite(emb).all()


def test_runtime_stays_in_eval_mode():
    rt = runtime()
    rt.train()
    assert not rt.training and not rt.model.training


def test_gram_m_cls_does_not_depend_on_the_audio_and_warns():
    torch.manual_seed(0)
    cfg = tiny_config(encoder="mamba", d_state=16, headdim=16)
    with pytest.warns(UserWarning, match="does not depend on the audio"):
        rt = GramRuntime(GramEncoder(cfg), "gram_m_patch", strategy="cls")
    a, b = rt.get_scene_embeddings(noise(1, 2, SR, seed=1)), rt.get_scene_embeddings(noise(1, 2, SR, seed=2))
    assert torch.allclose(a, b, atol=1e-6)
    mean = GramRuntime(GramEncoder(cfg), "gram_m_patch", strategy="mean")
    assert not torch.allclose(mean.get_scene_embeddings(noise(1, 2, SR, seed=1)),
                              mean.get_scene_embeddings(noise(1, 2, SR, seed=2)), atol=1e-4)


def test_bf16_precision_is_close_to_fp32_and_returns_float32(monkeypatch):
    import hear_gram.runtime as R

    x = noise(2, 2, int(2.5 * SR))
    ref = runtime().get_scene_embeddings(x)
    monkeypatch.setattr(R, "cpu_has_native", lambda dtype: True)  # as on a CPU with AVX512-BF16 / AMX
    low = runtime(precision="bf16").get_scene_embeddings(x)
    assert low.dtype == torch.float32
    rel = ((low - ref).norm() / ref.norm()).item()
    assert 0 < rel < 3e-2  # autocast really ran, and stayed close
    with pytest.raises(ValueError, match="precision must be one of"):
        runtime(precision="int4")


def test_bf16_on_a_cpu_without_native_support_warns_and_runs_fp32(monkeypatch):
    import hear_gram.runtime as R

    monkeypatch.setattr(R, "cpu_has_native", lambda dtype: False)
    x = noise(1, 2, SR)
    rt = runtime(precision="bf16")
    with pytest.warns(UserWarning, match="no native bf16 matmuls.*running in fp32"):
        out = rt.get_scene_embeddings(x)
    assert torch.equal(out, runtime().get_scene_embeddings(x))
    assert runtime(precision="auto").effective_precision() == "fp32"


@pytest.mark.parametrize("time", [False, True])
def test_int8_quantizes_every_linear_including_packed_qkv_and_stays_close(time):
    from torch.ao.nn.quantized.dynamic import Linear as QLinear

    x = noise(2, 2, int(3.3 * SR))
    rt = runtime(time=time, precision="int8")
    emb = rt.get_timestamp_embeddings(x)[0]
    ref = runtime(time=time).get_timestamp_embeddings(x)[0]
    q = rt._cache["int8"]
    assert not [n for n, m in q.named_modules() if type(m) is torch.nn.Linear]  # none left in float
    assert all(isinstance(m.self_attention.qkv, QLinear) for m in q.backbone.layers)
    assert rt.model.backbone.layers[0].self_attention.in_proj_weight.dtype == torch.float32  # float model kept
    assert not [k for k in rt.state_dict() if "self_attention.qkv" in k]
    cos = torch.nn.functional.cosine_similarity(emb.flatten(0, 1), ref.flatten(0, 1), dim=-1)
    assert cos.min() > 0.99 and 0 < rel_err(emb, ref) < 0.1


def test_mean_scene_is_the_mean_of_the_raw_frames_over_time_and_frequency():
    x = noise(2, 2, int(5.3 * SR))
    raw, _ = runtime("raw").get_timestamp_embeddings(x)
    mean = runtime("mean").get_scene_embeddings(x)
    assert torch.allclose(raw.reshape(2, raw.shape[1], 8, 64).mean(dim=(1, 2)), mean, atol=1e-5)


# -- bad input (issue 11, findings 5, 6, 7, 10) ---------------------------------------------------------------

@pytest.mark.parametrize("eps", [0, 0.0, -1, float("nan"), float("inf"), "abc", True, "-1e-5"])
def test_log_eps_must_be_a_finite_positive_number(tmp_path, eps):
    from hear_gram.checkpoint import save_model
    from hear_gram.features import LogMel
    from hear_gram.runtime import load_runtime

    with pytest.raises(ValueError, match=r"log_eps=.* (must be a finite number > 0|is not a number)"):
        LogMel(log_eps=eps)
    with pytest.raises(ValueError, match=r"log_eps=.* (must be a finite number > 0|is not a number)"):
        GramEncoder(tiny_config(log_eps=eps))
    save_model(GramEncoder(tiny_config()), str(tmp_path))
    with pytest.raises(ValueError, match=r"option log_eps=.* (must be a finite number > 0|is not a number)"):
        load_runtime("gram_t_patch", str(tmp_path), log_eps=eps)
    assert load_runtime("gram_t_patch", str(tmp_path), log_eps="1e-5").config.log_eps == 1e-5


def test_huge_amplitudes_are_a_named_error_not_nan():
    rt = runtime()
    x = noise(3, 2, SR)
    assert torch.isfinite(rt.get_scene_embeddings(x * 1e16)).all()  # the documented limit itself is fine
    # the worst case for the power bound: a full-scale square wave at the limit stays finite
    sq = torch.sign(torch.sin(torch.arange(SR) * 2 * torch.pi * 1000 / SR))[None].repeat(2, 1)[None] * 1e16
    assert torch.isfinite(rt.get_scene_embeddings(sq)).all()
    y = x.clone()
    y[1] *= 1e18
    with pytest.raises(ValueError, match=r"audio peak \|x\| = 1e\+18 \(clips \[1\]\) is above 1e\+16, where the "
                                         r"log-mel power overflows float32"):
        rt.get_scene_embeddings(y)


@pytest.mark.parametrize("strategy", ["raw", "mean", "cls"])
@pytest.mark.parametrize("n", [513, 800, 1100])  # 16 ms, 25 ms, 34.4 ms: shorter than the 35 ms token centre
def test_clips_shorter_than_a_token_centre_are_time_stamped_inside_the_clip(strategy, n):
    emb, ts = runtime(strategy).get_timestamp_embeddings(noise(1, 2, n))
    assert emb.shape[1] == 1 and torch.isfinite(emb).all()
    assert ts[0, 0].item() == pytest.approx(1000 * n / SR / 2)  # the clip's middle
    emb, ts = runtime(strategy).get_timestamp_embeddings(noise(1, 2, 1120))  # 35 ms: the token centre fits
    assert ts[0, 0].item() == pytest.approx(35.0)


@pytest.mark.parametrize("option, value, match", [
    ("layer", True, "option layer=True is not an integer"),
    ("layer", float("nan"), "option layer=nan is not an integer"),
    ("layer", "1.5", "option layer='1.5' is not an integer"),
    ("compat", 2, "option compat=2 is not a boolean"),
    ("compat", "abc", "option compat='abc' is not a boolean"),
    ("max_chunks", float("inf"), "option max_chunks=inf is not an integer"),
])
def test_runtime_options_are_validated(tmp_path, option, value, match):
    from hear_gram.checkpoint import save_model
    from hear_gram.runtime import load_runtime

    save_model(GramEncoder(tiny_config()), str(tmp_path))
    with pytest.raises(ValueError, match=match):
        load_runtime("gram_t_patch", str(tmp_path), **{option: value})
    assert load_runtime("gram_t_patch", str(tmp_path), compat=1, layer="1").compat is True


def _whole_clip_reference(rt, x):
    """The runtime as it was before chunked log-mels: the whole clip's log-mel, padded with 0.0, cut into
    chunks, all encoded, raw frames picked (first covering chunk) or concatenated (compat)."""
    lm = rt.logmel(x)
    n, ch, t, f = lm.shape
    c = rt.config
    tok, gt, cf = c.patch[1], c.grid[1], c.chunk_frames
    if rt.compat:
        pad = cf - t % cf
        starts, length = list(range(0, t + pad, cf)), t + pad
    else:
        length, starts, x_out = rt._plan(t, x.shape[-1])
    lm = torch.cat([lm, lm.new_zeros(n, ch, max(length - t, 0), f)], dim=2)
    with torch.no_grad():
        raw = torch.stack([rt.model.pool(rt.model.forward_features(lm[:, :, s:s + cf]), "raw") for s in starts], 1)
    if rt.compat:
        return raw.reshape(n, -1, raw.shape[-1])[:, :len(starts) * gt - int(gt * pad / cf)]
    g = torch.arange(x_out)
    first = torch.tensor([s // tok for s in starts])
    j = torch.searchsorted(first + gt, g, right=True)
    return raw[:, j, g - first[j]]


@pytest.mark.parametrize("compat", [False, True])
@pytest.mark.parametrize("frames", [199, 200, 201, 399, 400, 401, 613])
def test_chunked_front_end_equals_the_whole_clip_path(compat, frames):
    """Clip lengths at chunk boundaries: the chunk-by-chunk log-mel gives the whole-clip path's frames."""
    rt = runtime(compat=compat, max_chunks=2)
    for n in (frames * 320 - 1, frames * 320 + 100):
        x = noise(2, 2, n, seed=n)
        emb = rt.get_timestamp_embeddings(x)[0]
        ref = _whole_clip_reference(rt, x)
        assert emb.shape == ref.shape and rel_err(emb, ref) <= 1e-6


def test_out_dtype_halves_the_timestamp_embeddings_and_keeps_the_scene():
    x = noise(2, 2, int(4.5 * SR))
    ref, ref_ts, ref_scene = runtime().embed(x)
    emb, ts, scene = runtime(out_dtype="fp16").embed(x)
    assert emb.dtype == torch.float16 and ts.dtype == scene.dtype == torch.float32
    assert torch.equal(ts, ref_ts) and torch.equal(scene, ref_scene) and rel_err(emb, ref) < 1e-3
    with pytest.raises(ValueError, match="out_dtype must be one of"):
        runtime(out_dtype="int8")
