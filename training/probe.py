"""Probing frozen embeddings: embedders, task embedding, standardisation and the probe fit (HEAR-like protocol).

    data = embed_task(task_folder, embedder)       # {split: (X (N, D) float32, labels)}
    r = fit_probe(xs, ys, loss_fn, score_fn, d_out, ridge_targets=Y)   # train / valid / test

Embedders map a (B, C, n) float tensor of 32 kHz audio to (B, D) features:
* `logmel_embedder()`: mean and standard deviation over time of each ear's 128-band log-mel (512-d, no model).
* `level_embedder()`: what GRAM's input holds for localization without a model (no phase: the log-mel is all
  GRAM sees): per ear and mel band the level ln(time-mean of the mel power), i.e. the log-mel pooled over time
  in the power domain (loud frames weigh more, as in the cue baseline below), and the interaural level
  difference of those levels (384-d).
* `binaural_embedder()`: hand-made binaural cues (213-d, no model): per band (24 bands, 150 Hz-16 kHz) the
  interaural level difference and each ear's mean log energy, the interaural phase (cos, sin of the
  time-averaged cross-spectrum) of the 48 STFT bins below 1.5 kHz, and the GCC-PHAT cross-correlation
  r(tau) = sum_n l[n + tau] r[n] at the 45 lags tau within +-0.7 ms (interaural time difference; a source on the
  left, whose sound reaches the left ear first, peaks at a negative tau).
* `gram_embedder(module, weights)`: scene embeddings of a hear_gram HEAR module, in-process.
* `random_embedder(module, config, folder)`: the same for a randomly initialised model (seed 0, as training).

Probe: features standardised with train statistics; a grid of closed-form ridge regressions (on one-hot or
direction targets; alpha = N x 10^-3..10^3) and a shallow MLP (hidden 256, full-batch Adam, lr 1e-3, weight decay
1e-3, dropout 0.1, early stopping on valid); every point is fitted on train and scored on valid with
`score_fn` (lower is better), the best one is scored once on test.
"""
from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .taskio import SR, read_json, read_split

RIDGE_ALPHAS = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)  # times the number of training clips
MLP_GRID = ((256, 1e-3),)  # (hidden, lr)
GRID = {"ridge": RIDGE_ALPHAS, "mlp": MLP_GRID}


# ---------------------------------------------------------------- the probe
def standardize(train: np.ndarray, *others):
    """Train mean / standard deviation applied to every split -> float32 tensors."""
    mu, sd = train.mean(0), train.std(0) + 1e-6
    return [torch.as_tensor((x - mu) / sd, dtype=torch.float32) for x in (train, *others)]


def mlp(d_in: int, d_out: int, hidden: int) -> nn.Module:
    if hidden == 0:
        return nn.Linear(d_in, d_out)
    return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Dropout(0.1), nn.Linear(hidden, d_out))


def ridge_path(x: torch.Tensor, y: torch.Tensor, alphas):
    """Closed-form ridge regressions of y (N, K) on x (N, D) with an unpenalised intercept, one per alpha:
    yields (alpha, predict(x') -> (N', K)) sharing one SVD."""
    x64, y64 = x.double(), y.double()
    xm, ym = x64.mean(0), y64.mean(0)
    u, s, vt = torch.linalg.svd(x64 - xm, full_matrices=False)
    uty = u.T @ (y64 - ym)
    for a in alphas:
        w = vt.T @ ((s / (s ** 2 + a))[:, None] * uty)  # (D, K)
        yield a, (lambda z, w=w: ((z.double() - xm) @ w + ym).float())


def fit_probe(xs, ys, loss_fn, score_fn, d_out: int, ridge_targets=None, grid=None, max_epochs: int = 500,
              patience: int = 40, seed: int = 0) -> dict:
    """Grid search (module docstring) on train xs[0]/ys[0], selection on valid xs[1]/ys[1] by score_fn(pred,
    y) (lower is better), test predictions on xs[2].  ridge_targets: (N_train, d_out) numeric targets of the
    ridge points (one-hot labels, direction vectors); None skips them.  Returns {"pred", "valid_score",
    "hparams"}."""
    grid = grid or GRID
    xtr, xva, xte = standardize(*xs)
    best = None  # (score, hparams, predict)
    if ridge_targets is not None:
        n = len(xtr)
        for a, predict in ridge_path(xtr, torch.as_tensor(np.asarray(ridge_targets, np.float32)),
                                     [m * n for m in grid.get("ridge", ())]):
            s = float(score_fn(predict(xva).numpy(), ys[1]))
            if best is None or s < best[0]:
                best = (s, {"probe": "ridge", "alpha": a}, predict)
    ytr = torch.as_tensor(ys[0])
    for hidden, lr in grid.get("mlp", ()):
        torch.manual_seed(seed)
        model = mlp(xtr.shape[1], d_out, hidden)
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-3)
        point, state, bad = (np.inf, 0), None, 0
        for epoch in range(max_epochs):
            model.train()
            opt.zero_grad()
            loss_fn(model(xtr), ytr).backward()
            opt.step()
            model.eval()
            with torch.no_grad():
                s = float(score_fn(model(xva).numpy(), ys[1]))
            if s < point[0]:
                point, state, bad = (s, epoch + 1), copy.deepcopy(model.state_dict()), 0
            else:
                bad += 1
                if bad >= patience:
                    break
        if best is None or point[0] < best[0]:
            final = mlp(xtr.shape[1], d_out, hidden)
            final.load_state_dict(state)
            final.eval()
            best = (point[0], {"probe": "mlp", "hidden": hidden, "lr": lr, "epoch": point[1]},
                    lambda z, m=final: m(z))
    score, hparams, predict = best
    with torch.no_grad():
        pred = predict(xte).numpy()
    return {"pred": pred, "valid_score": score, "hparams": hparams}


def classify(data: dict, vocab: list[str], **kw) -> dict:
    """Multiclass probe on {split: (X, labels)}: test top-1 accuracy and per-clip correctness."""
    idx = {v: i for i, v in enumerate(vocab)}
    xs = [np.asarray(data[s][0], np.float32) for s in ("train", "valid", "test")]
    ys = [np.array([idx[lbl[0]] for lbl in data[s][1]]) for s in ("train", "valid", "test")]
    ce = nn.CrossEntropyLoss()

    def score(logits, y):  # valid error rate, ties broken by cross-entropy
        err = float((logits.argmax(1) != y).mean())
        return err + 1e-3 * float(ce(torch.from_numpy(np.asarray(logits, np.float32)), torch.from_numpy(y)))

    r = fit_probe(xs, ys, ce, score, len(vocab), ridge_targets=np.eye(len(vocab), dtype=np.float32)[ys[0]], **kw)
    correct = r["pred"].argmax(1) == ys[2]
    return {"top1_acc": float(correct.mean()), "n": int(len(ys[2])), "per_clip": correct.astype(float).tolist(),
            "valid_score": r["valid_score"], "hparams": r["hparams"]}


# ---------------------------------------------------------------- embedding a task
def embed_task(task, embed_fn, batch: int = 16) -> dict:
    """{split: (X (N, D) float32, labels)} with embed_fn((B, C, n) float tensor) -> (B, D)."""
    out = {}
    for split in read_json(Path(task) / "task_metadata.json")["splits"]:
        _, audio, labels = read_split(task, split)
        feats = []
        with torch.no_grad():
            if isinstance(audio, np.ndarray):
                for i in range(0, len(audio), batch):
                    feats.append(embed_fn(torch.from_numpy(audio[i:i + batch])).float().cpu().numpy())
            else:
                feats = [embed_fn(torch.from_numpy(a)[None]).float().cpu().numpy() for a in audio]
        out[split] = (np.concatenate(feats), labels)
    return out


# ---------------------------------------------------------------- embedders
def logmel_embedder():
    """(B, C, n) -> (B, C * 2 * 128): mean and std over time of each channel's log-mel."""
    from hear_gram.features import LogMel
    lm = LogMel()

    def embed(audio):
        x = lm(audio.float())  # (B, C, T, 128)
        return torch.cat([x.mean(2), x.std(2)], dim=-1).flatten(1)
    return embed


def level_embedder(pooling: str = "power", ild: bool = True):
    """(B, C, n) -> (B, C * 128 [+ 128 with `ild` and 2 channels]) from GRAM's log-mel: each channel's level per
    mel band pooled over time, `power`: ln(time-mean of the mel power) (loud frames weigh more), `mean`: the
    time-mean of the log-mel; with `ild` and 2 channels also left - right of those (interaural level differences)."""
    from hear_gram.features import LogMel
    if pooling not in ("power", "mean"):
        raise ValueError(f"pooling must be 'power' or 'mean', got {pooling!r}")
    lm = LogMel()

    def embed(audio):
        x = lm(audio.float()).double()  # (B, C, T, 128): ln(mel power + eps)
        if pooling == "power":
            level = torch.logsumexp(x, dim=2) - math.log(x.shape[2])  # ln(mean_t mel power), no overflow
        else:
            level = x.mean(2)
        parts = [level.flatten(1)] + ([level[:, 0] - level[:, 1]] if ild and level.shape[1] == 2 else [])
        return torch.cat(parts, dim=1).float()
    return embed


def binaural_embedder(n_fft: int = 1024, n_bands: int = 24, ipd_max_hz: float = 1500.0, max_lag_ms: float = 0.7):
    """(B, 2, n) -> hand-made binaural cues (module docstring); 2 * n_bands + n_bands + 2 * bins + lags dims."""
    hop = n_fft // 2
    freqs = np.fft.rfftfreq(n_fft, 1 / SR)
    edges = np.geomspace(150.0, SR / 2, n_bands + 1)  # from 150 Hz every band holds an STFT bin (n_fft 1024)
    member = np.stack([(freqs >= lo) & (freqs < hi) for lo, hi in zip(edges[:-1], edges[1:])])
    if not member.any(1).all():
        raise ValueError(f"n_fft={n_fft} leaves some of the {n_bands} bands without an STFT bin")
    band = torch.as_tensor(member / member.sum(1, keepdims=True), dtype=torch.float64)  # (bands, bins)
    ipd_bins = np.flatnonzero((freqs > 0) & (freqs <= ipd_max_hz))
    max_lag = int(round(max_lag_ms * 1e-3 * SR))
    window = torch.hann_window(n_fft, dtype=torch.float64)

    def embed(audio):
        if audio.shape[1] != 2:
            raise ValueError(f"binaural cues need 2-channel audio, got {audio.shape[1]} channels")
        x = audio.double()
        spec = torch.stft(x.reshape(-1, x.shape[-1]), n_fft, hop, window=window, return_complex=True)
        spec = spec.reshape(x.shape[0], 2, *spec.shape[-2:])  # (B, 2, bins, frames)
        left, right = spec[:, 0], spec[:, 1]
        power = (spec.abs() ** 2).mean(-1)  # (B, 2, bins)
        band_pow = torch.einsum("kf,bcf->bck", band, power) + 1e-10  # (B, 2, bands)
        level = 10 * torch.log10(band_pow)
        ild = level[:, 0] - level[:, 1]
        cross = (left * right.conj()).mean(-1)  # (B, bins) time-averaged cross-spectrum
        ipd = cross[:, ipd_bins] / (cross[:, ipd_bins].abs() + 1e-12)
        phat = cross / (cross.abs() + 1e-12)
        gcc = torch.fft.irfft(phat, n=n_fft)  # (B, n_fft), lag 0 first
        lags = torch.cat([gcc[:, -max_lag:], gcc[:, :max_lag + 1]], dim=1)
        return torch.cat([ild, level.flatten(1), ipd.real, ipd.imag, lags], dim=1).float()
    return embed


def gram_embedder(module: str = "gram_t_patch", weights: str = "", device: str = "cpu", **options):
    """Scene-embedding function of a hear_gram HEAR module (in-process), its model on `device` (the runtime
    moves the audio to the model's device); embeddings come back on the CPU."""
    import importlib
    mod = importlib.import_module(f"hear_gram.{module}")
    model = mod.load_model(weights, **options)
    model.model.to(device)
    return lambda audio: mod.get_scene_embeddings(audio, model).cpu()


def random_model_config(module: str, config: str, weights: str | None = None):
    """GramConfig of a random-init column: "full" (the variant's official architecture), "tiny" (the model of
    training/presets/tiny.py), or "same" (the architecture of `weights`)."""
    from hear_gram.model import VARIANTS, GramConfig
    from hear_gram.runtime import load_runtime

    from .config import load_preset
    base = VARIANTS[module].config
    if config == "same":
        if not weights:
            raise ValueError("random config 'same' needs --weights (the trained model whose architecture it copies)")
        return load_runtime(module, weights).config
    if config == "tiny":
        return GramConfig.from_dict({**base.to_dict(), **load_preset("tiny")["model"]})
    if config == "full":
        return base
    raise ValueError(f"random config must be full, tiny or same, got {config!r}")


def random_embedder(module: str, config: str, folder: str, weights: str | None = None, seed: int = 0,
                    device: str = "cpu", **options):
    """Scene embeddings of a randomly initialised model (`torch.manual_seed(seed)` then the model, as training
    starts) saved to `folder` and loaded like any weights."""
    from hear_gram.checkpoint import save_model
    from hear_gram.model import GramEncoder
    cfg = random_model_config(module, config, weights)
    torch.manual_seed(seed)  # training builds PretrainModel(cfg) right after this seed: its encoder comes first
    save_model(GramEncoder(cfg), folder)
    return gram_embedder(module, folder, device, **options)


__all__ = ["GRID", "binaural_embedder", "classify", "embed_task", "fit_probe", "gram_embedder", "logmel_embedder",
           "mlp", "random_embedder", "random_model_config", "ridge_path", "standardize"]
