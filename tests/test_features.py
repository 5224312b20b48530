import pytest
import torch

from hear_gram.features import FLOAT32_EPS, LogMel, mel_filterbank

from conftest import official_state_dict, rel_err


def test_filterbank_and_window_equal_official_buffers():
    fixed = official_state_dict("gramt_frame")
    m = LogMel()
    assert torch.equal(m.mel_scale.fb, fixed["mel_spec.melspec.mel_scale.fb"])
    assert torch.equal(m.spectrogram.window, fixed["mel_spec.melspec.spectrogram.window"])


@pytest.mark.parametrize("kind", ["binaural", "mono"])
def test_logmel_parity(official, kind):
    e = official.expected("gramt_frame")
    lm = LogMel(log_eps=FLOAT32_EPS)(e[f"audio_{kind}"])
    ref = e[f"{kind}_logmel"]
    if kind == "mono":  # the official runtime duplicates mono features to both ears
        lm = lm[:, None].expand(-1, 2, -1, -1)
    assert lm.shape == ref.shape
    err = rel_err(lm, ref)
    print(f"logmel {kind}: rel {err:.2e} max abs {(lm - ref).abs().max().item():.2e}")
    assert err <= 1e-5


def test_frame_count_and_layout():
    m = LogMel()
    for n in (513, 32000, 64000, 105600):
        out = m(torch.randn(3, 2, n))
        assert out.shape == (3, 2, 1 + n // 320, 128) and out.dtype == torch.float32


def test_log_eps_is_the_floor():
    m = LogMel(log_eps=1e-5)
    out = m(torch.zeros(1, 2048))
    assert torch.allclose(out, torch.full_like(out, torch.log(torch.tensor(1e-5)).item()))


def test_matches_torchaudio_when_installed():
    ta = pytest.importorskip("torchaudio")
    x = torch.randn(2, 48000) * 0.1
    ref = ta.transforms.MelSpectrogram(sample_rate=32000, n_fft=1024, win_length=1024, hop_length=320,
                                       f_min=50, f_max=16000, n_mels=128, power=2.0)
    assert torch.equal(mel_filterbank(), ref.mel_scale.fb)
    ours = LogMel(log_eps=1e-5)(x)
    theirs = torch.log(ref(x) + 1e-5).transpose(-1, -2)
    assert rel_err(ours, theirs) < 1e-5


@pytest.mark.parametrize("n", [513, 833, 64000, 64192, 64320, 64321, 128000 + 7])
def test_frames_of_a_segment_equal_the_whole_clip(n):
    """Chunked log-mel (each chunk's STFT reads only its segment, reflected at the clip's ends) equals the
    whole-clip log-mel at every chunk boundary; frames after the clip's last one are the 0.0 padding."""
    m = LogMel()
    x = torch.rand(2, 2, n, generator=torch.Generator().manual_seed(n)) * 2 - 1
    full = m(x)
    t = full.shape[-2]
    for start in sorted({0, max(t - 200, 0), 199, 200, 201, t - 1, t // 2}):
        if not 0 <= start < t:
            continue
        got = m.frames(x, start, 200, n)
        k = min(200, t - start)
        assert torch.equal(got[..., :k, :], full[..., start:start + k, :])
        assert torch.all(got[..., k:, :] == 0.0)
        lo = max(0, min(start * 320 - 512, n - 513))  # only the samples the frames read
        assert torch.equal(m.frames(x[..., lo:], start, 200, n, offset=lo), got)
    with pytest.raises(ValueError, match="not in the given"):
        m.frames(x[..., 1000:], 0, 200, n, offset=1000)
