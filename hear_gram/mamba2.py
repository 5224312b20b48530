"""GRAM-M encoder: a pure-PyTorch Mamba2 stack, state-dict compatible with mamba_ssm 2.2.5.

Implements gram_spec §3.2 (Mamba2 `MixerModel` as built by the official GRAM-M code):

    x (B, L, 768), CLS + positional embeddings already added
      -> 24 x [RMSNorm -> Mamba2 mixer] with a float32 residual stream
      -> final RMSNorm                                               -> (B, L, 768)

Key names equal the official ones under `encoder_v.` (gram_spec Appendix A.3; the encoder holds it
as `backbone.`, see checkpoint.RENAMES):
`layers.{i}.norm.weight`, `layers.{i}.mixer.{in_proj.weight, conv1d.weight, conv1d.bias, dt_bias,
A_log, D, norm.weight, out_proj.weight}`, `norm_f.weight`.

Scan. The selective state-space recurrence (spec §3.2 step 4) is evaluated in its quadratic
"state-space duality" (SSD) form, like causal attention (`ssd_chunked`).  At GRAM's lengths (<= 201
tokens) and state size (128) that form costs fewer FLOPs than passing states between chunks, and
its decay factorises into per-token factors taken from one cumulative sum, so all heads share one
(L x L) matrix C B^T and one matmul: no per-head L x L decay matrices (the element-wise work that
made the first version 2.6x slower than GRAM-T on CPU, issue 18).  `ssd_ref` is the plain
sequential recurrence (a Python loop over time) kept beside it as the oracle for tests, as
mamba_ssm keeps `*_ref` twins of its kernels.  Without autograd, the norms, the conv and the scan
work in place on few buffers (inference); with autograd the same arithmetic runs out of place.

Kernels.  On CUDA, when `mamba_ssm` is importable, the mixer can instead call mamba_ssm's kernels
with the same parameters: the fused `mamba_split_conv1d_scan_combined` (what the official model
runs; it needs causal_conv1d's CUDA extension), else the Triton scan `mamba_chunk_scan_combined`
between torch conv/norm/projections.  They are opt-in: `use_kernels=True`, or `use_kernels=None`
(the default) with the environment variable `HEAR_GRAM_MAMBA_KERNELS=1`; otherwise the pure path
runs.  At GRAM's lengths (<= 201 tokens) the pure path, in its previous per-head form, was
already the faster one on an H100 (24-layer forward of (8, 201, 768): 22 vs 33 ms fp32, 28 vs
38 ms bf16 autocast; bf16 training step of (512, 41, 768): 265 vs 328 ms, Triton scan route) and
the more exact one (fp32 rel err 1e-7 vs 3e-5); benchmarks/gpu_mamba_check.py re-measures both
(not yet run on this version).  The choice is made once per mixer; the kernel is only used for
CUDA inputs (CPU inputs always take the pure path).  mamba_ssm is imported lazily, so this file
imports on machines without Triton or CUDA.

Dtypes.  Parameters may be float32/float64/bfloat16; autocast is supported.  The scan, softplus,
both RMSNorms and the residual stream run in float32 (float64 for float64 inputs), as in
mamba_ssm's kernels and reference functions.
"""
from __future__ import annotations

import math
import os
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "RMSNorm",
    "RMSNormGated",
    "Mamba2Mixer",
    "MambaBlock",
    "MambaEncoder",
    "ssd_chunked",
    "ssd_ref",
    "kernels_available",
]

KERNEL_ENV = "HEAR_GRAM_MAMBA_KERNELS"


# --------------------------------------------------------------------------------------------
# Norms
# --------------------------------------------------------------------------------------------
def _autograd(*tensors: Optional[torch.Tensor]) -> bool:
    """True when autograd records ops on any of `tensors` (then no in-place shortcuts)."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


class RMSNorm(nn.Module):
    """y = x / sqrt(mean(x^2) + eps) * weight over the last dim, computed in float32 (gram_spec §3.2).

    Same state dict as mamba_ssm.ops.triton.layer_norm.RMSNorm (`weight` only).
    Output dtype = input dtype.
    """

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float() if x.dtype != torch.float64 else x
        if not _autograd(x, self.weight):  # inference: one new tensor, updated in place
            ms = torch.linalg.vector_norm(xf, dim=-1, keepdim=True).square_().div_(xf.shape[-1])
            return (xf * ms.add_(self.eps).rsqrt_()).mul_(self.weight.to(xf.dtype)).to(x.dtype)
        rstd = torch.rsqrt(xf.square().mean(dim=-1, keepdim=True) + self.eps)
        return (xf * rstd * self.weight.to(xf.dtype)).to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


class RMSNormGated(nn.Module):
    """Gated RMSNorm of the Mamba2 mixer (mamba_ssm layernorm_gated.RMSNorm, gram_spec §3.2 step 5).

    norm_before_gate=False (the official setting): g = y * silu(z); out = rmsnorm(g) * weight,
    the mean taken over groups of `group_size` channels (GRAM-M: one group of d_inner = 1536).
    Computed in float32; output dtype = dtype of `y`.
    """

    def __init__(self, dim: int, eps: float = 1e-5, group_size: Optional[int] = None,
                 norm_before_gate: bool = False):
        super().__init__()
        self.eps = eps
        self.group_size = dim if group_size is None else group_size
        assert dim % self.group_size == 0, (dim, self.group_size)
        self.norm_before_gate = norm_before_gate
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        cdt = torch.float64 if y.dtype == torch.float64 else torch.float32
        yf, zf = y.to(cdt), z.to(cdt)
        if not self.norm_before_gate and not _autograd(y, z, self.weight):
            # inference: the same arithmetic in place on one buffer (5 passes, no new tensors)
            g = F.silu(zf).mul_(yf)
            shape = g.shape
            gg = g.view(*shape[:-1], shape[-1] // self.group_size, self.group_size)
            ms = torch.linalg.vector_norm(gg, dim=-1, keepdim=True).square_().div_(self.group_size)
            gg.mul_(ms.add_(self.eps).rsqrt_())
            return g.mul_(self.weight.to(cdt)).to(y.dtype)
        if not self.norm_before_gate:
            yf = yf * F.silu(zf)
        shape = yf.shape
        g = yf.reshape(*shape[:-1], shape[-1] // self.group_size, self.group_size)
        g = g * torch.rsqrt(g.square().mean(dim=-1, keepdim=True) + self.eps)
        out = g.reshape(shape) * self.weight.to(cdt)
        if self.norm_before_gate:
            out = out * F.silu(zf)
        return out.to(y.dtype)

    def extra_repr(self) -> str:
        return (f"{self.weight.shape[0]}, eps={self.eps}, group_size={self.group_size}, "
                f"norm_before_gate={self.norm_before_gate}")


# --------------------------------------------------------------------------------------------
# SSD scan: chunked (main path) and sequential reference
# --------------------------------------------------------------------------------------------
# Exponent limits of the factorised decay, per compute dtype: (largest log-decay range inside one
# query block, log-decay below which a key's contribution is dropped).  Every factor is then in
# [e^-cut, e^(range/2)] (float32: [1.8e-35, 2.4e17], far from overflow and denormals), and a
# dropped contribution is below e^(range/2 - cut) (float32: 4e-18) of a kept one.
_EXP_LIMITS = {torch.float32: (80.0, 80.0), torch.float64: (600.0, 600.0)}


def _query_blocks(cs: np.ndarray, chunk_size: int, max_range: float, cut: float) -> list:
    """Split the L query positions into blocks [(s, e, k0)]: queries s..e-1 read keys k0..e-1.

    cs: (b, L, h) cumulative log-decays of some heads (non-increasing along L).  A block is at most
    `chunk_size` long and its range cs[s] - cs[e-1] is <= max_range for every (batch, head)
    (a single step may exceed it: such a block has one query).  k0 skips the leading keys whose
    decay to the block's reference (see `ssd_chunked`) is below e^-cut for every (batch, head).
    """
    L = cs.shape[1]
    blocks, s = [], 0
    while s < L:
        e = min(L, s + chunk_size)
        spread = (cs[:, s:s + 1] - cs[:, s:e]).max(axis=(0, 2))  # (e - s,), non-decreasing
        e = s + max(1, int((spread <= max_range).sum()))
        k0 = 0
        if s > 0:
            ref = 0.5 * (cs[:, s] + cs[:, e - 1])  # (b, h)
            kept = (ref[:, None] - cs[:, :s]).max(axis=(0, 2)) >= -cut  # (s,), non-decreasing
            k0 = s - int(kept.sum())
        blocks.append((s, e, k0))
        s = e
    return blocks


def _ssd_plan(cs: np.ndarray, ngroups: int, chunk_size: int, max_range: float, cut: float) -> list:
    """Head sets that share one block plan: [(heads, group, blocks)], heads a list of head indices.

    Heads decay at very different rates (GRAM-M: total log-decay over 201 tokens from ~1 to ~300
    per head), and a block must fit the fastest head it serves.  So the heads of each B/C group are
    binned by their total decay range R (bin 0: R <= max_range, one block; bin k: R <= 2^k
    max_range) and each bin gets its own blocks: slow heads keep long blocks, fast ones get short,
    banded ones.  The slowest bin of each group comes first.
    """
    b, L, h = cs.shape
    hg = h // ngroups
    span = (cs[:, 0] - cs[:, -1]).max(axis=0)  # (h,) total decay range per head
    bins = np.ceil(np.log2(np.maximum(span, max_range) / max_range)).astype(int)
    plan = []
    for gi in range(ngroups):
        for k in sorted(set(bins[gi * hg:(gi + 1) * hg].tolist())):
            heads = [j for j in range(gi * hg, (gi + 1) * hg) if bins[j] == k]
            plan.append((heads, gi, _query_blocks(cs[:, :, heads], chunk_size, max_range, cut)))
    return plan


def _block_factors(cs, dt, s: int, e: int, k0: int, cut: float, cdt: torch.dtype):
    """Decay factors of one block of `ssd_chunked`, from float64 cumulative log-decays cs (b, L, nh):
    q (b, e-s, nh) = exp(cs_i - r) and k (b, e-k0, nh) = exp(r - cs_j) dt_j, r the middle of the
    block's range, keys below e^-cut set to 0; returned as `cdt` tensors.  cs and dt are NumPy
    arrays (inference on CPU: cheap single-threaded work on small arrays) or tensors (autograd, CUDA).
    """
    ref = 0.5 * (cs[:, s:s + 1] + cs[:, e - 1:e])  # (b, 1, nh)
    lq, lk = cs[:, s:e] - ref, ref - cs[:, k0:e]  # lk <= max_range / 2
    if isinstance(cs, np.ndarray):
        lk[lk < -cut] = -np.inf
        npt = np.float64 if cdt == torch.float64 else np.float32
        return (torch.from_numpy(np.ascontiguousarray(np.exp(lq), dtype=npt)),
                torch.from_numpy(np.ascontiguousarray(np.exp(lk) * dt[:, k0:e], dtype=npt)))
    lk = lk.masked_fill(lk < -cut, float("-inf"))
    return torch.exp(lq).to(cdt), (torch.exp(lk) * dt[:, k0:e]).to(cdt)


# Rows of one (causal) matmul: a block of queries is multiplied in slices of this many rows, each
# with only the keys up to its last row (GRAM's 201 tokens: ~0.65 of the full square's work).
# Measured on CPU (1 thread, the scan inputs of 4 layers of GRAM-M at its initialisation, 8 chunks):
# 52 ms per layer with 201-row products, 41 ms with 101, 67, 50 or 34 rows (flat in between).
ROW_BLOCK = 64


def ssd_chunked(x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                C: torch.Tensor, D: Optional[torch.Tensor] = None,
                chunk_size: int = 256, row_block: Optional[int] = None) -> torch.Tensor:
    """Selective SSM scan in its quadratic "state-space duality" (SSD) form (gram_spec §3.2 step 4).

    x: (b, L, h, p); dt: (b, L, h), already softplus'ed and > 0; A: (h,), negative;
    B, C: (b, L, g, n) with h % g == 0; D: (h,) or None.  Returns y: (b, L, h, p) in x.dtype.

    Recurrence (S_0 = 0): S_t = exp(dt_t A) S_{t-1} + dt_t x_t (x) B_t;  y_t = S_t C_t + D x_t, i.e.

        y_i = sum_{j <= i} (C_i . B_j) exp(cs_i - cs_j) dt_j x_j + D x_i,   cs_i = sum_{k <= i} dt_k A.

    The decay factorises: exp(cs_i - cs_j) = exp(cs_i - r) exp(r - cs_j) for any reference r, so
    for a block of queries the head-dependent part moves onto the (L, heads*headdim) operands and
    the (L x L) matrix tril(C B^T) is shared by all heads of a B/C group: one matmul per block,
    (Lq x Lk) @ (Lk x heads*headdim), and no per-head L x L decay matrix.  The cumulative sum is
    taken once, in float64, so the factors are exact to the compute dtype whatever the decay.
    Queries are cut into blocks of at most `chunk_size` whose decay range stays within
    `_EXP_LIMITS` (r = the middle of that range), per set of heads with similar decay
    (`_ssd_plan`); keys whose decay to a block has underflowed for every head of the set are
    skipped, so strong decay makes the work banded instead of overflowing.  Each block's matmul
    runs in slices of `row_block` (default ROW_BLOCK) rows that stop at their last key (causal).
    The plan is made on the CPU (one small device-to-host copy per call on CUDA).  The slowest
    head set of a group is computed for all its heads (the others without decay, a finite stand-in)
    and the other sets overwrite their heads, which spares gathering and scattering most of the data.
    Computed in float32 (float64 for float64 input) with autocast disabled.
    """
    out_dtype = x.dtype
    cdt = torch.float64 if x.dtype == torch.float64 else torch.float32
    b, L, h, p = x.shape
    g, n = B.shape[2], B.shape[3]
    hg = h // g
    assert h % g == 0, (h, g)
    max_range, cut = _EXP_LIMITS[cdt]
    rows = max(1, row_block or ROW_BLOCK)
    with torch.autocast(device_type=x.device.type, enabled=False):
        x, dt, A, B, C = (t.to(cdt) for t in (x, dt, A, B, C))
        # without autograd, results are written into one output buffer instead of concatenated
        direct = not _autograd(x, dt, A, B, C, D)
        cs = torch.cumsum(dt.double() * A.double(), dim=1)  # (b, L, h): one cumulative sum
        cs_host = cs.detach().cpu().numpy()
        plan = _ssd_plan(cs_host, g, max(1, chunk_size), max_range, cut)
        if direct and x.device.type == "cpu":  # factors in NumPy: no small multi-threaded torch ops
            cs, dt = cs_host, dt.numpy()
        CB = torch.matmul(C.transpose(1, 2), B.permute(0, 2, 3, 1)).tril()  # (b, g, L, L), causal
        y = x.new_empty(b, L, h, p) if direct or g > 1 else None
        for i, (heads, gi, blocks) in enumerate(plan):
            first = i == 0 or plan[i - 1][1] != gi  # the group's slowest set: all of its heads
            if first:
                sel = slice(gi * hg, (gi + 1) * hg)
                xs, css, dts = x[:, :, sel], cs[:, :, sel], dt[:, :, sel]
                if len(heads) < hg:  # heads of later sets: computed with no decay (finite), then
                    keep = np.zeros(hg, dtype=bool)  # overwritten by their own set
                    keep[[j - gi * hg for j in heads]] = True
                    if isinstance(css, np.ndarray):
                        css = np.where(keep, css, 0.0)
                    else:
                        css = css.masked_fill(torch.from_numpy(~keep).to(x.device), 0.0)
            else:
                sel = torch.tensor(heads, device=x.device)
                xs = x.index_select(2, sel)
                if isinstance(cs, np.ndarray):
                    css, dts = cs[:, :, heads], dt[:, :, heads]
                else:
                    css, dts = cs.index_select(2, sel), dt.index_select(2, sel)
            nh = xs.shape[2]
            pieces = []
            for s, e, k0 in blocks:
                q, k = _block_factors(css, dts, s, e, k0, cut, cdt)
                V = (k.unsqueeze(-1) * xs[:, k0:e]).view(b, e - k0, nh * p)  # contiguous
                for r0 in range(s, e, rows):
                    r1 = min(e, r0 + rows)
                    yb = torch.matmul(CB[:, gi, r0:r1, k0:r1], V[:, :r1 - k0])
                    yb = yb.view(b, r1 - r0, nh, p)
                    qb = q[:, r0 - s:r1 - s].unsqueeze(-1)
                    if not direct:
                        pieces.append(yb * qb)
                    elif first:
                        torch.mul(yb, qb, out=y[:, r0:r1, sel])
                    else:
                        y[:, r0:r1].index_copy_(2, sel, yb * qb)
            if direct:
                continue
            ys = pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=1)  # (b, L, nh, p)
            if y is None:
                y = ys
            elif first:
                y[:, :, sel] = ys
            else:
                y.index_copy_(2, sel, ys)
        if D is not None:
            if direct:
                y.addcmul_(x, D.to(cdt).view(h, 1))
            else:
                y = y + D.to(cdt).view(h, 1) * x
    return y.to(out_dtype)


def ssd_ref(x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
            C: torch.Tensor, D: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Sequential reference of `ssd_chunked` (same arguments): a Python loop over time steps.

    Runs in the dtype of x (use float64 for a tight reference).  Slow; for tests only.
    """
    b, L, h, p = x.shape
    g, n = B.shape[2], B.shape[3]
    Bh = B.repeat_interleave(h // g, dim=2).to(x.dtype)  # (b, L, h, n)
    Ch = C.repeat_interleave(h // g, dim=2).to(x.dtype)
    dt, A = dt.to(x.dtype), A.to(x.dtype)
    S = x.new_zeros(b, h, p, n)
    ys = []
    for t in range(L):
        decay = torch.exp(dt[:, t] * A)  # (b, h)
        S = decay[:, :, None, None] * S + (dt[:, t, :, None] * x[:, t]).unsqueeze(-1) * Bh[:, t, :, None, :]
        yt = (S * Ch[:, t, :, None, :]).sum(-1)  # (b, h, p)
        if D is not None:
            yt = yt + D.to(x.dtype)[:, None] * x[:, t]
        ys.append(yt)
    return torch.stack(ys, dim=1)


# --------------------------------------------------------------------------------------------
# Optional mamba_ssm kernel
# --------------------------------------------------------------------------------------------
_KERNELS: dict = {}


def _load_kernels() -> dict:
    """mamba_ssm kernels that import here: {} when mamba_ssm/Triton are missing, else
    'chunk_scan' (mamba_chunk_scan_combined, Triton only) and, when causal_conv1d's CUDA
    extension is also present, 'fused' (mamba_split_conv1d_scan_combined, which calls it)."""
    if "loaded" not in _KERNELS:
        _KERNELS["loaded"] = True
        try:
            from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined
        except ImportError:
            return _KERNELS
        _KERNELS["chunk_scan"] = mamba_chunk_scan_combined
        try:
            import causal_conv1d  # noqa: F401  (its CUDA extension is called inside the fused kernel)
            from mamba_ssm.ops.triton.ssd_combined import mamba_split_conv1d_scan_combined
        except ImportError:
            pass
        else:
            _KERNELS["fused"] = mamba_split_conv1d_scan_combined
    return _KERNELS


def _load_kernel() -> Optional[Callable]:
    """The Triton SSD scan kernel, or None if mamba_ssm's kernels do not import."""
    return _load_kernels().get("chunk_scan")


def kernels_available() -> bool:
    """True when CUDA is available and mamba_ssm's Mamba2 kernel imports."""
    return torch.cuda.is_available() and _load_kernel() is not None


def _resolve_use_kernels(use_kernels: Optional[bool]) -> bool:
    if use_kernels is None:
        env = os.environ.get(KERNEL_ENV, "").strip()
        if env not in ("", "0", "1"):
            raise ValueError(f"{KERNEL_ENV} must be 0 or 1, got {env!r}")
        use_kernels = env == "1"  # unset: the pure path (faster at GRAM's lengths, see above)
    if use_kernels and _load_kernel() is None:
        raise ImportError("use_kernels=True (or HEAR_GRAM_MAMBA_KERNELS=1) needs mamba_ssm>=2.2 "
                          "with its Triton kernels; install the 'mamba' extra or use the pure path")
    return bool(use_kernels)


# --------------------------------------------------------------------------------------------
# Mamba2 mixer, block, encoder
# --------------------------------------------------------------------------------------------
class Mamba2Mixer(nn.Module):
    """Mamba2 mixer (mamba_ssm.modules.mamba2.Mamba2 with its defaults), (B, L, D) -> (B, L, D).

    gram_spec §3.2 steps 1-6: in_proj -> [z | xBC | dt]; causal depthwise conv + SiLU on xBC;
    split x/B/C; SSM scan with dt = softplus(dt + dt_bias), A = -exp(A_log), D skip;
    gated RMSNorm with z; out_proj.  in_proj row order is [z, x, B, C, dt] (mamba_ssm).
    """

    def __init__(self, d_model: int = 768, d_state: int = 128, d_conv: int = 4, expand: int = 2,
                 headdim: int = 64, ngroups: int = 1, chunk_size: int = 256,
                 A_init_range: tuple = (1.0, 16.0), dt_min: float = 1e-3, dt_max: float = 0.1,
                 dt_init_floor: float = 1e-4, norm_eps: float = 1e-5,
                 use_kernels: Optional[bool] = None):
        super().__init__()
        self.d_model, self.d_state, self.d_conv = d_model, d_state, d_conv
        self.d_inner = expand * d_model
        assert self.d_inner % headdim == 0, (self.d_inner, headdim)
        self.headdim, self.nheads, self.ngroups = headdim, self.d_inner // headdim, ngroups
        assert self.nheads % ngroups == 0, (self.nheads, ngroups)
        self.chunk_size = chunk_size
        self.A_init_range = A_init_range
        self.dt_min, self.dt_max, self.dt_init_floor = dt_min, dt_max, dt_init_floor
        self.conv_dim = self.d_inner + 2 * ngroups * d_state
        d_in_proj = 2 * self.d_inner + 2 * ngroups * d_state + self.nheads  # [z, x, B, C, dt]

        self.in_proj = nn.Linear(d_model, d_in_proj, bias=False)
        # Depthwise causal conv; the left zero padding is applied in forward (spec §3.2 step 2).
        self.conv1d = nn.Conv1d(self.conv_dim, self.conv_dim, kernel_size=d_conv,
                                groups=self.conv_dim, bias=True)
        self.dt_bias = nn.Parameter(torch.empty(self.nheads))
        self.A_log = nn.Parameter(torch.empty(self.nheads))
        self.D = nn.Parameter(torch.empty(self.nheads))
        for p in (self.dt_bias, self.A_log, self.D):
            p._no_weight_decay = True  # mamba_ssm flags these; optimisers may read it
        # One norm group per SSM group (GRAM-M: a single group over all 1536 channels).
        self.norm = RMSNormGated(self.d_inner, eps=norm_eps, group_size=self.d_inner // ngroups,
                                 norm_before_gate=False)
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=False)
        self.reset_parameters()
        self.use_kernels = _resolve_use_kernels(use_kernels)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """mamba_ssm Mamba2.__init__ initialisation (gram_spec §7.4): default Linear/Conv1d init,
        dt_bias = softplus^-1(dt) with dt log-uniform in [dt_min, dt_max] (floored),
        A_log = log(U(A_init_range)), D = 1, norm weight = 1."""
        self.in_proj.reset_parameters()
        self.conv1d.reset_parameters()
        self.out_proj.reset_parameters()
        dt = torch.exp(torch.rand(self.nheads) * (math.log(self.dt_max) - math.log(self.dt_min))
                       + math.log(self.dt_min)).clamp(min=self.dt_init_floor)
        self.dt_bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
        self.A_log.copy_(torch.empty(self.nheads).uniform_(*self.A_init_range).log())
        self.D.fill_(1.0)
        self.norm.weight.fill_(1.0)

    def _conv(self, xBC: torch.Tensor) -> torch.Tensor:
        """Step 2: causal depthwise conv (left zero padding d_conv - 1) + SiLU on (b, L, conv_dim).

        Written as d_conv shifted multiply-adds in the (b, L, channels) layout the projection
        produces: no transposes or padded copy, and on CPU faster than Conv1d's depthwise kernel.
        Computed in float32 at least (as causal_conv1d); output dtype = input dtype.
        """
        L, K = xBC.shape[1], self.d_conv
        w = self.conv1d.weight[:, 0].t().contiguous()  # (K, conv_dim): contiguous taps (2x faster)
        y = torch.addcmul(self.conv1d.bias, xBC, w[K - 1])  # tap K-1 multiplies the current step
        for k in range(max(0, K - 1 - (L - 1)), K - 1):  # taps reaching back K-1-k steps
            shift = K - 1 - k
            y[:, shift:].addcmul_(xBC[:, :-shift], w[k])
        return F.silu(y, inplace=not _autograd(y)).to(xBC.dtype)

    def _ssm_inputs(self, u: torch.Tensor):
        """Steps 1-3 and the dt/A preparation of step 4."""
        b, L, _ = u.shape
        zxbcdt = self.in_proj(u)  # (b, L, 2*d_inner + 2*g*n + h)
        z, xBC, dt = torch.split(zxbcdt, [self.d_inner, self.conv_dim, self.nheads], dim=-1)
        xBC = self._conv(xBC)  # (b, L, conv_dim)
        x, B, C = torch.split(xBC, [self.d_inner, self.ngroups * self.d_state,
                                    self.ngroups * self.d_state], dim=-1)
        cdt = torch.float64 if dt.dtype == torch.float64 else torch.float32
        dt = F.softplus(dt.to(cdt) + self.dt_bias.to(cdt))  # (b, L, h); dt_limit (0, inf): no clamp
        A = -torch.exp(self.A_log.to(cdt))  # (h,); float32 so that it cannot overflow to -inf
        return (z, x.reshape(b, L, self.nheads, self.headdim), dt, A,
                B.reshape(b, L, self.ngroups, self.d_state), C.reshape(b, L, self.ngroups, self.d_state))

    def _output(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Steps 5-6: gated RMSNorm and out_proj."""
        y = y.reshape(*y.shape[:2], self.d_inner).to(z.dtype)
        return self.out_proj(self.norm(y, z))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """u: (B, L, d_model) -> (B, L, d_model)."""
        if self.use_kernels and u.is_cuda:
            return self._forward_kernel(u)
        z, x, dt, A, B, C = self._ssm_inputs(u)
        return self._output(ssd_chunked(x, dt, A, B, C, self.D, chunk_size=self.chunk_size), z)

    def forward_ref(self, u: torch.Tensor) -> torch.Tensor:
        """Same as the pure forward but with the sequential `ssd_ref` scan (tests only)."""
        z, x, dt, A, B, C = self._ssm_inputs(u)
        return self._output(ssd_ref(x.to(dt.dtype), dt, A, B, C, self.D), z)

    def _forward_kernel(self, u: torch.Tensor) -> torch.Tensor:
        """mamba_ssm kernels with the same parameters.  With causal_conv1d's CUDA extension:
        the fused kernel, called as Mamba2.forward (use_mem_eff_path) calls it.  Without it:
        in_proj/conv in torch, the Triton SSD scan, gated norm and out_proj in torch."""
        kernels = _load_kernels()
        A = -torch.exp(self.A_log.float())
        if "fused" in kernels:
            return kernels["fused"](
                self.in_proj(u), self.conv1d.weight.squeeze(1), self.conv1d.bias, self.dt_bias, A,
                D=self.D, chunk_size=self.chunk_size, activation="silu",
                rmsnorm_weight=self.norm.weight, rmsnorm_eps=self.norm.eps,
                outproj_weight=self.out_proj.weight, outproj_bias=self.out_proj.bias,
                headdim=self.headdim, ngroups=self.ngroups, norm_before_gate=False)
        b, L, _ = u.shape
        z, xBC, dt = torch.split(self.in_proj(u), [self.d_inner, self.conv_dim, self.nheads], dim=-1)
        xBC = self._conv(xBC)
        x, B, C = torch.split(xBC, [self.d_inner, self.ngroups * self.d_state,
                                    self.ngroups * self.d_state], dim=-1)
        y = kernels["chunk_scan"](
            x.reshape(b, L, self.nheads, self.headdim).contiguous(), dt.contiguous(), A,
            B.reshape(b, L, self.ngroups, self.d_state).contiguous(),
            C.reshape(b, L, self.ngroups, self.d_state).contiguous(),
            chunk_size=self.chunk_size, D=self.D, dt_bias=self.dt_bias, dt_softplus=True)
        return self._output(y, z)

    def extra_repr(self) -> str:
        return (f"d_model={self.d_model}, d_state={self.d_state}, d_conv={self.d_conv}, "
                f"nheads={self.nheads}, headdim={self.headdim}, ngroups={self.ngroups}, "
                f"chunk_size={self.chunk_size}, use_kernels={self.use_kernels}")


class MambaBlock(nn.Module):
    """mamba_ssm `Block` without MLP (d_intermediate=0): h = mixer(norm(residual)).

    The residual addition is done by `MambaEncoder` (gram_spec §3.2 "Residual structure").
    """

    def __init__(self, dim: int, norm_eps: float = 1e-5, **mixer_kwargs):
        super().__init__()
        self.norm = RMSNorm(dim, eps=norm_eps)
        self.mixer = Mamba2Mixer(d_model=dim, **mixer_kwargs)

    def forward(self, residual: torch.Tensor) -> torch.Tensor:
        # As the unfused mamba_ssm Block: the norm sees the residual cast to the norm's dtype.
        return self.mixer(self.norm(residual.to(self.norm.weight.dtype)))


class MambaEncoder(nn.Module):
    """GRAM-M encoder (`encoder_v`, a mamba_ssm MixerModel without embedding), gram_spec §3.2.

    forward(x (B, L, dim), n_blocks=None) -> (B, L, dim): the first `n_blocks` layers
    (`layers[:n_blocks]`: None = all, negative counts from the end, 0 = none), then `norm_f`.
    The residual stream is float32 (residual_in_fp32=True); the output has norm_f's dtype.
    """

    def __init__(self, dim: int = 768, depth: int = 24, d_state: int = 128, d_conv: int = 4,
                 expand: int = 2, headdim: int = 64, norm_eps: float = 1e-5, ngroups: int = 1,
                 chunk_size: int = 256, use_kernels: Optional[bool] = None):
        super().__init__()
        self.dim, self.depth = dim, depth
        use_kernels = _resolve_use_kernels(use_kernels)  # decided once for all layers
        self.layers = nn.ModuleList([
            MambaBlock(dim, norm_eps=norm_eps, d_state=d_state, d_conv=d_conv, expand=expand,
                       headdim=headdim, ngroups=ngroups, chunk_size=chunk_size,
                       use_kernels=use_kernels)
            for _ in range(depth)
        ])
        self.norm_f = RMSNorm(dim, eps=norm_eps)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """mamba_ssm MixerModel init (gram_spec §7.4): each mixer's own init, norms = 1, then
        out_proj re-drawn kaiming-uniform(a=sqrt(5)) and divided by sqrt(n_layer)
        (one residual branch per layer since there is no MLP)."""
        for layer in self.layers:
            layer.mixer.reset_parameters()
            layer.norm.weight.fill_(1.0)
            nn.init.kaiming_uniform_(layer.mixer.out_proj.weight, a=math.sqrt(5))
            layer.mixer.out_proj.weight.div_(math.sqrt(self.depth))
        self.norm_f.weight.fill_(1.0)

    def forward(self, x: torch.Tensor, n_blocks: Optional[int] = None) -> torch.Tensor:
        residual = x.float() if x.dtype != torch.float64 else x  # residual_in_fp32
        hidden = None
        for layer in self.layers[:n_blocks]:
            if hidden is not None:
                residual = residual + hidden.to(residual.dtype)
            hidden = layer(residual)
        if hidden is not None:
            residual = residual + hidden.to(residual.dtype)
        return self.norm_f(residual.to(self.norm_f.weight.dtype))
