"""Reading audio files and resampling to 32 kHz, for the command line (not used by the HEAR API,
which receives audio at `model.sample_rate`).

`resample` is band-limited interpolation with a Hann-windowed sinc kernel in polyphase form (conv1d with
stride), the method torchaudio's default `resample` uses, so no torchaudio is needed; when the ratio has many
phases (44.1 or 22.05 -> 32 kHz) only each phase's taps inside the window are computed (the same kernel
values). The one resampler of the project: training (corpora, Nat-HEAR) uses it too.
Reading files needs `soundfile` (extra `cli`).
"""

import functools
import math
import os

import numpy as np
import torch
import torch.nn.functional as F

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif")  # soundfile (libsndfile >= 1.1)


def _resample_kernel(orig_sr: int, new_sr: int, lowpass_width: int = 6, rolloff: float = 0.99):
    """-> (up, down, width, kernel (up, 1, 2 * width + down) float64) of the polyphase resampler."""
    if orig_sr <= 0 or new_sr <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_sr} -> {new_sr}")
    g = math.gcd(int(orig_sr), int(new_sr))
    up, down = int(new_sr) // g, int(orig_sr) // g  # output phases, input stride
    base = min(up, down) * rolloff  # cut-off below the lower Nyquist frequency
    width = math.ceil(lowpass_width * down / base)
    idx = torch.arange(-width, width + down, dtype=torch.float64)[None, :] / down
    t = (-torch.arange(up, dtype=torch.float64)[:, None] / up + idx) * base
    t = t.clamp(-lowpass_width, lowpass_width)
    window = torch.cos(t * math.pi / lowpass_width / 2) ** 2
    t = t * math.pi
    sinc = torch.where(t == 0, torch.ones_like(t), torch.sin(t) / torch.where(t == 0, torch.ones_like(t), t))
    return up, down, width, (sinc * window * base / down)[:, None, :]


def resample(x: torch.Tensor, orig_sr: int, new_sr: int, lowpass_width: int = 6, rolloff: float = 0.99):
    """(..., n) at orig_sr -> (..., ceil(n * new_sr / orig_sr)) at new_sr."""
    if orig_sr == new_sr:
        return x
    plan = _polyphase(int(orig_sr), int(new_sr), lowpass_width, rolloff)
    up, down, width = plan[:3]
    lead, n = x.shape[:-1], x.shape[-1]
    if n == 0 or x.numel() == 0:
        return x.new_zeros(*lead, 0)
    rows = x.reshape(-1, n)
    y = _apply_polyphase(F.pad(rows[:, None], (width, width + down))[:, 0], plan)
    return y[:, : math.ceil(up * n / down)].reshape(*lead, -1)


@functools.lru_cache(maxsize=32)
def _polyphase(orig_sr: int, new_sr: int, lowpass_width: int = 6, rolloff: float = 0.99):
    """(up, down, width, K, groups) of a rate pair, cached (a corpus resamples many files at the same rates).

    The dense kernel (up, K) of `_resample_kernel` holds, for output phase i, the taps of input offsets
    -width .. width + down - 1. It is split into groups of consecutive phases [(i0, i1, offset a, float64 taps
    (i1 - i0, w))] whose taps inside the window lie in [a, a + w): with many phases (44.1 or 22.05 -> 32 kHz:
    320 or 640 phases, K = 455) each phase has only ~2 * lowpass_width taps inside the window, so the groups
    skip the zeros (measured 3-10x faster on a CPU core); with few phases (48 -> 32 kHz) it is one group."""
    up, down, width, kernel = _resample_kernel(orig_sr, new_sr, lowpass_width, rolloff)
    kernel = kernel[:, 0]
    K = kernel.shape[1]
    inside = kernel.abs() > 1e-20  # beyond the window a tap is sinc * cos(pi / 2)^2 < 4e-33
    first = inside.float().argmax(1).tolist()
    last = (K - 1 - inside.flip(1).float().argmax(1)).tolist()
    span = max(b - a + 1 for a, b in zip(first, last))
    groups, i0 = [], 0
    while i0 < up:
        a, i1 = first[i0], i0 + 1
        while i1 < up and last[i1] - a < 2 * span:
            i1 += 1
        groups.append((i0, i1, a, kernel[i0:i1, a: max(last[i0:i1]) + 1]))
        i0 = i1
    return up, down, width, K, tuple(groups)


def _apply_polyphase(xp: torch.Tensor, plan) -> torch.Tensor:
    """Rows of padded input (R, m) -> (R, up * ((m - K) // down + 1)): output block q, phase i reads
    xp[q * down : q * down + K] against phase i's taps."""
    up, down, _, K, groups = plan
    nq = (xp.shape[-1] - K) // down + 1
    if len(groups) == 1:  # few phases: one strided conv1d (measured faster than the matmul form here)
        _, _, a, k = groups[0]
        y = F.conv1d(xp[:, None, a:], k.to(xp.device, xp.dtype)[:, None, :], stride=down)[..., :nq].transpose(1, 2)
    else:
        win = xp.unfold(-1, K, down)[:, :nq]  # (R, nq, K): a strided view, no copy
        y = torch.empty(xp.shape[0], nq, up, dtype=xp.dtype, device=xp.device)
        for i0, i1, a, k in groups:  # a matmul per group of phases, over their taps only
            y[:, :, i0:i1] = win[:, :, a: a + k.shape[1]] @ k.to(xp.device, xp.dtype).T
    return y.reshape(xp.shape[0], -1)


def _wav_shortfall(path: str) -> tuple:
    """(declared, present) bytes of a RIFF/WAVE file's data chunk, or None when it is not such a file or its
    header leaves the length open (0 or 0xFFFFFFFF, as streaming writers do).  libsndfile reads a truncated
    wav silently, clamping the frame count to what is there."""
    import struct

    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        size = os.fstat(f.fileno()).st_size
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return None
            cid, n = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"data":
                if n in (0, 0xFFFFFFFF):
                    return None
                return n, size - f.tell()
            f.seek(n + (n & 1), 1)  # chunks are padded to even sizes


def check_wav_length(path: str) -> None:
    """ValueError when a wav file holds fewer data bytes than its header declares."""
    short = _wav_shortfall(path)
    if short and short[1] < short[0]:
        raise ValueError(f"truncated wav: its header declares {short[0]} data bytes, the file holds {short[1]}")


def read_audio(path: str, sample_rate: int = 32000) -> torch.Tensor:
    """File -> (channels, samples) float32 at `sample_rate`; errors say what is wrong with the file."""
    try:
        import soundfile as sf
    except ImportError as e:
        raise ImportError("reading audio files needs soundfile: pip install 'hear_gram[cli]'") from e
    try:
        data, sr = sf.read(path, dtype="float32", always_2d=True)  # (samples, channels)
    except Exception as e:  # soundfile raises LibsndfileError / RuntimeError / TypeError by format
        raise ValueError(f"cannot read audio ({type(e).__name__}: {e})") from None
    if data.shape[0] == 0:
        raise ValueError("the file holds no samples")
    check_wav_length(path)
    if data.shape[1] > 2:
        raise ValueError(f"{data.shape[1]} channels: GRAM takes mono or binaural (2-channel) audio")
    if not np.isfinite(data).all():
        raise ValueError("the file holds NaN or inf samples")
    x = torch.from_numpy(np.ascontiguousarray(data.T))
    return resample(x, sr, sample_rate)


class StreamResampler:
    """`resample` block by block: push (channels, n) blocks, get the output samples they complete; `flush()`
    gives the rest.  The concatenated output equals `resample` of the whole signal up to float32 rounding
    (BLAS blocking of the many-phase matmuls; same kernel, same
    padding; each output sample reads the same 2 * width + down input samples)."""

    def __init__(self, orig_sr: int, new_sr: int):
        self.same = orig_sr == new_sr
        if not self.same:
            self.plan = _polyphase(int(orig_sr), int(new_sr))
            self.up, self.down, self.width, self.k = self.plan[:4]
        self.buf = None  # zero-padded input from the next output position's first sample
        self.channels = 0
        self.n_in = self.n_out = 0

    def _run(self, final: bool):
        k = self.k
        count = (self.buf.shape[1] - k) // self.down + 1 if self.buf.shape[1] >= k else 0
        if final:  # the whole-signal path stops at ceil(up * n / down) samples
            count = min(count, -(-(math.ceil(self.up * self.n_in / self.down) - self.n_out) // self.up))
        if count <= 0:
            return self.buf.new_zeros(self.buf.shape[0], 0)
        x = self.buf[:, :(count - 1) * self.down + k]
        y = _apply_polyphase(x, self.plan)  # (C, count * up): resample's computation
        self.buf = self.buf[:, count * self.down:]
        if final:
            y = y[:, :math.ceil(self.up * self.n_in / self.down) - self.n_out]
        self.n_out += y.shape[1]
        return y

    def push(self, block: torch.Tensor) -> torch.Tensor:
        block = block.float()
        self.channels = block.shape[0]
        if self.same:
            return block
        if self.buf is None:
            self.buf = block.new_zeros(block.shape[0], self.width)
        self.buf = torch.cat([self.buf, block], dim=1)
        self.n_in += block.shape[1]
        return self._run(False)

    def flush(self) -> torch.Tensor:
        if self.same or self.buf is None:
            return torch.zeros(self.channels, 0)
        self.buf = torch.cat([self.buf, self.buf.new_zeros(self.buf.shape[0], self.width + self.down)], dim=1)
        return self._run(True)


def audio_blocks(path: str, sample_rate: int = 32000, block_seconds: float = 16.0):
    """-> (number of samples at `sample_rate`, channels, iterator of (channels, samples) float32 blocks at
    `sample_rate`): a file read block by block with soundfile, resampled on the fly, never whole."""
    try:
        import soundfile as sf
    except ImportError as e:
        raise ImportError("reading audio files needs soundfile: pip install 'hear_gram[cli]'") from e
    try:
        info = sf.info(path)
    except Exception as e:
        raise ValueError(f"cannot read audio ({type(e).__name__}: {e})") from None
    if info.frames <= 0:
        raise ValueError("the file holds no samples")
    if info.channels > 2:
        raise ValueError(f"{info.channels} channels: GRAM takes mono or binaural (2-channel) audio")
    check_wav_length(path)
    n_out = info.frames if info.samplerate == sample_rate else math.ceil(info.frames * sample_rate / info.samplerate)

    def blocks():
        rs = StreamResampler(info.samplerate, sample_rate)
        size = max(1, int(block_seconds * info.samplerate))
        read = 0
        with sf.SoundFile(path) as f:
            for data in f.blocks(blocksize=size, dtype="float32", always_2d=True):
                if not np.isfinite(data).all():
                    raise ValueError(f"the file holds NaN or inf samples (after sample {read})")
                read += data.shape[0]
                yield rs.push(torch.from_numpy(np.ascontiguousarray(data.T)))
        if read != info.frames:
            raise ValueError(f"the file ends after {read} of the {info.frames} samples its header declares")
        yield rs.flush()

    return n_out, info.channels, blocks()
