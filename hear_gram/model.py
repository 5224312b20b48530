"""GRAM model: front end, patching, encoder (ViT-B or Mamba2), MW-MAE decoder, masked-MSE loss.

One definition serves inference (`forward_features` -> `pool`) and pretraining (`forward` with a
mask -> loss).  Parameter names are the official Lightning-module keys of GRAM-T / GRAM-M
(gram_spec §3.3, Appendix A), so an official checkpoint loads strictly after its wrapper prefix is
removed (see `checkpoint.py`).

Shapes: a chunk is a log-mel (B, C, T=200, F=128) as the official code hands it over (time before
frequency); `normalize` turns it into (B, C, F, T) and applies the parameter-free per-chunk
LayerNorm (gram_spec §1.3).  Tokens: (B, 1 + N, D) with the CLS token first.
"""

import dataclasses
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .decoder import DecoderBlock
from .features import FLOAT32_EPS, LogMel, check_log_eps
from .patching import grid_shape, patchify, sincos_2d
from .vit import TransformerEncoder

STRATEGIES = ("raw", "mean", "cls")


@dataclass(frozen=True)
class GramConfig:
    """Architecture and front-end settings; `config.json` of an export is `dataclasses.asdict` of it."""

    encoder: str = "transformer"  # "transformer" (GRAM-T) or "mamba" (GRAM-M)
    patch: tuple = (16, 8)  # (frequency, time) patch size; (128, 2) for the "time" variants
    in_channels: int = 2
    sample_rate: int = 32000
    n_mels: int = 128
    chunk_frames: int = 200  # 2 s at 100 frames/s
    log_eps: float = FLOAT32_EPS  # ln(mel + eps); official HEAR runtime: float32 eps (gram_spec §9.1)
    dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_dim: int = 3072
    # GRAM-M (Mamba2) settings, gram_spec §3.2
    d_state: int = 128
    d_conv: int = 4
    expand: int = 2
    headdim: int = 64
    # MW-MAE decoder, gram_spec §4
    decoder_dim: int = 512
    decoder_depth: int = 8
    decoder_heads: int = 8
    decoder_windows: tuple = (2, 5, 10, 25, 50, 100, 0, 0)
    mask_ratio: float = 0.8

    def __post_init__(self):
        if self.encoder not in ("transformer", "mamba"):
            raise ValueError(f"encoder must be 'transformer' or 'mamba', got {self.encoder!r}")
        self._check_values()
        object.__setattr__(self, "patch", tuple(self.patch))
        object.__setattr__(self, "decoder_windows", tuple(self.decoder_windows))
        n = self.n_tokens
        bad = [w for w in self.decoder_windows if w and n % w]
        if bad:
            raise ValueError(f"decoder windows {bad} do not divide the {n} tokens of a chunk")

    def _check_values(self):
        """Types and ranges of every field, so a bad config.json or --model.<field> is a named error here, not
        a shape error (or a model without an encoder) later (README "Bad input")."""
        def bad(name, what):
            raise ValueError(f"GramConfig {name}={getattr(self, name)!r}: {what}")

        for name in ("in_channels", "sample_rate", "n_mels", "chunk_frames", "dim", "depth", "num_heads", "mlp_dim",
                     "d_state", "d_conv", "expand", "headdim", "decoder_dim", "decoder_depth", "decoder_heads"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                bad(name, "must be an integer")
            if v < 1:
                bad(name, "must be >= 1")
        for name in ("patch", "decoder_windows"):
            v = getattr(self, name)
            if not isinstance(v, (tuple, list)) or not all(isinstance(x, int) and not isinstance(x, bool) for x in v):
                bad(name, "must be a list of integers")
        if len(self.patch) != 2 or min(self.patch) < 1:
            bad("patch", "must be two integers >= 1 (frequency, time)")
        if self.n_mels % self.patch[0] or self.chunk_frames % self.patch[1]:
            bad("patch", f"must divide the ({self.n_mels}, {self.chunk_frames}) log-mel chunk")
        if min(self.decoder_windows, default=0) < 0:
            bad("decoder_windows", "must be >= 0 (0 = global attention)")
        if isinstance(self.mask_ratio, bool) or not isinstance(self.mask_ratio, (int, float)) \
                or not 0 < self.mask_ratio < 1:
            bad("mask_ratio", "must be a number in (0, 1)")
        check_log_eps(self.log_eps, "GramConfig log_eps")
        if self.encoder == "transformer" and self.dim % self.num_heads:
            bad("dim", f"is not divisible by num_heads={self.num_heads}")
        if self.decoder_dim % self.decoder_heads:
            bad("decoder_dim", f"is not divisible by decoder_heads={self.decoder_heads}")
        if self.encoder == "mamba" and (self.expand * self.dim) % self.headdim:
            bad("dim", f"x expand={self.expand} is not divisible by headdim={self.headdim}")

    @property
    def grid(self) -> tuple:
        return grid_shape(self.n_mels, self.chunk_frames, self.patch)

    @property
    def n_tokens(self) -> int:
        gf, gt = self.grid
        return gf * gt

    @property
    def patch_dim(self) -> int:
        return self.in_channels * self.patch[0] * self.patch[1]

    @property
    def n_masked(self) -> int:
        return int(round(self.mask_ratio * self.n_tokens))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["patch"], d["decoder_windows"] = list(self.patch), list(self.decoder_windows)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "GramConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown GramConfig fields {unknown}")
        return cls(**d)


PATCH = dict(patch=(16, 8), decoder_windows=(2, 5, 10, 25, 50, 100, 0, 0))
TIME = dict(patch=(128, 2), decoder_windows=(2, 5, 10, 25, 50, 0, 0, 0))
MAMBA = dict(encoder="mamba", depth=24)


@dataclass(frozen=True)
class Variant:
    """A named model: architecture, default Hub weights (repo + pinnable revision) and runtime defaults."""

    name: str
    config: GramConfig
    repo_id: str
    revision: str = None
    default_strategy: str = "raw"
    localization_strategy: str = "mean"
    repo_confirmed: bool = True
    notes: str = field(default="", compare=False)


VARIANTS = {
    v.name: v for v in (
        Variant("gram_t_patch", GramConfig(**PATCH), "labhamlet/gramt-binaural"),
        Variant("gram_t_time", GramConfig(**TIME), "labhamlet/gramt-binaural-time"),
        # The official GRAM-M Hub ids are not confirmed (gram_spec §0): one constant per variant.
        Variant("gram_m_patch", GramConfig(**PATCH, **MAMBA), "labhamlet/gramm-binaural", repo_confirmed=False),
        Variant("gram_m_time", GramConfig(**TIME, **MAMBA), "labhamlet/gramm-binaural-time", repo_confirmed=False),
    )
}


def random_mask(batch: int, n_tokens: int, n_masked: int, generator: torch.Generator = None,
                device=None) -> torch.Tensor:
    """(batch, n_tokens) bool, True = masked: a uniformly random subset of `n_masked` tokens per row
    (unstructured, gram_spec §5.1)."""
    noise = torch.rand(batch, n_tokens, generator=generator, device=device)
    ranks = noise.argsort(dim=1).argsort(dim=1)
    return ranks < n_masked


class GramModel(nn.Module):
    """GRAM-T / GRAM-M encoder with its MW-MAE decoder (official parameter names)."""

    def __init__(self, config: GramConfig):
        super().__init__()
        self.config = c = config
        gf, gt = c.grid
        n = gf * gt
        self.melspec = LogMel(c.sample_rate, n_mels=c.n_mels, log_eps=c.log_eps)
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(c.in_channels, c.dim, kernel_size=c.patch, stride=c.patch)
        enc_pos = sincos_2d(c.dim, c.grid, n_cls=1)  # (1, 1 + N, D), CLS row zero
        dec_pos = sincos_2d(c.decoder_dim, c.grid)  # (1, N, Dd), no CLS row
        if c.encoder == "transformer":
            self.encoder = TransformerEncoder(enc_pos, c.dim, c.depth, c.num_heads, c.mlp_dim)
            self.cls_token = nn.Parameter(torch.randn(1, 1, c.dim))  # N(0, 1) as the official GRAM-T
            # GRAM-T registers its mask token as a buffer: it is never trained (gram_spec §9.13).
            self.register_buffer("mask_token", torch.randn(1, 1, c.decoder_dim) * 0.02)
            self.register_buffer("decoder_pos_embed", dec_pos)
            self.decoder_blocks = self._decoder_blocks()
        else:
            from .mamba2 import MambaEncoder

            self.register_buffer("encoder_pos_embed", enc_pos)
            self.encoder_v = MambaEncoder(c.dim, c.depth, c.d_state, c.d_conv, c.expand, c.headdim)
            self.encoder_norm = nn.LayerNorm(c.dim)  # present in official checkpoints, unused (§3.2)
            self.cls_token = nn.Parameter(torch.randn(1, 1, c.dim) * 0.02)
            self.mask_token = nn.Parameter(torch.randn(1, 1, c.decoder_dim) * 0.02)
            self.register_buffer("decoder_pos_embed", dec_pos)
            self.decoder_v = self._decoder_blocks()
        self.decoder_embed = nn.Linear(c.dim, c.decoder_dim)
        self.decoder_norm = nn.LayerNorm(c.decoder_dim)
        self.spec_pred = nn.Sequential(nn.Linear(c.decoder_dim, c.patch_dim))
        self._init_linear()

    def _decoder_blocks(self) -> nn.ModuleList:
        c = self.config
        return nn.ModuleList(DecoderBlock(c.decoder_dim, c.decoder_heads, c.decoder_windows)
                             for _ in range(c.decoder_depth))

    def _init_linear(self):
        # GRAM-T: xavier-uniform Linear weights, zero bias (gram_spec §7.4); the Mamba mixers keep
        # their own initialisation.
        skip = set(self.encoder_v.modules()) if self.config.encoder == "mamba" else set()
        for m in self.modules():
            if isinstance(m, nn.Linear) and m not in skip:
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    # -- views that hide the per-encoder attribute names ------------------------------------------
    @property
    def encoder_pos(self) -> torch.Tensor:
        return self.encoder.pos_embedding if self.config.encoder == "transformer" else self.encoder_pos_embed

    @property
    def encoder_body(self) -> nn.Module:
        return self.encoder if self.config.encoder == "transformer" else self.encoder_v

    @property
    def decoder_layers(self) -> nn.ModuleList:
        return self.decoder_blocks if self.config.encoder == "transformer" else self.decoder_v

    @property
    def n_blocks(self) -> int:
        return self.config.depth

    # -- encoder ----------------------------------------------------------------------------------
    def normalize(self, logmel: torch.Tensor) -> torch.Tensor:
        """(B, C, T, F) log-mel chunk -> (B, C, F, T), parameter-free LayerNorm over (C, F, T), eps 1e-5."""
        c = self.config
        if logmel.shape[1:] != (c.in_channels, c.chunk_frames, c.n_mels):
            raise ValueError(f"expected log-mel chunks (B, {c.in_channels}, {c.chunk_frames}, {c.n_mels}), "
                             f"got {tuple(logmel.shape)}")
        x = logmel.transpose(2, 3).float()
        return F.layer_norm(x, x.shape[1:], eps=1e-5)

    def forward_encoder(self, x: torch.Tensor, mask: torch.Tensor = None, n_blocks: int = None) -> torch.Tensor:
        """x (B, C, F, T) normalised -> tokens (B, 1 + N_visible, D) after the final norm.
        mask (B, N) bool, True = masked: masked tokens are removed before the encoder (MAE, §5.2)."""
        pos = self.encoder_pos
        tok = self.patch_embed.proj(x).flatten(2).transpose(1, 2)  # (B, N, D)
        tok = tok + pos[:, 1:, :]
        if mask is not None:
            b, _, d = tok.shape
            tok = tok[~mask].reshape(b, -1, d)  # row-major boolean indexing keeps token order
        cls = (self.cls_token + pos[:, :1, :]).expand(tok.shape[0], -1, -1)
        return self.encoder_body(torch.cat([cls, tok], dim=1), n_blocks=n_blocks)

    def forward_features(self, logmel: torch.Tensor, layer: int = None) -> torch.Tensor:
        """Log-mel chunks (B, C, 200, 128) -> all tokens (B, 1 + N, D).  `layer=k` stops after the first
        k blocks (negative: counted from the end) and still applies the final norm (gram_spec §6.6)."""
        return self.forward_encoder(self.normalize(logmel), n_blocks=layer)

    def pool(self, tokens: torch.Tensor, strategy: str) -> torch.Tensor:
        """tokens (B, 1 + N, D) -> per-chunk output (gram_spec §6.3):
        raw (B, T', F' * D) with feature index f * D + d; mean (B, D) over patch tokens; cls (B, D)."""
        if strategy == "cls":
            return tokens[:, 0]
        patches = tokens[:, 1:]
        if strategy == "mean":
            return patches.mean(dim=1)
        if strategy == "raw":
            gf, gt = self.config.grid
            b, _, d = patches.shape
            return patches.reshape(b, gf, gt, d).permute(0, 2, 1, 3).reshape(b, gt, gf * d)
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")

    # -- pretraining ------------------------------------------------------------------------------
    def forward_decoder(self, latent: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """latent (B, 1 + N_vis, D), mask (B, N) -> prediction (B, N, C * fs * ts) for every patch."""
        e = self.decoder_embed(latent)[:, 1:]  # the CLS output is dropped (gram_spec §4.1)
        b, n = mask.shape
        z = self.mask_token.to(e.dtype).expand(b, n, -1).clone()
        z[~mask] = e.reshape(-1, e.shape[-1])
        z = z + self.decoder_pos_embed
        for blk in self.decoder_layers:
            z = blk(z)
        return self.spec_pred(self.decoder_norm(z))

    def loss(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """MSE on masked patches only, times in_channels (gram_spec §5.3)."""
        per_patch = (pred.float() - target.float()).pow(2).mean(dim=-1)  # (B, N)
        m = mask.float()
        return self.config.in_channels * (per_patch * m).sum() / m.sum()

    def forward(self, logmel: torch.Tensor, mask: torch.Tensor):
        """Masked-autoencoder step: log-mel chunks (B, C, 200, 128), mask (B, N) bool ->
        (loss, prediction (B, N, P), target patches (B, N, P))."""
        x = self.normalize(logmel)
        target = patchify(x, self.config.patch)
        pred = self.forward_decoder(self.forward_encoder(x, mask), mask)
        return self.loss(pred, target, mask), pred, target
