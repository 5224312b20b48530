"""GRAM-T encoder: a ViT-B stack with the parameter names of torchvision's `Encoder` (gram_spec §3.1).

Pre-norm blocks u = x + Attn(LN1(x)); x = u + MLP(LN2(u)); LayerNorm eps 1e-6, exact GELU, packed qkv
projection with bias ([q; k; v] rows, as `nn.MultiheadAttention`), no dropout, no layer-scale.
Attention runs through `scaled_dot_product_attention` (fused kernels where the backend has them).

State-dict keys (under the encoder's `backbone.` prefix): `layers.{i}.{ln_1,self_attention,ln_2,mlp.0,mlp.3}.*`,
`ln.*` (official: `encoder.layers.encoder_layer_{i}.*`, `encoder.ln.*`; renamed by `checkpoint.py`).
"""

import torch
import torch.nn.functional as F
from torch import nn


class SelfAttention(nn.Module):
    """Multi-head self-attention with `nn.MultiheadAttention`'s parameter names and layout."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        # `qkv`: an nn.Linear holding the same packed projection, set only on the runtime's int8 copy so that
        # dynamic quantization (which swaps nn.Linear modules) reaches it
        qkv_proj = getattr(self, "qkv", None)
        qkv = qkv_proj(x) if qkv_proj is not None else F.linear(x, self.in_proj_weight, self.in_proj_bias)  # (B, N, 3D)
        q, k, v = qkv.view(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)  # (B, H, N, hd)
        return self.out_proj(y.transpose(1, 2).reshape(b, n, d))


class EncoderBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_dim: int, eps: float = 1e-6):
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim, eps=eps)
        self.self_attention = SelfAttention(dim, num_heads)
        self.ln_2 = nn.LayerNorm(dim, eps=eps)
        # indices 0 and 3 as torchvision's MLPBlock (Linear, GELU, Dropout, Linear)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Identity(), nn.Linear(mlp_dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attention(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class TransformerEncoder(nn.Module):
    """12 x EncoderBlock + final LayerNorm."""

    def __init__(self, dim: int = 768, depth: int = 12, num_heads: int = 12, mlp_dim: int = 3072,
                 eps: float = 1e-6):
        super().__init__()
        self.layers = nn.ModuleList(EncoderBlock(dim, num_heads, mlp_dim, eps) for _ in range(depth))
        self.ln = nn.LayerNorm(dim, eps=eps)

    def forward(self, x: torch.Tensor, n_blocks: int = None) -> torch.Tensor:
        """x (B, L, D) with CLS and positions already added -> (B, L, D) after the final norm.
        `n_blocks`: run only `layers[:n_blocks]` (Python slice semantics), then the final norm
        (the official `layer` option, gram_spec §6.6)."""
        for blk in self.layers[:n_blocks]:
            x = blk(x)
        return self.ln(x)
