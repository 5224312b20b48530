"""A learning signal without probes: masked-reconstruction loss on held-out scenes.

    python -m training.recon RUN_DIR [--scenes 32] [--crops 4] [--scene-preset smoke] [--json out.json]

Scenes come from `SceneSynth(split="test")`: rooms and placements of the held-out seed namespace that training
never draws (the dry sources are the same embedded pool).  Each scene's log-mel (the model's own front end and
log offset) gives `crops` 2 s crops at fixed, evenly spaced starts, each with one random mask (a fixed seed), so
every model is scored on the very same crops and masks.  Per crop the loss is the pretraining loss (MSE on the
masked patches of the normalised log-mel, times the channel count, gram_spec §5.3) of:

* `trained`: the run's checkpoint (encoder and decoder);
* `random init`: the same architecture from the same seed before any step (exactly where training started);
* `zero`: predicting 0 for every masked value (the chunk mean, since inputs are normalised per chunk);
* `position mean`: predicting each masked patch by the mean patch at its position over train-split scenes;
* `patch mean (oracle)`: predicting each masked patch by its own mean value (it knows the answer's level);
* `band context`: predicting each masked patch, per ear and mel bin, by the mean over time of the visible
  patches in its frequency band (a stationary-scene guess from what the encoder sees; 0 if none is visible).

For binaural models each loss splits exactly into a part common to both ears and an interaural part: with e =
prediction - target per ear, (eL^2 + eR^2) / 2 = ((eL + eR) / 2)^2 + ((eL - eR) / 2)^2, so loss = common +
interaural, the interaural part being the error of the predicted level difference (L - R) / 2 of the normalised
log-mel.  A predictor that gives both ears the same value (zero, patch mean) scores the masked patches' mean
squared (L - R) / 2 there; a model below it predicts the interaural level differences of patches it never saw,
i.e. it learned where the sources of a scene are, without any probe.  The interaural part splits once more, as a
mean square is its squared mean plus its variance: `interaural level`, the error of each patch's mean level
difference (the spatial cue at the patch's resolution), and the rest, the level difference's detail across the
patch's mel bins and frames.

Means over crops come with 95 % bootstrap intervals over scenes (crops of one scene resampled together), and
paired differences (trained - other) on the same resamples.
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch

from hear_gram.model import GramConfig
from hear_gram.patching import patchify

from .export import load_training_model
from .pretrain_model import PretrainModel, loss_parts, random_mask
from .scenes import SceneConfig, SceneSynth


def heldout_crops(model_cfg: GramConfig, n_scenes: int = 32, crops: int = 4, seed: int = 0,
                  scene_preset: str = "smoke", split: str = "test", batch: int = 8):
    """(log-mel crops (n_scenes * crops, C, 200, F), masks (n_scenes * crops, N) bool) of `split` scenes."""
    from hear_gram.features import LogMel

    synth = SceneSynth(SceneConfig.preset(scene_preset), seed=seed, split=split)
    mel = LogMel(model_cfg.sample_rate, n_mels=model_cfg.n_mels, log_eps=model_cfg.log_eps)
    frames = model_cfg.chunk_frames
    xs = []
    for i in range(0, n_scenes, batch):
        audio, _ = synth.sample(min(batch, n_scenes - i))
        if model_cfg.in_channels == 1:
            audio = audio.mean(dim=1, keepdim=True)
        with torch.no_grad():
            lm = mel(audio.float())  # (B, C, T, F)
        starts = np.linspace(0, lm.shape[2] - frames, crops).round().astype(int)
        xs.append(torch.stack([lm[:, :, s:s + frames] for s in starts], dim=1).flatten(0, 1))
    x = torch.cat(xs)
    gen = torch.Generator().manual_seed(1000 + seed)
    return x, random_mask(len(x), model_cfg.n_tokens, model_cfg.n_masked, generator=gen)


@torch.no_grad()
def model_losses(model: PretrainModel, x: torch.Tensor, mask: torch.Tensor, batch: int = 32) -> dict:
    """loss_parts of `model` on every crop, as numpy arrays."""
    model.eval()
    dev = next(model.parameters()).device
    out = []
    for i in range(0, len(x), batch):
        xb, mb = x[i:i + batch].to(dev), mask[i:i + batch].to(dev)
        _, pred, target = model(xb, mb)
        out.append({k: v.cpu() for k, v in loss_parts(pred, target, mb, model.config.in_channels).items()})
    return {k: torch.cat([o[k] for o in out]).numpy() for k in out[0]}


def targets(cfg: GramConfig, x: torch.Tensor) -> torch.Tensor:
    """Normalised patches (N, tokens, patch_dim), as the loss sees them."""
    xn = torch.nn.functional.layer_norm(x.transpose(2, 3).float(), x.transpose(2, 3).shape[1:], eps=1e-5)
    return patchify(xn, cfg.patch)


def band_context(cfg: GramConfig, t: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, N, P) prediction: every patch gets, per channel and mel bin, the mean over the time frames of the
    visible (mask False) patches in its row of the patch grid (its frequency band); 0 where none is visible."""
    gf, gt = cfg.grid
    fs, ts = cfg.patch
    b, c = t.shape[0], cfg.in_channels
    vis = (~mask).float().reshape(b, gf, gt, 1, 1)
    prof = t.float().reshape(b, gf, gt, c, fs, ts).mean(-1)  # (B, F', T', C, fs): each patch's spectrum
    band = (prof * vis).sum(2) / vis.sum(2).clamp(min=1)  # (B, F', C, fs)
    return band[:, :, None, :, :, None].expand(b, gf, gt, c, fs, ts).reshape(t.shape)


def baseline_losses(cfg: GramConfig, x: torch.Tensor, mask: torch.Tensor, mean_patch: torch.Tensor) -> dict:
    """{predictor: loss_parts as numpy arrays} of the model-free predictors (module docstring)."""
    t = targets(cfg, x)
    preds = {"zero": torch.zeros_like(t), "position mean": mean_patch.expand_as(t),
             "patch mean (oracle)": t.mean(-1, keepdim=True).expand_as(t), "band context": band_context(cfg, t, mask)}
    return {k: {n: v.numpy() for n, v in loss_parts(p, t, mask, cfg.in_channels).items()} for k, p in preds.items()}


def bootstrap(per_scene: dict, n_boot: int = 2000, seed: int = 0) -> dict:
    """{name: (N,) per-scene values} -> {name: (mean, lo, hi)} with one set of resamples for every name."""
    n = len(next(iter(per_scene.values())))
    idx = np.random.default_rng(seed).integers(0, n, (n_boot, n))
    out = {}
    for k, v in per_scene.items():
        v = np.asarray(v, np.float64)
        b = v[idx].mean(1)
        out[k] = (float(v.mean()), float(np.percentile(b, 2.5)), float(np.percentile(b, 97.5)))
    return out


def evaluate(trained: PretrainModel, n_scenes: int = 32, crops: int = 4, seed: int = 0,
             scene_preset: str = "smoke", init_seed: int = 0) -> dict:
    """Held-out reconstruction losses of `trained`, its random init (torch.manual_seed(init_seed)) and the
    baselines; per-scene values, bootstrap intervals and paired differences to `trained`."""
    cfg = trained.config
    torch.manual_seed(init_seed)
    init = PretrainModel(cfg).to(next(trained.parameters()).device)
    x, mask = heldout_crops(cfg, n_scenes, crops, seed, scene_preset, "test")
    xt, _ = heldout_crops(cfg, n_scenes, crops, seed, scene_preset, "train")
    mean_patch = targets(cfg, xt).mean(0, keepdim=True)  # (1, tokens, patch_dim)
    losses = {"trained": model_losses(trained, x, mask), "random init": model_losses(init, x, mask),
              **baseline_losses(cfg, x, mask, mean_patch)}
    res = {"n_scenes": n_scenes, "crops": crops, "seed": seed, "scene_preset": scene_preset}
    for part in losses["trained"]:  # "total" -> "loss" / "diff"; the split -> "<part>" / "diff_<part>"
        scenes = {k: v[part].reshape(n_scenes, crops).mean(1) for k, v in losses.items()}
        diffs = {f"trained - {k}": scenes["trained"] - v for k, v in scenes.items() if k != "trained"}
        key = "loss" if part == "total" else part
        res[key], res["diff" if part == "total" else f"diff_{part}"] = bootstrap(scenes), bootstrap(diffs)
        res["per_scene" if part == "total" else f"per_scene_{part}"] = {k: v.tolist() for k, v in scenes.items()}
    return res


def table(res: dict) -> str:
    def cell(v, d=3):
        return f"{v[0]:.{d}f} [{v[1]:.{d}f}, {v[2]:.{d}f}]"

    def dcell(v, d=3):
        return f"{v[0]:+.{d}f} [{v[1]:+.{d}f}, {v[2]:+.{d}f}]" if v else ""

    split = "interaural" in res
    lines = [f"Held-out masked reconstruction loss ({res['n_scenes']} test-split scenes x {res['crops']} crops, "
             f"one fixed mask each; mean [95 % bootstrap CI over scenes], lower is better"
             + ("; loss = common + interaural, the interaural part being the error of the predicted level "
                "difference between the ears, (L - R) / 2 of the normalised log-mel, and its interaural level part "
                "the error of each patch's mean level difference" if split else "") + "):", "",
             "| predictor | loss | trained - predictor |"
             + (" common | interaural | trained - predictor (interaural) | interaural level (patch means) | "
                "trained - predictor (interaural level) |" if split else ""),
             "|---|---|---|" + ("---|---|---|---|---|" if split else "")]
    for k, v in res["loss"].items():
        row = f"| {k} | {cell(v)} | {dcell(res['diff'].get(f'trained - {k}'))} |"
        if split:
            row += (f" {cell(res['common'][k])} | {cell(res['interaural'][k])} | "
                    f"{dcell(res['diff_interaural'].get(f'trained - {k}'))} | {cell(res['interaural level'][k], 4)} | "
                    f"{dcell(res['diff_interaural level'].get(f'trained - {k}'), 4)} |")
        lines.append(row)
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.recon", description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", help="a training run folder or its ckpt.pt")
    p.add_argument("--scenes", type=int, default=32)
    p.add_argument("--crops", type=int, default=4)
    p.add_argument("--seed", type=int, default=0, help="scene seed (the held-out namespace of this seed)")
    p.add_argument("--scene-preset", default="smoke")
    p.add_argument("--json", help="write the results here")
    a = p.parse_args(argv)
    model, ckpt = load_training_model(a.run_dir)
    init_seed = ckpt["config"]["seed"]
    res = evaluate(model, a.scenes, a.crops, a.seed, a.scene_preset, init_seed=init_seed)
    print(table(res))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
