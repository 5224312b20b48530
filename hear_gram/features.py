"""Waveform -> log-mel front end of GRAM (gram_spec §1), on `torch.stft` (no torchaudio needed).

Input: float waveform (..., n_samples) at 32 kHz.  Output: log-mel (..., n_frames, 128) float32 with
n_frames = 1 + n_samples // 320 (centre-padded STFT, 10 ms hop).

The recipe is torchaudio's `MelSpectrogram(sample_rate=32000, n_fft=1024, win_length=1024,
hop_length=320, f_min=50, f_max=16000, n_mels=128, power=2)` (periodic Hann window, reflect padding,
HTK mel scale, unnormalised triangles) followed by ln(mel + eps).  The window and the filterbank are
built in float32 exactly as torchaudio builds them, because float64 tables move low-energy bins by up
to 6e-3 (gram_spec §1.1, precision note).

The log offset `eps` is a property of the weights (gram_spec §9 item 1): the official HEAR runtime
used float32 machine epsilon, the official training used 1e-5.  `GramConfig.log_eps` carries it.

Module and buffer names (`spectrogram.window`, `mel_scale.fb`) follow torchaudio's, so that the
`melspec.*` buffers stored in official checkpoints load into this module (gram_spec §3.3).
"""

import math
import numbers

import torch
from torch import nn

FLOAT32_EPS = float(torch.finfo(torch.float32).eps)  # 1.1920928955078125e-07


def _hz_to_mel_htk(f):
    return 2595.0 * math.log10(1.0 + f / 700.0)


def mel_filterbank(n_freqs: int = 513, f_min: float = 50.0, f_max: float = 16000.0, n_mels: int = 128,
                   sample_rate: int = 32000) -> torch.Tensor:
    """HTK mel filterbank (n_freqs, n_mels), float32, no area normalisation (gram_spec §1.1)."""
    all_freqs = torch.linspace(0, sample_rate // 2, n_freqs)  # float32, as torchaudio
    m_pts = torch.linspace(_hz_to_mel_htk(f_min), _hz_to_mel_htk(f_max), n_mels + 2)
    f_pts = 700.0 * (10 ** (m_pts / 2595.0) - 1.0)
    f_diff = f_pts[1:] - f_pts[:-1]  # (n_mels + 1,)
    slopes = f_pts.unsqueeze(0) - all_freqs.unsqueeze(1)  # (n_freqs, n_mels + 2)
    down = -1.0 * slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    return torch.max(torch.zeros(1), torch.min(down, up))


class _Window(nn.Module):
    def __init__(self, n_fft):
        super().__init__()
        self.register_buffer("window", torch.hann_window(n_fft))  # periodic Hann, float32


class _MelScale(nn.Module):
    def __init__(self, fb):
        super().__init__()
        self.register_buffer("fb", fb)


def check_log_eps(value, name: str = "log_eps") -> float:
    """The log offset must be a finite number > 0: 0 gives ln(0) = -inf on silence, a negative or non-finite
    one NaN log-mels (README "Bad input").  Strings (heareval's --model-options) are parsed."""
    v = value
    if isinstance(v, str):
        try:
            v = float(v.strip())
        except ValueError:
            raise ValueError(f"{name}={value!r} is not a number") from None
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise ValueError(f"{name}={value!r} is not a number")
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name}={value!r} must be a finite number > 0 (float32 eps 1.19e-07 for the official "
                         f"weights, 1e-5 for weights trained by training/)")
    return float(v)


def _power(spec: torch.Tensor) -> torch.Tensor:
    """|STFT|^2 as float32: re^2 + im^2 in float64 (2x faster than abs().pow(2), which takes a square root
    first; the float32 result is the same up to float64 round-off, far below float32 resolution)."""
    return (spec.real.square() + spec.imag.square()).to(torch.float32)


class LogMel(nn.Module):
    """(..., n_samples) float waveform -> (..., n_frames, n_mels) log-mel, float32."""

    def __init__(self, sample_rate: int = 32000, n_fft: int = 1024, hop_length: int = 320, n_mels: int = 128,
                 f_min: float = 50.0, f_max: float = None, log_eps: float = FLOAT32_EPS):
        super().__init__()
        self.sample_rate, self.n_fft, self.hop_length, self.n_mels = sample_rate, n_fft, hop_length, n_mels
        self.log_eps = check_log_eps(log_eps)
        f_max = sample_rate // 2 if f_max is None else f_max
        self.spectrogram = _Window(n_fft)
        self.mel_scale = _MelScale(mel_filterbank(n_fft // 2 + 1, f_min, f_max, n_mels, sample_rate))

    @property
    def min_samples(self) -> int:
        """Shortest input the centre-padded STFT accepts (reflect padding needs n_fft/2 + 1 samples)."""
        return self.n_fft // 2 + 1

    def n_frames(self, n_samples: int) -> int:
        return 1 + n_samples // self.hop_length

    def power_mel(self, wave: torch.Tensor) -> torch.Tensor:
        """(..., n_samples) -> mel power (..., n_frames, n_mels), float32."""
        lead = wave.shape[:-1]
        # The STFT runs in float64: float32 FFT round-off in near-silent bins is magnified by ln(. + eps)
        # (measured on the official fixture: relative log-mel error 1.05e-5 in float32, 8.5e-6 in
        # float64, against the official float32 torchaudio output).  The filterbank product stays float32.
        x = wave.reshape(-1, wave.shape[-1]).to(torch.float64)
        spec = torch.stft(x, self.n_fft, hop_length=self.hop_length, win_length=self.n_fft,
                          window=self.spectrogram.window.to(torch.float64), center=True, pad_mode="reflect",
                          normalized=False, onesided=True, return_complex=True)
        power = _power(spec)  # (M, 513, T)
        mel = torch.matmul(power.transpose(-1, -2), self.mel_scale.fb)  # (M, T, n_mels)
        return mel.reshape(*lead, mel.shape[-2], mel.shape[-1])

    def forward(self, wave: torch.Tensor, log_eps: float = None) -> torch.Tensor:
        eps = self.log_eps if log_eps is None else check_log_eps(log_eps)
        return torch.log(self.power_mel(wave) + eps)

    # -- frames of a long clip, a few at a time (bounded memory; same values as the whole-clip path) --
    def segment_length(self, count: int) -> int:
        """Samples of the centre-padded signal that `count` consecutive frames read."""
        return (count - 1) * self.hop_length + self.n_fft

    def segment(self, wave: torch.Tensor, start: int, count: int, n_total: int = None,
                offset: int = 0) -> torch.Tensor:
        """The part of the reflect-padded clip that frames [start, start + count) read, (..., segment_length).

        `wave` holds samples [offset, offset + wave.shape[-1]) of a clip of `n_total` samples (None: the
        length is not known yet, and the frames must not reach the clip's end).  Samples before 0 and after
        the end are reflected as `torch.stft(center=True, pad_mode="reflect")` does; beyond the reflection
        (only frames at or after `n_frames(n_total)` read there) they are 0."""
        half = self.n_fft // 2
        a = start * self.hop_length - half  # clip sample index of the segment's first sample
        b = a + self.segment_length(count)
        have = offset + wave.shape[-1]
        n = have if n_total is None else n_total
        if n_total is None and b > have:
            raise ValueError(f"frames [{start}, {start + count}) need samples up to {b}, only {have} given")

        def take(lo, hi):  # clip samples [lo, hi)
            if lo < offset or hi > have:
                raise ValueError(f"samples [{lo}, {hi}) are not in the given [{offset}, {have})")
            return wave[..., lo - offset:hi - offset]

        parts = []
        if a < 0:  # x[-i] for i in [a, min(b, 0))
            hi = min(b, 0)
            parts.append(take(1 - hi, 1 - a).flip(-1))
        if b > 0 and a < n:
            parts.append(take(max(a, 0), min(b, n)))
        if b > n:  # x[2n - 2 - i] for i in [max(a, n), min(b, end)); the last frame reads up to `end`
            lo, hi = max(a, n), min(b, (self.n_frames(n) - 1) * self.hop_length + half)
            if hi > lo:
                parts.append(take(2 * n - 1 - hi, 2 * n - 1 - lo).flip(-1))
            if b > max(lo, hi):
                parts.append(wave.new_zeros(*wave.shape[:-1], b - max(lo, hi)))
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)

    def segment_logmel(self, segments: torch.Tensor, log_eps: float = None) -> torch.Tensor:
        """Segments (..., segment_length(count)) -> log-mel (..., count, n_mels) float32: the same arithmetic
        as `forward` (float64 STFT, float32 filterbank), frame by frame."""
        lead = segments.shape[:-1]
        x = segments.reshape(-1, segments.shape[-1]).to(torch.float32).to(torch.float64)
        spec = torch.stft(x, self.n_fft, hop_length=self.hop_length, win_length=self.n_fft,
                          window=self.spectrogram.window.to(torch.float64), center=False,
                          normalized=False, onesided=True, return_complex=True)
        power = _power(spec)
        mel = torch.matmul(power.transpose(-1, -2), self.mel_scale.fb)
        eps = self.log_eps if log_eps is None else log_eps
        return torch.log(mel + eps).reshape(*lead, mel.shape[-2], mel.shape[-1])

    def frames(self, wave: torch.Tensor, start: int, count: int, n_total: int = None, offset: int = 0,
               log_eps: float = None, pad_value: float = 0.0) -> torch.Tensor:
        """Log-mel frames [start, start + count) of a clip, (..., count, n_mels), equal to
        `forward(clip)[..., start:start + count, :]`; frames at or after the clip's last frame are
        `pad_value` (the official runtime pads chunks with 0.0 in the log-mel domain).  See `segment`."""
        lm = self.segment_logmel(self.segment(wave, start, count, n_total, offset), log_eps)
        n = offset + wave.shape[-1] if n_total is None else n_total
        inside = self.n_frames(n) - start
        if inside < count:
            lm[..., max(inside, 0):, :] = pad_value
        return lm
