"""Comparison report on a (mini) Nat-HEAR suite: one markdown table with every task's test score.

    python -m training.report --suite nathear_ci [--weights TRAINED_FOLDER] [--random-config full|tiny|same]
                              [--module gram_t_patch] [--out report.md] [--png-dir DIR] [--json results.json]

Columns: the log-mel baseline (mean and standard deviation over time of the 128-band log-mel of each ear,
concatenated: 512-d, no model), GRAM-T with random weights (the full ViT-B config by default, or the tiny test
config), and a trained checkpoint when --weights is given (any path `hear_gram.<module>.load_model` accepts).
Embeddings are computed in-process with the HEAR module (scene embeddings, the module's default options).

Probes (in-process, small and fast; the heareval path is proven by tests/test_heareval_e2e.py):
scene tasks: a shallow MLP classifier (hidden 0|256, lr 1e-3|1e-4, full-batch Adam, early stopping and
selection on valid accuracy), test top-1 accuracy; localization tasks: the DOA regressor of
training.localization (test mean / median great-circle error in degrees).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import localization
from .nathear import read_json

TINY = dict(dim=64, depth=2, num_heads=4, mlp_dim=128, decoder_dim=32, decoder_depth=1, decoder_heads=8)


def logmel_embedder():
    """(B, C, n) -> (B, C * 2 * 128): mean and std over time of each channel's log-mel."""
    from hear_gram.features import LogMel
    lm = LogMel()

    def embed(audio):
        x = lm(audio.float())  # (B, C, T, 128)
        return torch.cat([x.mean(2), x.std(2)], dim=-1).flatten(1)
    return embed


def random_embedder(module: str, config: str, folder: str, weights: str = None):
    """Scene embeddings of a randomly initialised model (seed 0) saved to `folder` and loaded like any weights.
    config: "full" (the variant's official architecture), "tiny", or "same" (the architecture of `weights`,
    so that the trained column differs from this one only by training)."""
    from hear_gram.checkpoint import save_model
    from hear_gram.model import VARIANTS, GramConfig, GramEncoder
    from hear_gram.runtime import load_runtime
    base = VARIANTS[module].config
    if config == "same":
        if not weights:
            raise ValueError("--random-config same needs --weights")
        cfg = load_runtime(module, weights).config
    else:
        cfg = base if config == "full" else GramConfig(**{**base.to_dict(), **TINY})
    torch.manual_seed(0)
    save_model(GramEncoder(cfg), folder)
    return localization.gram_embedder(module, folder)


def scene_probe(data: dict, vocab: list[str]) -> dict:
    idx = {v: i for i, v in enumerate(vocab)}
    xs = [np.asarray(data[s][0], np.float32) for s in ("train", "valid", "test")]
    ys = [np.array([idx[lbl[0]] for lbl in data[s][1]]) for s in ("train", "valid", "test")]
    ce = nn.CrossEntropyLoss()

    def score(logits, y):  # valid error rate, ties broken by cross-entropy
        err = float((logits.argmax(1) != y).mean())
        return err + 1e-3 * float(ce(torch.from_numpy(logits), torch.from_numpy(y)))

    r = localization.fit_probe(xs, ys, ce, score, len(vocab))
    return {"top1_acc": float((r["pred"].argmax(1) == ys[2]).mean()), "n": int(len(ys[2])),
            "valid_score": r["valid_score"], "hparams": r["hparams"]}


def evaluate(suite, embedders: dict, png_dir=None, progress=print) -> dict:
    """{task: {column: result}} over the tasks of suite/tasks."""
    tasks_dir = Path(suite) / "tasks"
    results = {}
    for task in sorted(p for p in tasks_dir.iterdir() if (p / "task_metadata.json").exists()):
        meta = read_json(task / "task_metadata.json")
        results[task.name] = {"prediction_type": meta["prediction_type"]}
        for col, embed in embedders.items():
            t0 = time.perf_counter()
            data = localization.embed_task(task, embed)
            t_emb = time.perf_counter() - t0
            if meta["prediction_type"] == "cartesian-regression":
                png = str(Path(png_dir) / f"{task.name}-{col}.png") if png_dir else None
                r = localization.evaluate_doa(data, png=png, title=f"{task.name}: {col}")
            else:
                vocab = [line.split(",", 1)[1] for line in (task / "labelvocabulary.csv").read_text().splitlines()[1:]]
                r = scene_probe(data, vocab)
            r.update(embed_s=round(t_emb, 1), dim=int(data["train"][0].shape[1]))
            results[task.name][col] = r
            progress(f"{task.name:12s} {col:28s} {fmt(r)}  (embed {t_emb:.1f} s, dim {r['dim']})")
    return results


def fmt(r: dict) -> str:
    if "doa_mean_deg" in r:
        return f"{r['doa_mean_deg']:.1f} / {r['doa_median_deg']:.1f}"
    return f"{r['top1_acc']:.3f}"


def table(results: dict, columns: list[str], manifest: dict | None = None) -> str:
    head = ["task", "metric (test)"] + columns
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for task, res in results.items():
        metric = "DOA error deg, mean / median (lower is better)" if res["prediction_type"] == "cartesian-regression" \
            else "top-1 accuracy"
        lines.append("| " + " | ".join([task, metric] + [fmt(res[c]) for c in columns]) + " |")
    note = ("Probes: scene tasks, shallow MLP classifier (hidden 0|256, lr 1e-3|1e-4, full-batch Adam, early stopping "
            "and selection on valid); localization, MLP regressor with cosine loss (same grid, selection on valid mean "
            "DOA). Embeddings: scene embeddings, in-process, module defaults.")
    if manifest:
        sizes = manifest.get("sizes", {})
        note = (f"Suite: profile `{manifest.get('profile')}`, seed {manifest.get('seed')}, clips per task "
                f"train/valid/test = {sizes.get('train')}/{sizes.get('valid')}/{sizes.get('test')}. ") + note
    return "\n".join(lines) + "\n\n" + note + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.report", description=__doc__.split("\n\n")[0])
    p.add_argument("--suite", required=True, help="a suite folder from `python -m training.nathear mini`")
    p.add_argument("--weights", help="trained checkpoint (file, folder or Hub id) for the module")
    p.add_argument("--module", default="gram_t_patch")
    p.add_argument("--random-config", choices=("full", "tiny", "same"), default="full",
                   help="architecture of the random-init column; 'same' = that of --weights")
    p.add_argument("--out", help="write the markdown table here (it is always printed)")
    p.add_argument("--json", help="write all results here")
    p.add_argument("--png-dir", help="predicted-vs-true direction plots of the localization tasks")
    a = p.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    if a.png_dir:
        Path(a.png_dir).mkdir(parents=True, exist_ok=True)
    manifest_path = Path(a.suite) / "manifest.json"
    manifest = read_json(manifest_path) if manifest_path.exists() else None
    with tempfile.TemporaryDirectory() as tmp:
        cols = {"log-mel baseline (512-d)": logmel_embedder(),
                f"GRAM-T random init ({a.random_config} config)":
                    random_embedder(a.module, a.random_config, tmp, a.weights)}
        if a.weights:
            cols[f"trained ({Path(a.weights).name})"] = localization.gram_embedder(a.module, a.weights)
        t0 = time.perf_counter()
        res = evaluate(a.suite, cols, a.png_dir, progress=lambda s: print(s, file=sys.stderr))
    md = table(res, list(cols), manifest)
    md += f"\nModule: hear_gram.{a.module}; report time {time.perf_counter() - t0:.0f} s.\n"
    print(md)
    if a.out:
        Path(a.out).write_text(md)
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
