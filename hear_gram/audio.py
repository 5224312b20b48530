"""Reading audio files and resampling to 32 kHz, for the command line (not used by the HEAR API,
which receives audio at `model.sample_rate`).

`resample` is band-limited interpolation with a Hann-windowed sinc kernel in polyphase form
(conv1d with stride), the method torchaudio's default `resample` uses, so no torchaudio is needed.
Reading files needs `soundfile` (extra `cli`).
"""

import math
import os

import numpy as np
import torch
import torch.nn.functional as F

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif")


def resample(x: torch.Tensor, orig_sr: int, new_sr: int, lowpass_width: int = 6, rolloff: float = 0.99):
    """(..., n) at orig_sr -> (..., ceil(n * new_sr / orig_sr)) at new_sr."""
    if orig_sr == new_sr:
        return x
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
    kernel = (sinc * window * base / down).to(x.dtype)[:, None, :]  # (up, 1, K)
    lead, n = x.shape[:-1], x.shape[-1]
    y = F.conv1d(F.pad(x.reshape(-1, 1, n), (width, width + down)), kernel.to(x.device), stride=down)
    y = y.transpose(1, 2).reshape(x.numel() // n if n else 0, -1)
    return y[:, : math.ceil(up * n / down)].reshape(*lead, -1)


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
    short = _wav_shortfall(path)
    if short and short[1] < short[0]:
        raise ValueError(f"truncated wav: its header declares {short[0]} data bytes, the file holds {short[1]}")
    if data.shape[1] > 2:
        raise ValueError(f"{data.shape[1]} channels: GRAM takes mono or binaural (2-channel) audio")
    if not np.isfinite(data).all():
        raise ValueError("the file holds NaN or inf samples")
    x = torch.from_numpy(np.ascontiguousarray(data.T))
    return resample(x, sr, sample_rate)
