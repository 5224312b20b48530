"""GRAM encoder: front end, patching, backbone (ViT-B or Mamba2) and pooling (gram_spec §1-3, §6).

`GramEncoder` is what inference needs (`forward_features` -> `pool`).  The pretraining head (MW-MAE
decoder, masking, loss) wraps it in `training/pretrain_model.py`.  The encoder has one set of
parameter names for both backbones; `checkpoint.py` maps the official Lightning-module keys of
GRAM-T / GRAM-M (gram_spec §3.3, Appendix A) onto them with an explicit rename table.

Shapes: a chunk is a log-mel (B, C, T=200, F=128) as the official code hands it over (time before
frequency); `normalize` turns it into (B, C, F, T) and applies the parameter-free per-chunk
LayerNorm (gram_spec §1.3).  Tokens: (B, 1 + N, D) with the CLS token first.
"""

import dataclasses
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

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
    n_fft: int = 1024
    hop_length: int = 320  # 10 ms at 32 kHz: 100 log-mel frames per second
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

        for name in ("in_channels", "sample_rate", "n_mels", "chunk_frames", "n_fft", "hop_length", "dim", "depth",
                     "num_heads", "mlp_dim", "d_state", "d_conv", "expand", "headdim", "decoder_dim", "decoder_depth", "decoder_heads"):
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
    """A named model: architecture, default Hub weights (repo + pinnable revision, then the fallback
    repos tried in order when the first is missing) and runtime defaults."""

    name: str
    config: GramConfig
    repo_id: str
    revision: str = None  # None: the repo's main branch (no published commit could be checked offline)
    fallback_repo_ids: tuple = ()
    default_strategy: str = "raw"
    localization_strategy: str = "mean"
    repo_confirmed: bool = True
    notes: str = field(default="", compare=False)


VARIANTS = {
    v.name: v for v in (
        # the authors' current HEAR wrappers load the transformers-style repos; the older mixin-style
        # repo is what the GRAM-T repository's huggingface/gramt_binaural.py downloads
        Variant("gram_t_patch", GramConfig(**PATCH), "labhamlet/gramt-binaural-frame",
                fallback_repo_ids=("labhamlet/gramt-binaural",)),
        Variant("gram_t_time", GramConfig(**TIME), "labhamlet/gramt-binaural-time"),
        # The official GRAM-M Hub ids are not confirmed (gram_spec §0): one constant per variant.
        Variant("gram_m_patch", GramConfig(**PATCH, **MAMBA), "labhamlet/gramm-binaural", repo_confirmed=False),
        Variant("gram_m_time", GramConfig(**TIME, **MAMBA), "labhamlet/gramm-binaural-time", repo_confirmed=False),
    )
}


def variant_for(c: GramConfig):
    """The name of the variant whose module loads this architecture (same encoder kind and patch shape), or None."""
    return next((name for name, v in VARIANTS.items() if (v.config.encoder, v.config.patch) == (c.encoder, c.patch)),
                None)

def front_end(c: GramConfig) -> LogMel:
    """The config's log-mel front end (gram_spec §1.1).  Its tables are computed, never learned: built on
    the CPU even inside a `torch.device("meta")` context (checkpoint.py builds encoders there)."""
    with torch.device("cpu"):
        return LogMel(c.sample_rate, n_fft=c.n_fft, hop_length=c.hop_length, n_mels=c.n_mels,
                      log_eps=c.log_eps)


class GramEncoder(nn.Module):
    """GRAM-T / GRAM-M encoder.  State-dict keys (both backbones): `melspec.*` (front-end tables),
    `patch_embed.{weight,bias}`, `cls_token`, `pos_embed` (fixed sin-cos table with a zero CLS row),
    `backbone.*` (`vit.TransformerEncoder` or `mamba2.MambaEncoder`)."""

    def __init__(self, config: GramConfig):
        super().__init__()
        self.config = c = config
        self.melspec = front_end(c)
        self.patch_embed = nn.Conv2d(c.in_channels, c.dim, kernel_size=c.patch, stride=c.patch)
        # GRAM-T draws its CLS token from N(0, 1), GRAM-M from N(0, 0.02^2) (gram_spec §7.4)
        self.cls_token = nn.Parameter(torch.empty(1, 1, c.dim))
        if self.cls_token.device.type != "meta":  # (a meta build, checkpoint.py's, has no values to draw)
            nn.init.normal_(self.cls_token, std=1.0 if c.encoder == "transformer" else 0.02)
        self.register_buffer("pos_embed", sincos_2d(c.dim, c.grid, n_cls=1))  # (1, 1 + N, D), never trained
        if c.encoder == "transformer":
            self.backbone = TransformerEncoder(c.dim, c.depth, c.num_heads, c.mlp_dim)
            init_linear(self)  # xavier-uniform Linear weights, zero bias (gram_spec §7.4)
        else:
            from .mamba2 import MambaEncoder  # the Mamba mixers keep their own initialisation

            self.backbone = MambaEncoder(c.dim, c.depth, c.d_state, c.d_conv, c.expand, c.headdim)

    def normalize(self, logmel: torch.Tensor) -> torch.Tensor:
        """(B, C, T, F) log-mel chunk -> (B, C, F, T), parameter-free LayerNorm over (C, F, T), eps 1e-5."""
        c = self.config
        if logmel.shape[1:] != (c.in_channels, c.chunk_frames, c.n_mels):
            raise ValueError(f"expected log-mel chunks (B, {c.in_channels}, {c.chunk_frames}, {c.n_mels}), "
                             f"got {tuple(logmel.shape)}")
        x = logmel.transpose(2, 3).float()
        return F.layer_norm(x, x.shape[1:], eps=1e-5)

    def embed_patches(self, x: torch.Tensor, mask: torch.Tensor = None) -> torch.Tensor:
        """x (B, C, F, T) normalised -> patch tokens + positions: (B, N, D), or with `mask` (B, N) bool (True =
        masked) the visible ones only, (B, N_visible, D), in token order."""
        if mask is None:
            return self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos_embed[:, 1:]
        # Only the visible patches are embedded: the stride = kernel conv is the product of patchify's (C, fs, ts)
        # rows with the flattened conv weight (the same layout), so masked patches cost nothing and the weight
        # gradient is one GEMM (a CPU's conv backward takes 10x longer on these shapes).  Row-major boolean
        # indexing keeps token order.
        b, keep = x.shape[0], ~mask
        patches = patchify(x, self.config.patch)[keep].reshape(b, -1, self.config.patch_dim)
        pos = self.pos_embed[0, 1:][None].expand(b, -1, -1)[keep].reshape(b, -1, self.config.dim)
        return F.linear(patches, self.patch_embed.weight.flatten(1), self.patch_embed.bias) + pos

    def encode(self, x: torch.Tensor, mask: torch.Tensor = None, layer: int = None) -> torch.Tensor:
        """x (B, C, F, T) normalised -> tokens (B, 1 + N_visible, D) after the final norm.
        mask (B, N) bool, True = masked: masked tokens are removed before the backbone (MAE, §5.2).
        `layer=k` runs only the first k blocks (negative: counted from the end), then the final norm."""
        tok = self.embed_patches(x, mask)
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(tok.shape[0], -1, -1)
        return self.backbone(torch.cat([cls, tok], dim=1), n_blocks=layer)

    def forward_features(self, logmel: torch.Tensor, layer: int = None) -> torch.Tensor:
        """Log-mel chunks (B, C, 200, 128) -> all tokens (B, 1 + N, D).  `layer=k` stops after the first
        k blocks (negative: counted from the end) and still applies the final norm (gram_spec §6.6)."""
        return self.encode(self.normalize(logmel), layer=layer)

    def pool(self, tokens: torch.Tensor, strategy: str, valid: torch.Tensor = None) -> torch.Tensor:
        """tokens (B, 1 + N, D) -> per-chunk output (gram_spec §6.3):
        raw (B, T', F' * D) with feature index f * D + d; mean (B, D) over patch tokens; cls (B, D).
        `valid` (T',) or (B, T') bool: for `mean`, average only the token columns marked True."""
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
        if valid is not None and strategy != "mean":
            raise ValueError(f"valid= applies to the 'mean' strategy only, not {strategy!r}")
        if strategy == "cls":
            return tokens[:, 0]
        gf, gt = self.config.grid
        b, _, d = tokens.shape
        patches = tokens[:, 1:].reshape(b, gf, gt, d)
        if strategy == "raw":
            return patches.permute(0, 2, 1, 3).reshape(b, gt, gf * d)
        if valid is None:
            return patches.mean(dim=(1, 2))
        w = valid.to(patches.dtype).expand(b, gt)  # (B, T')
        return (patches.mean(dim=1) * w[..., None]).sum(1) / w.sum(1, keepdim=True)


def init_linear(module: nn.Module) -> None:
    """GRAM-T initialisation of every `nn.Linear` in `module`: xavier-uniform weight, zero bias (§7.4)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
