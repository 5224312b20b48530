"""Background noise clips (mono, 32 kHz): procedural white / pink / brown / babble, or a user folder (WHAMR!).

Every clip is cut to at most `n` samples (random crop), given 200 ms linear fades in and out (paper §3.3),
RMS-normalised to -14 dBFS (spec §7.2, HEAD) and, if shorter than `n`, placed at a random start in a zero
buffer. `make_noise` returns (noise (n,) float32, start, length, type).
"""
from __future__ import annotations

import numpy as np

from .sources import FolderSource, rms_normalize

FS = 32000
FADE_S = 0.2
PROCEDURAL = ("white", "pink", "brown", "babble")


def fade(x: np.ndarray, fs: int = FS, fade_s: float = FADE_S) -> np.ndarray:
    """200 ms linear fade-in and fade-out (shortened for clips under 0.4 s)."""
    w = min(int(fade_s * fs), len(x) // 2)
    if w > 0:
        x = x.copy()
        ramp = np.linspace(0.0, 1.0, w, dtype=np.float32)
        x[:w] *= ramp
        x[-w:] *= ramp[::-1]
    return x


def colored(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Noise with power spectrum ~ 1/f^exponent (0 white, 1 pink, 2 brown), FFT-shaped, DC removed."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / FS)
    spec *= np.maximum(f, 20.0) ** (-exponent / 2)
    spec[0] = 0
    return np.fft.irfft(spec, n).astype(np.float32)


def babble(n: int, rng: np.random.Generator, speech: list | None) -> np.ndarray:
    """4-8 talkers, each a chain of random utterances from `speech` ([(id, clip)]); speech-shaped
    modulated noise when no speech is available."""
    out = np.zeros(n, np.float32)
    talkers = int(rng.integers(4, 9))
    if not speech:
        for _ in range(talkers):
            syll = np.repeat(rng.random(n // 800 + 1) < 0.6, 800)[:n]  # 25 ms on/off "syllables"
            out += colored(n, 1.0, rng) * np.convolve(syll, np.hanning(1600) / 800, mode="same")
        return out
    for _ in range(talkers):
        pos = int(rng.integers(-n // 2, n // 4))
        while pos < n:
            clip = speech[int(rng.integers(len(speech)))][1]
            clip = rms_normalize(clip)
            a, b = max(pos, 0), min(pos + len(clip), n)
            if b > a:
                out[a:b] += clip[a - pos: b - pos]
            pos += len(clip) + int(rng.integers(0, FS // 4))
    return out


def make_noise(rng: np.random.Generator, n: int, kind: str, speech=None, folder: FolderSource | None = None):
    """(noise (n,), start, length, type). kind: one of PROCEDURAL or "folder"."""
    if kind == "folder":
        got = folder.draw(rng) if folder is not None and len(folder) else None
        if got is None:
            kind = "pink"
        else:
            name, x = got
            kind = f"folder:{name}"
    if not kind.startswith("folder:"):
        if kind == "babble":
            x = babble(n, rng, speech)
        else:
            x = colored(n, {"white": 0.0, "pink": 1.0, "brown": 2.0}[kind], rng)
    if len(x) > n:
        s = int(rng.integers(0, len(x) - n + 1))
        x = x[s: s + n]
    x = rms_normalize(fade(np.asarray(x, np.float32)))
    start = int(rng.integers(0, n - len(x) + 1))
    out = np.zeros(n, np.float32)
    out[start: start + len(x)] = x
    return out, start, len(x), kind
