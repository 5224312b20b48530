"""Training batches: naturalistic scenes -> 10 s binaural log-mels -> in-batch 2 s crops + masks (gram_spec §7.3).

    stream = CropStream(scene_cfg, gram_cfg, clips=32, crops_per_clip=16, seed=0, rank=0, device="cpu")
    x, mask = stream.next_batch(model.melspec)
    # x: (clips * crops_per_clip, C, 200, 128) float32 log-mel crops (time before frequency, as GramModel takes them)
    # mask: (clips * crops_per_clip, N) bool, True = masked, exactly round(mask_ratio * N) per row (§5.1)

Per step (gram_spec §7.3, steps 2-4):
1. `clips` scenes of 10 s at 32 kHz from `training.scenes.SceneSynth` (online mixing; user corpora come in
   through `SceneConfig.source_dirs` / `source_shards` / `noise_dirs` / `brir_dirs`).
2. Log-mel in float32 outside autocast with the model's own front end (ln(mel + cfg.log_eps); training
   presets use 1e-5 as the official training, §9.1): (B, C, 1001, 128), padded with 0.0 rows to
   `input_frames` = 1024 frames as the official `pad_or_truncate_batch`.
3. `crops_per_clip` start frames per clip ~ U{0 .. input_frames - 200} (crops may overlap and may include the
   padded tail, as in the official code), gathered to (B * K, C, 200, 128) and shuffled across clips.
4. Masks: i.i.d. uniformly random subsets of the tokens (`hear_gram.model.random_mask`).

Per-rank data: every rank builds the same BRIR bank and embedded source pool (seed `seed`, so a run's rooms
do not depend on the world size), but draws its scenes, crops and masks from its own stream seeded by
(seed, rank): ranks see disjoint random draws (the sampling is with replacement, so this is the sharding).
`state_dict()` / `load_state_dict()` capture the exact position of both streams for `--resume`.
"""

import numpy as np
import torch

from hear_gram.model import GramConfig, random_mask

from .scenes import SceneConfig, SceneSynth


def scene_config(preset: str, overrides: dict = None) -> SceneConfig:
    """A `SceneConfig` preset with field overrides (lists become tuples, as the frozen dataclass expects)."""
    import dataclasses

    cfg = SceneConfig.preset(preset)
    overrides = dict(overrides or {})
    names = {f.name for f in dataclasses.fields(SceneConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"unknown SceneConfig fields {unknown}; known: {sorted(names)}")
    fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    return dataclasses.replace(cfg, **fixed)


class CropStream:
    """Endless stream of (log-mel crops, masks) for one rank; see the module docstring."""

    def __init__(self, scenes: SceneConfig, model_cfg: GramConfig, clips: int, crops_per_clip: int,
                 input_frames: int = 1024, seed: int = 0, rank: int = 0, device="cpu"):
        if input_frames < model_cfg.chunk_frames:
            raise ValueError(f"input_frames={input_frames} is shorter than a {model_cfg.chunk_frames}-frame crop")
        self.cfg, self.clips, self.k, self.input_frames = model_cfg, clips, crops_per_clip, input_frames
        self.device = torch.device(device)
        self.synth = SceneSynth(scenes, seed=seed, device=self.device, split="train")
        # The synthesizer's own draw stream is replaced by a per-rank one: the bank and pool stay shared.
        ss = np.random.SeedSequence([seed, rank])
        scene_ss, crop_ss = ss.spawn(2)
        self.synth.rng = np.random.default_rng(scene_ss)
        self.gen = torch.Generator().manual_seed(int(crop_ss.generate_state(1, np.uint64)[0] >> 1))

    @property
    def crops(self) -> int:
        return self.clips * self.k

    @torch.no_grad()
    def logmels(self, melspec) -> torch.Tensor:
        """(clips, C, input_frames, n_mels) float32 log-mels of fresh scenes."""
        audio, _ = self.synth.sample(self.clips)  # (B, 2, 320000)
        if self.cfg.in_channels == 1:
            audio = audio.mean(dim=1, keepdim=True)
        elif self.cfg.in_channels != audio.shape[1]:
            raise ValueError(f"scenes have {audio.shape[1]} channels, the model takes {self.cfg.in_channels}")
        with torch.autocast(self.device.type, enabled=False):
            lm = melspec(audio.float())  # (B, C, 1001, F)
        t = lm.shape[2]
        if t < self.input_frames:  # zero rows appended (official pad_or_truncate_batch)
            lm = torch.nn.functional.pad(lm, (0, 0, 0, self.input_frames - t))
        return lm[:, :, : self.input_frames]

    @torch.no_grad()
    def next_batch(self, melspec) -> tuple:
        """-> (x (B*K, C, 200, F) float32, mask (B*K, N) bool) on the stream's device."""
        lm = self.logmels(melspec)
        b, frames = lm.shape[0], self.cfg.chunk_frames
        starts = torch.randint(0, self.input_frames - frames + 1, (b, self.k), generator=self.gen)  # (B, K)
        idx = (starts[..., None] + torch.arange(frames)).to(lm.device)  # (B, K, 200)
        rows = torch.arange(b, device=lm.device)[:, None, None]
        x = lm.permute(0, 2, 1, 3)[rows, idx]  # (B, K, 200, C, F)
        x = x.permute(0, 1, 3, 2, 4).reshape(b * self.k, lm.shape[1], frames, lm.shape[3])
        x = x[torch.randperm(b * self.k, generator=self.gen).to(lm.device)]
        mask = random_mask(b * self.k, self.cfg.n_tokens, self.cfg.n_masked, generator=self.gen)
        return x.contiguous(), mask.to(lm.device)

    # -- exact data position for --resume --------------------------------------------------------
    def state_dict(self) -> dict:
        return {"scenes": self.synth.rng.bit_generator.state, "crops": self.gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.synth.rng.bit_generator.state = state["scenes"]
        self.gen.set_state(state["crops"])
