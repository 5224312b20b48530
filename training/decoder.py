"""MW-MAE decoder: multi-window multi-head attention blocks (gram_spec §4).

Used for pretraining only, but its weights are part of every GRAM checkpoint, so it is declared with
the official names (`norm1`, `wmha.qkv`, `wmha.attn_heads.{h}.relative_position_bias_table`,
`wmha.attn_heads.{h}.relative_position_index`, `wmha.proj`, `norm2`, `mlp.fc1`, `mlp.fc2`).

Head h with window w > 0 attends inside consecutive, non-overlapping windows of w tokens of the
flattened (frequency-major) token sequence, with a learned relative-position bias b[i - j + w - 1];
w = 0 is ordinary global attention.  Heads run grouped by window: the heads of a window w attend within
each of the N / w windows (one `scaled_dot_product_attention` over (B * N / w) blocks of w tokens, the heads'
(w, w) biases as the mask), global heads in one unmasked call.  This is the same softmax as one dense (N, N)
attention with -inf outside the windows (`MultiWindowAttention.dense_forward`, the reference the tests compare
with), without computing the N^2 - N w entries that are -inf (`python -m benchmarks.pretrain_kernels` times
both forms side by side).
"""

import torch
import torch.nn.functional as F
from torch import nn


class WindowedHead(nn.Module):
    """Parameters of one windowed head: bias table [2w - 1, 1] and index buffer [w, w]."""

    def __init__(self, window: int):
        super().__init__()
        self.window = window
        self.relative_position_bias_table = nn.Parameter(torch.zeros(2 * window - 1, 1))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        i = torch.arange(window)
        self.register_buffer("relative_position_index", i[:, None] - i[None, :] + window - 1)

    def block(self) -> torch.Tensor:
        """(w, w) additive bias inside one window: b[i - j + w - 1]."""
        w = self.window
        return self.relative_position_bias_table[self.relative_position_index.reshape(-1)].reshape(w, w)

    def bias(self, n_tokens: int) -> torch.Tensor:
        """(N, N) additive attention bias: relative bias inside each window, -inf elsewhere."""
        w = self.window
        if n_tokens % w:
            raise ValueError(f"{n_tokens} tokens are not divisible by the attention window {w}")
        block = self.block()
        n_win = n_tokens // w
        out = block.new_full((n_win, w, n_win, w), float("-inf"))
        idx = torch.arange(n_win, device=block.device)
        out[idx, :, idx, :] = block
        return out.reshape(n_tokens, n_tokens)


class GlobalHead(nn.Module):
    """A head with window 0: plain attention over all tokens, no parameters."""

    window = 0

    def bias(self, n_tokens: int) -> None:
        return None


class MultiWindowAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, windows: tuple):
        super().__init__()
        if len(windows) != num_heads:
            raise ValueError(f"{len(windows)} window sizes for {num_heads} heads")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.attn_heads = nn.ModuleList(WindowedHead(w) if w > 0 else GlobalHead() for w in windows)
        self.proj = nn.Linear(dim, dim)
        # heads grouped by window (first appearance order), and where each head's output lands
        groups = {}
        for h, w in enumerate(windows):
            groups.setdefault(w, []).append(h)
        self.groups = list(groups.items())
        order = [h for _, hs in self.groups for h in hs]
        self.head_order = [order.index(h) for h in range(num_heads)]  # a list, not a buffer: nothing to initialise

    def attn_bias(self, n_tokens: int, dtype, device) -> torch.Tensor:
        rows = [h.bias(n_tokens) for h in self.attn_heads]
        zeros = torch.zeros(n_tokens, n_tokens, dtype=dtype, device=device)
        return torch.stack([zeros if r is None else r.to(dtype) for r in rows])  # (H, N, N)

    def _qkv(self, x: torch.Tensor):
        b, n, d = x.shape
        return self.qkv(x).view(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)  # (B, H, N, dh)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self._qkv(x)
        outs = []
        for w, heads in self.groups:
            qg, kg, vg = q[:, heads], k[:, heads], v[:, heads]  # (B, G, N, dh)
            if w == 0:
                outs.append(F.scaled_dot_product_attention(qg, kg, vg))
                continue
            if n % w:
                raise ValueError(f"{n} tokens are not divisible by the attention window {w}")
            g, dh = qg.shape[1], qg.shape[-1]

            def blocks(t):  # (B, G, N, dh) -> (B * N / w, G, w, dh): one row per window
                return t.reshape(b, g, n // w, w, dh).transpose(1, 2).reshape(-1, g, w, dh)

            bias = torch.stack([self.attn_heads[h].block() for h in heads]).to(q.dtype)  # (G, w, w)
            y = F.scaled_dot_product_attention(blocks(qg), blocks(kg), blocks(vg), attn_mask=bias)
            outs.append(y.reshape(b, n // w, g, w, dh).transpose(1, 2).reshape(b, g, n, dh))
        y = torch.cat(outs, dim=1)[:, self.head_order]  # back to head order
        return self.proj(y.transpose(1, 2).reshape(b, n, d))

    def dense_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The same attention as one dense (N, N) softmax per head, -inf outside the windows (reference)."""
        b, n, d = x.shape
        q, k, v = self._qkv(x)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=self.attn_bias(n, q.dtype, q.device))
        return self.proj(y.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class DecoderBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, windows: tuple, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.wmha = MultiWindowAttention(dim, num_heads, windows)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.wmha(self.norm1(x))
        return x + self.mlp(self.norm2(x))
