"""Is the trained model's direction cue hidden by how its tokens are pooled?  Trained vs random init, per pooling.

    python -m benchmarks.token_pooling --suite out/demo/nathear --weights out/demo/weights [RUN2 ...]
                                       [--random-seeds 3] [--tasks nh_azimuth nh_loc3d] [--module gram_t_patch]
                                       [--device cuda] [--out token_pooling.md]

A GRAM scene embedding is the plain time-mean of the encoder's output frames (gram_spec §6.5).  On the level
baselines (benchmarks/level_pooling.py) the time-mean of a log-mel loses much of the direction that a power-domain
pooling keeps (loud frames, where the source is, weigh more).  This benchmark pools the same output frames
(timestamp embeddings, module defaults) in two ways and probes each as the report does (training.probe: ridge or
MLP chosen on valid):

* mean: the time-mean, i.e. the module's scene embedding;
* power-weighted: each output frame weighted by the mean mel power (both ears, all bands) of the log-mel frames
  it covers, weights summing to 1 per clip.

For the trained weights (several runs: their mean per test clip) and the random inits of the same architecture
(`--random-seeds N`: init seeds 0..N-1, their mean per test clip; seed s is the model `training.train --seed=s`
starts from), it prints test DOA errors with 95 % bootstrap intervals over test clips, the paired difference
trained - random init and the valid errors.  If the trained model's tokens held a direction cue that the
time-mean hides, the power-weighted pooling would show a gain over the random init that the mean does not.
"""
import argparse
import importlib
import tempfile
from pathlib import Path

import torch

from training.report import DOA, evaluate, intervals, merge_seeds
from training.taskio import read_json

POOLINGS = ("mean", "power-weighted")


def pooled_embedder(module: str, weights: str, pooling: str, device: str = "cpu"):
    """(B, C, n) audio -> (B, D) on the CPU: the module's output frames pooled over time (module docstring), the
    model on `device`."""
    from hear_gram.features import LogMel
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    mod = importlib.import_module(f"hear_gram.{module}")
    model = mod.load_model(weights)
    model.model.to(device)
    cfg = model.config
    frames_per_token = cfg.patch[1]
    lm = LogMel(cfg.sample_rate, cfg.n_fft, cfg.hop_length, cfg.n_mels)

    def embed(audio):
        tok, _ = mod.get_timestamp_embeddings(audio, model)  # (B, X, D); frame t covers log-mel frames [k t, k t + k)
        tok = tok.cpu().double()
        if pooling == "mean":
            return tok.mean(1).float()
        power = lm(audio.float()).double().exp().mean((1, 3))  # (B, T) mean mel power per log-mel frame
        x = tok.shape[1]
        need = x * frames_per_token
        if power.shape[1] < need:  # the last output frame may reach past the clip's last log-mel frame
            power = torch.cat([power, power[:, -1:].expand(-1, need - power.shape[1])], 1)
        w = power[:, :need].reshape(len(power), x, frames_per_token).mean(2)
        w = w / w.sum(1, keepdim=True)
        return (tok * w[..., None]).sum(1).float()
    return embed


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.token_pooling", description=__doc__.split("\n")[0])
    p.add_argument("--suite", required=True, help="a suite folder from `python -m training.minisuite` (or make demo)")
    p.add_argument("--weights", nargs="+", required=True, help="exported trained weights (several runs: averaged)")
    p.add_argument("--module", default="gram_t_patch")
    p.add_argument("--random-seeds", type=int, default=3, help="random inits of the same architecture: seeds 0..N-1")
    p.add_argument("--tasks", nargs="+", default=["nh_azimuth", "nh_loc3d"], help="localization tasks of the suite")
    p.add_argument("--device", default="cpu", help="where the models embed (e.g. cuda)")
    p.add_argument("--out", help="also write the table here (a new file; an existing one is refused)")
    a = p.parse_args(argv)
    if a.out and Path(a.out).exists():
        p.error(f"--out: {a.out} exists; choose a new file")
    if a.out and not Path(a.out).resolve().parent.is_dir():
        p.error(f"--out: no folder {Path(a.out).resolve().parent}")
    for task in a.tasks:
        meta = Path(a.suite) / "tasks" / task / "task_metadata.json"
        if not meta.exists():
            p.error(f"--tasks: no {meta}")
        if read_json(meta)["prediction_type"] != DOA:
            p.error(f"--tasks: {task} is not a localization task")
    for w in a.weights:
        if not Path(w).exists():
            p.error(f"--weights: no {w}")
    if a.random_seeds < 1:
        p.error(f"--random-seeds must be at least 1, got {a.random_seeds}")

    from hear_gram.checkpoint import save_model
    from hear_gram.model import GramEncoder
    from training.probe import random_model_config
    cfg = random_model_config(a.module, "same", a.weights[0])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        inits = []
        for s in range(a.random_seeds):
            torch.manual_seed(s)  # as training.train: the encoder is the first thing built after the seed
            inits.append(str(Path(tmp) / f"init{s}"))
            save_model(GramEncoder(cfg), inits[-1])
        for pooling in POOLINGS:
            cols = {f"trained {i}": pooled_embedder(a.module, w, pooling, a.device) for i, w in enumerate(a.weights)}
            cols.update({f"random {s}": pooled_embedder(a.module, f, pooling, a.device) for s, f in enumerate(inits)})
            res = evaluate(a.suite, cols, tasks=a.tasks, progress=lambda s: None)
            merge_seeds(res, [c for c in cols if c.startswith("trained")], "trained")
            merge_seeds(res, [c for c in cols if c.startswith("random")], "random init")
            ci = intervals(res, compare=("trained", "random init"))
            for task in a.tasks:
                row = ci[task]["DOA error mean (deg, lower is better)"]
                rows.append((task, pooling, row, res[task]["trained"]["valid_doa_mean_deg"],
                             res[task]["random init"]["valid_doa_mean_deg"]))
    runs, seeds = len(a.weights), a.random_seeds
    lines = [f"| task | pooling of the output frames | trained ({runs} run{'s' * (runs > 1)}) | random init ({seeds} "
             f"seed{'s' * (seeds > 1)}) | trained - random | valid: trained / random |", "|---|---|---|---|---|---|"]
    for task, pooling, row, vt, vr in sorted(rows, key=lambda r: (a.tasks.index(r[0]), POOLINGS.index(r[1]))):
        cell = lambda v: f"{v[0]:.1f} [{v[1]:.1f}, {v[2]:.1f}]"
        d = row["diff"]
        lines.append(f"| {task} | {pooling} | {cell(row['trained'])} | {cell(row['random init'])} | "
                     f"{d[0]:+.1f} [{d[1]:+.1f}, {d[2]:+.1f}] | {vt:.1f} / {vr:.1f} |")
    lines += ["", "Test mean DOA error (deg) [95 % bootstrap interval over test clips]; the paired difference on the "
              "same resamples (an interval without 0 is a real difference)."]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if a.out:
        tmp = Path(a.out).with_name(Path(a.out).name + ".tmp")
        tmp.write_text(text)
        tmp.replace(a.out)


if __name__ == "__main__":
    main()
