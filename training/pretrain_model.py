"""The pretraining model: a hear_gram encoder wrapped by the MW-MAE decoder, masking and the masked-MSE
loss (gram_spec §4-5; the MAE `models_mae` / `models_vit` split).

    model = PretrainModel(config)
    loss, pred, target = model(logmel, mask)       # (B, C, 200, 128) chunks, (B, N) bool, True = masked

`model.encoder` is the `hear_gram.model.GramEncoder` that inference uses.  The head's names are the
official ones (`mask_token`, `decoder_pos_embed`, `decoder_embed`, `decoder_blocks`, `decoder_norm`,
`spec_pred`, GRAM-M's unused `encoder_norm`); `official_state_dict()` / `load_official_state_dict()`
read and write the official Lightning-module keys of the whole model through `hear_gram.checkpoint`'s
rename table (GRAM-M's `decoder_v`, ...), requiring every key of the head.
"""

import torch
from torch import nn

from hear_gram import checkpoint
from hear_gram.model import GramConfig, GramEncoder, init_linear
from hear_gram.patching import patchify, sincos_2d
from training.decoder import DecoderBlock


def random_mask(batch: int, n_tokens: int, n_masked: int, generator: torch.Generator = None,
                device=None) -> torch.Tensor:
    """(batch, n_tokens) bool, True = masked: a uniformly random subset of `n_masked` tokens per row
    (unstructured, gram_spec §5.1)."""
    noise = torch.rand(batch, n_tokens, generator=generator, device=device)
    ranks = noise.argsort(dim=1).argsort(dim=1)
    return ranks < n_masked


def _masked_rows(v: torch.Tensor, mask: torch.Tensor, channels: int) -> torch.Tensor:
    """channels x the mean of v (B, N) over each row's masked patches -> (B,)."""
    m = mask.float()
    return channels * (v * m).sum(1) / m.sum(1)


def per_crop(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, channels: int) -> torch.Tensor:
    """The pretraining loss of every row: channels x mean over masked patches of the patch MSE."""
    return _masked_rows((pred.float() - target.float()).pow(2).mean(-1), mask, channels)


def loss_parts(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, channels: int) -> dict:
    """{"total": per_crop(...)} and, for two channels, its exact split into "common" (the error of (L + R) / 2)
    and "interaural" (the error of (L - R) / 2), the latter again into "interaural level" (the error of each
    patch's mean level difference) and the rest (its detail within the patch; training.recon's docstring);
    every value is (B,)."""
    e = pred.float() - target.float()
    parts = {"total": _masked_rows(e.pow(2).mean(-1), mask, channels)}
    if channels == 2:
        b, n, _ = target.shape
        e = e.reshape(b, n, 2, -1)  # a patch holds channel, then frequency, time
        side = (e[:, :, 0] - e[:, :, 1]) / 2
        for name, v in (("common", e.mean(2).pow(2).mean(-1)), ("interaural", side.pow(2).mean(-1)),
                        ("interaural level", side.mean(-1).pow(2))):
            parts[name] = _masked_rows(v, mask, channels)
    return parts


class PretrainModel(nn.Module):
    """GRAM-T / GRAM-M masked autoencoder: `encoder` (GramEncoder) + MW-MAE decoder."""

    def __init__(self, config: GramConfig):
        super().__init__()
        self.config = c = config
        dd = c.decoder_dim
        self.encoder = GramEncoder(config)
        if c.encoder == "transformer":
            # GRAM-T registers its mask token as a buffer: it is never trained (gram_spec §9.13).
            self.register_buffer("mask_token", torch.randn(1, 1, dd) * 0.02)
        else:
            self.mask_token = nn.Parameter(torch.randn(1, 1, dd) * 0.02)
            # in official GRAM-M checkpoints, never used in forward (gram_spec §3.2): kept, not trained
            self.encoder_norm = nn.LayerNorm(c.dim).requires_grad_(False)
        self.register_buffer("decoder_pos_embed", sincos_2d(dd, c.grid))  # (1, N, Dd), no CLS row
        self.decoder_embed = nn.Linear(c.dim, dd)
        self.decoder_blocks = nn.ModuleList(DecoderBlock(dd, c.decoder_heads, c.decoder_windows)
                                            for _ in range(c.decoder_depth))
        self.decoder_norm = nn.LayerNorm(dd)
        self.spec_pred = nn.Sequential(nn.Linear(dd, c.patch_dim))
        for m in (self.decoder_embed, self.decoder_blocks, self.spec_pred):
            init_linear(m)  # xavier-uniform, zero bias, as the encoder's Linears (gram_spec §7.4)

    def forward_decoder(self, latent: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """latent (B, 1 + N_vis, D), mask (B, N) -> prediction (B, N, C * fs * ts) for every patch."""
        e = self.decoder_embed(latent)[:, 1:]  # the CLS output is dropped (gram_spec §4.1)
        b, n = mask.shape
        z = self.mask_token.to(e.dtype).expand(b, n, -1).clone()
        z[~mask] = e.reshape(-1, e.shape[-1])
        z = z + self.decoder_pos_embed
        for blk in self.decoder_blocks:
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
        x = self.encoder.normalize(logmel)
        target = patchify(x, self.config.patch)
        pred = self.forward_decoder(self.encoder.encode(x, mask), mask)
        return self.loss(pred, target, mask), pred, target

    # -- official key names -------------------------------------------------------------------------
    def official_state_dict(self) -> dict:
        """The whole model under the official Lightning-module keys (no prefix)."""
        ours = {(k[len("encoder."):] if k.startswith("encoder.") else k): v for k, v in self.state_dict().items()}
        return checkpoint.to_official(ours, self.config.encoder)

    def load_official_state_dict(self, state_dict: dict) -> None:
        """Strictly load an official-layout state dict (any wrapper prefix); the head must be complete."""
        enc, head, layout = checkpoint.from_official(state_dict)
        problems = checkpoint.mismatches({k: tuple(v.shape) for k, v in {**enc, **head}.items()}, self.config,
                                         require_head=True, layout=layout)
        if problems:
            raise checkpoint.CheckpointError("checkpoint does not match the pretraining model: "
                                             + "; ".join(problems))
        self.load_state_dict({**{"encoder." + k: v for k, v in checkpoint.encoder_state(self.config, enc).items()},
                              **head}, strict=True)
