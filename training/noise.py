"""Background noise clips (mono, 32 kHz): procedural white / pink / brown / babble, or a user folder (WHAMR!).

Every clip is cut to at most `n` samples (random crop), given 200 ms linear fades in and out (paper §3.3),
RMS-normalised to -14 dBFS (spec §7.2, HEAD) and, if shorter than `n`, placed at a random start in a zero
buffer. `make_noise` returns (noise (n,) float32, start, length, type).

Batched form (what the numpy backend of `SceneSynth.sample` uses): `draw_noise` makes every random draw of
`make_noise`, in the same order, but leaves the FFT shaping of procedural noise undone (a `Pending` recipe);
`render_pending` then shapes all recipes of a batch with one rfft/irfft. `make_noise` is draw + render of one
clip.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .sources import FS, FolderSource, rms_normalize

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


def babble(n: int, rng: np.random.Generator, speech: list | None, normalized: bool = False) -> np.ndarray:
    """4-8 talkers, each a chain of random utterances from `speech` ([(id, clip)]; `normalized`: the clips are
    already at -14 dBFS); speech-shaped modulated noise when no speech is available."""
    out = np.zeros(n, np.float32)
    talkers = int(rng.integers(4, 9))
    if not speech:
        p = _babble_noise(n, rng, talkers)
        return np.einsum("tn,tn->n", _shape(p.z, p.exponent), p.env).astype(np.float32)
    for _ in range(talkers):
        pos = int(rng.integers(-n // 2, n // 4))
        while pos < n:
            clip = speech[int(rng.integers(len(speech)))][1]
            clip = clip if normalized else rms_normalize(clip)
            a, b = max(pos, 0), min(pos + len(clip), n)
            if b > a:
                out[a:b] += clip[a - pos: b - pos]
            pos += len(clip) + int(rng.integers(0, FS // 4))
    return out


@dataclass
class Pending:
    """Procedural noise with its random draws made but its spectral shaping not yet done.

    z: (rows, n) white normals (float32); the clip is sum_r colored(z_r, exponent) * env_r (env None: one row,
    no envelope), then faded and RMS-normalised. Keeping the draws here lets a batch share one FFT call."""
    z: np.ndarray
    exponent: float
    env: np.ndarray | None = None


def _babble_noise(n: int, rng: np.random.Generator, talkers: int) -> Pending:
    """Babble without speech: per talker, 25 ms on/off "syllables" smoothed by a 50 ms Hann window, modulating
    pink noise. Draw order per talker as before: syllables, then the talker's normals."""
    on, z = [], []
    for _ in range(talkers):
        on.append(rng.random(n // 800 + 1) < 0.6)
        z.append(rng.standard_normal(n).astype(np.float32))
    return Pending(np.stack(z), 1.0, syllable_envelope(np.asarray(on), n).astype(np.float32))


def syllable_taps(block: int) -> np.ndarray:
    """(3, block) float64 polyphase taps of syllable_envelope: box(block) ⊛ hann(2 block) / block, zero-padded
    to 3 block samples and split into its three block-long phases (shared by the torch renderer)."""
    g = np.convolve(np.ones(block), np.hanning(2 * block) / block)  # (3 * block - 1,)
    return np.pad(g, (0, 1)).reshape(3, block)


def syllable_envelope(on: np.ndarray, n: int, block: int = 800) -> np.ndarray:
    """np.convolve(np.repeat(on, block)[:n], np.hanning(2 * block) / block, mode="same") for rows of block
    flags (talkers, blocks), without the 1600-tap direct convolution (the old per-talker cost).

    The input is constant over blocks, so the output is polyphase: with g = box(block) ⊛ window,
    full[k * block + r] = sum_j on[k - j] * g[j * block + r], three taps per sample. Inputs whose length is
    not a whole number of blocks take the overlap-add route."""
    if n % block:
        from scipy.signal import oaconvolve
        w = np.hanning(2 * block) / block
        return oaconvolve(np.repeat(on, block, axis=-1)[:, :n].astype(np.float64), w[None], mode="same", axes=1)
    nb = n // block
    v = on[:, :nb].astype(np.float64)
    g = syllable_taps(block)
    full = np.zeros((len(on), nb + 2, block))  # full convolution, length n + 2 * block (last sample unused)
    for j in range(3):
        full[:, j: j + nb] += v[:, :, None] * g[j]
    off = (2 * block - 1) // 2  # np.convolve "same": centred on the full result
    return full.reshape(len(on), -1)[:, off: off + n]


def fft_workers() -> int:
    """Threads for scipy.fft on the CPU: follow torch's intra-op setting (scene workers set it to 1), so one knob
    caps every thread pool of the synthesizer."""
    return max(1, torch.get_num_threads())


def spectral_weights(n: int, exponent: float) -> np.ndarray:
    """Amplitude weights of colored() for an n-point rfft: f^(-exponent/2), f floored at 20 Hz, DC removed."""
    f = np.fft.rfftfreq(n, 1 / FS)
    w = np.maximum(f, 20.0) ** (-exponent / 2)
    w[0] = 0
    return w


def _shape(z: np.ndarray, exponent: float) -> np.ndarray:
    """colored() on rows of float32 normals, with scipy.fft."""
    import scipy.fft as sfft
    n = z.shape[-1]
    spec = sfft.rfft(z, axis=-1, workers=fft_workers())
    spec *= spectral_weights(n, exponent).astype(np.float32)
    return sfft.irfft(spec, n, axis=-1, workers=fft_workers())


def render_pending(items: list) -> list:
    """Finish `Pending` recipes on the CPU: one batched FFT per spectral exponent, then envelopes, fade and
    -14 dBFS RMS. Returns (n,) float32 arrays in order. (The torch backend shapes noise on its device itself,
    training/scene_device.py.)"""
    out = [None] * len(items)
    for e in sorted({p.exponent for p in items}):
        idx = [i for i, p in enumerate(items) if p.exponent == e]
        shaped = _shape(np.concatenate([items[i].z for i in idx]), e)
        r = 0
        for i in idx:
            k = len(items[i].z)
            x = shaped[r] if items[i].env is None else np.einsum("tn,tn->n", shaped[r: r + k], items[i].env)
            out[i] = rms_normalize(fade(np.asarray(x, np.float32)))
            r += k
    return out


def draw_noise(rng: np.random.Generator, n: int, kind: str, speech=None, folder: FolderSource | None = None,
               normalized_speech: bool = False):
    """The random part of make_noise: (noise, start, length, type) where noise is a finished (n,) float32 array
    (folder clips, babble from speech) or a `Pending` full-length procedural clip (start 0, length n)."""
    if kind == "folder":
        got = folder.draw(rng) if folder is not None and len(folder) else None
        if got is None:
            kind = "pink"
        else:
            name, x = got
            kind = f"folder:{name}"
    if not kind.startswith("folder:"):
        if kind == "babble" and speech:
            x = babble(n, rng, speech, normalized_speech)
        else:
            if kind == "babble":
                p = _babble_noise(n, rng, int(rng.integers(4, 9)))
            else:
                p = Pending(rng.standard_normal(n).astype(np.float32)[None],
                            {"white": 0.0, "pink": 1.0, "brown": 2.0}[kind])
            rng.integers(0, 1)  # the placement draw of a full-length clip (always 0), kept for the stream
            return p, 0, n, kind
    if len(x) > n:
        s = int(rng.integers(0, len(x) - n + 1))
        x = x[s: s + n]
    x = rms_normalize(fade(np.asarray(x, np.float32)))
    start = int(rng.integers(0, n - len(x) + 1))
    out = np.zeros(n, np.float32)
    out[start: start + len(x)] = x
    return out, start, len(x), kind


def make_noise(rng: np.random.Generator, n: int, kind: str, speech=None, folder: FolderSource | None = None):
    """(noise (n,), start, length, type). kind: one of PROCEDURAL or "folder"."""
    x, start, length, kind = draw_noise(rng, n, kind, speech, folder)
    if isinstance(x, Pending):
        x = render_pending([x])[0]
    return x, start, length, kind
