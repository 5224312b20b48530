"""Patch grid, patch targets and fixed 2-D sin-cos positions (gram_spec §2).

A chunk is a normalised log-mel x of shape (B, C, F=128, T=200).  A patch is fshape x tshape
(frequency x time): "patch" 16 x 8 -> grid 8 x 25 = 200 tokens, "time" 128 x 2 -> grid 1 x 100.
Token order is frequency-major: n = f * T' + t (f = 0 is the lowest band).
"""

import numpy as np
import torch


def grid_shape(n_mels: int, n_frames: int, patch: tuple) -> tuple:
    """(F', T') for non-overlapping patches (fshape, tshape)."""
    fshape, tshape = patch
    if n_mels % fshape or n_frames % tshape:
        raise ValueError(f"patch {patch} does not tile a {n_mels} x {n_frames} log-mel chunk")
    return n_mels // fshape, n_frames // tshape


def patchify(x: torch.Tensor, patch: tuple) -> torch.Tensor:
    """(B, C, F, T) -> (B, N, C * fshape * tshape); inside a patch: channel, then frequency, then time
    (gram_spec §2.3)."""
    b, c, f, t = x.shape
    fs, ts = patch
    x = x.reshape(b, c, f // fs, fs, t // ts, ts)  # b c F' fs T' ts
    x = x.permute(0, 2, 4, 1, 3, 5)  # b F' T' c fs ts
    return x.reshape(b, (f // fs) * (t // ts), c * fs * ts)


def unpatchify(p: torch.Tensor, patch: tuple, grid: tuple, channels: int) -> torch.Tensor:
    """Inverse of `patchify`: (B, N, C * fs * ts) -> (B, C, F, T)."""
    b = p.shape[0]
    fs, ts = patch
    gf, gt = grid
    x = p.reshape(b, gf, gt, channels, fs, ts).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, channels, gf * fs, gt * ts)


def _sincos_1d(dim: int, pos: np.ndarray) -> np.ndarray:
    omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
    out = np.einsum("m,d->md", pos.reshape(-1).astype(np.float64), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def sincos_2d(dim: int, grid: tuple, n_cls: int = 0) -> torch.Tensor:
    """Fixed 2-D sin-cos table (1, n_cls + F'*T', dim), float32 (gram_spec §2.4): the first dim/2
    channels encode the time index, the last dim/2 the frequency index; CLS rows are zeros."""
    gf, gt = grid
    t_idx, f_idx = np.meshgrid(np.arange(gt, dtype=np.float64), np.arange(gf, dtype=np.float64))
    table = np.concatenate([_sincos_1d(dim // 2, t_idx), _sincos_1d(dim // 2, f_idx)], axis=1)
    if n_cls:
        table = np.concatenate([np.zeros((n_cls, dim)), table], axis=0)
    return torch.from_numpy(table).float().unsqueeze(0)
