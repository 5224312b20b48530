"""Comparison report on a (mini) Nat-HEAR suite: every task's test score per embedding, with 95 % intervals.

    python -m training.report --suite SUITE [--weights TRAINED [TRAINED ...]] [--random-config full|tiny|same]
                              [--run RUN_DIR] [--module gram_t_patch] [--out report.md] [--png-dir DIR]
                              [--json results.json] [--random-seeds N]

Columns: three baselines without a model, the log-mel (mean and standard deviation over time of each ear's
128-band log-mel, 512-d), the log-mel levels + ILD (each ear's log-mel pooled over time in the power domain and
the interaural differences of those, 384-d: the level cues that GRAM's input holds; training.probe.level_embedder)
and hand-made binaural cues (interaural level, phase and time differences and each ear's band levels, 213-d,
from the waveform; training.probe.binaural_embedder); GRAM-T with random weights (`--random-config`: the
variant's full architecture, the `tiny` preset's model, or `same` as --weights: then it is exactly the model
training started from); and the trained checkpoint when --weights is given.  Embeddings are the HEAR module's
scene embeddings (module defaults), computed in-process.

Seeds: one random init and one training run are one draw each.  `--random-seeds N` makes the random-init column
the mean over init seeds 0..N-1 per test clip; several `--weights` (runs of one configuration, e.g. trained with
`--seed=0`, `1`, `2`: each started from the init of that seed) make the trained column the mean over those runs
per test clip.  Each seed's and each run's own test value is listed under the table.

Probes (training.probe; the heareval path is proven by tests/test_heareval_e2e.py): ridge regressions and a
shallow MLP, selected on valid; scene tasks report test top-1 accuracy, localization tasks the test mean and
median great-circle DOA error (training.localization).  Intervals: percentile bootstrap over test clips (2000
resamples, the same resamples for every column), and the paired difference trained - random init on those
resamples: an interval that excludes 0 is a difference the test set can see.

`--run RUN_DIR` (the training run behind --weights) adds the probe-free signal of training.recon: the masked
reconstruction loss on held-out scenes of the trained model, its random init and simple predictors.
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

from .localization import evaluate_doa
from .probe import (binaural_embedder, classify, embed_task, gram_embedder, level_embedder, logmel_embedder,
                    random_embedder)
from .taskio import read_json, read_vocabulary

N_BOOT = 2000
DOA = "cartesian-regression"


def evaluate(suite, embedders: dict, png_dir=None, progress=print, tasks=None) -> dict:
    """{task: {"prediction_type", column: result}} over the tasks of suite/tasks (or only those named in `tasks`)."""
    tasks_dir = Path(suite) / "tasks"
    found = sorted(p for p in tasks_dir.iterdir() if (p / "task_metadata.json").exists())
    unknown = sorted(set(tasks or ()) - {p.name for p in found})
    if unknown:
        raise ValueError(f"no task {unknown} in {tasks_dir}; it has {[p.name for p in found]}")
    results = {}
    for task in (p for p in found if tasks is None or p.name in tasks):
        meta = read_json(task / "task_metadata.json")
        results[task.name] = {"prediction_type": meta["prediction_type"]}
        for col, embed in embedders.items():
            t0 = time.perf_counter()
            data = embed_task(task, embed)
            t_emb = time.perf_counter() - t0
            if meta["prediction_type"] == DOA:
                png = str(Path(png_dir) / f"{task.name}-{slug(col)}.png") if png_dir else None
                r = evaluate_doa(data, png=png, title=f"{task.name}: {col}")
            else:
                r = classify(data, read_vocabulary(task))
            r.update(embed_s=round(t_emb, 1), dim=int(data["train"][0].shape[1]))
            results[task.name][col] = r
            progress(f"{task.name:12s} {col:34s} {fmt(r)}  (embed {t_emb:.1f} s, dim {r['dim']}, {r['hparams']})")
    return results


def slug(col: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in col.lower()).strip("-")


def metrics(prediction_type: str) -> dict:
    """{metric name: statistic of the per-clip values} of a task type."""
    if prediction_type == DOA:
        return {"DOA error mean (deg, lower is better)": np.mean, "DOA error median (deg, lower is better)": np.median}
    return {"top-1 accuracy (higher is better)": np.mean}


def intervals(results: dict, compare=None, n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """{task: {metric: {column: (value, lo, hi)}, plus "diff": (value, lo, hi) of compare[0] - compare[1]}}:
    percentile bootstrap over test clips, one set of resampled indices per task shared by all columns."""
    out = {}
    for t_i, (task, res) in enumerate(results.items()):
        cols = [c for c in res if c != "prediction_type"]
        n = len(res[cols[0]]["per_clip"])
        idx = np.random.default_rng([seed, t_i]).integers(0, n, (n_boot, n))
        out[task] = {}
        for name, stat in metrics(res["prediction_type"]).items():
            row, boots = {}, {}
            for c in cols:
                v = np.asarray(res[c]["per_clip"], np.float64)
                boots[c] = stat(v[idx], axis=1)
                row[c] = (float(stat(v)), *map(float, np.percentile(boots[c], [2.5, 97.5])))
            if compare and all(c in cols for c in compare):
                d = boots[compare[0]] - boots[compare[1]]
                row["diff"] = (row[compare[0]][0] - row[compare[1]][0], *map(float, np.percentile(d, [2.5, 97.5])))
            out[task][name] = row
    return out


def merge_seeds(results: dict, columns: list, merged: str) -> dict:
    """Replace `columns` (one column per random-init seed, or per training run) by one column `merged`: per test
    clip the mean over the seeds (error in degrees, or the fraction of seeds that got the clip right), the task
    metric recomputed from those, the valid score averaged, and each seed's own test metric kept under "seeds"."""
    for task, res in results.items():
        rs = [res.pop(c) for c in columns]
        per_clip = np.mean([r["per_clip"] for r in rs], axis=0)
        r = {"per_clip": per_clip.tolist(), "n": rs[0]["n"], "dim": rs[0]["dim"],
             "hparams": [x["hparams"] for x in rs], "embed_s": round(sum(x["embed_s"] for x in rs), 1)}
        if res["prediction_type"] == DOA:
            r.update(doa_mean_deg=float(per_clip.mean()), doa_median_deg=float(np.median(per_clip)),
                     valid_doa_mean_deg=float(np.mean([x["valid_doa_mean_deg"] for x in rs])),
                     seeds=[[x["doa_mean_deg"], x["doa_median_deg"]] for x in rs])
        else:
            r.update(top1_acc=float(per_clip.mean()), valid_score=float(np.mean([x["valid_score"] for x in rs])),
                     seeds=[x["top1_acc"] for x in rs])
        res[merged] = r
    return results


def seeds_lines(results: dict, column: str, unit: str = "init seed") -> str:
    """Markdown lines: each seed's (or run's) own test metric of a merged column."""
    out = [f"{column}: test value of each {unit} (the column is their mean per test clip):"]
    for task, res in results.items():
        r = res.get(column)
        if r and "seeds" in r:
            vals = ("; ".join(f"{m:.1f} / {md:.1f}" for m, md in r["seeds"]) if res["prediction_type"] == DOA
                    else "; ".join(f"{v:.3f}" for v in r["seeds"]))
            out.append(f"- {task}: {vals}" + (" (DOA mean / median deg)" if res["prediction_type"] == DOA else ""))
    return "\n".join(out) + "\n"


def fmt(r: dict) -> str:
    if "doa_mean_deg" in r:
        return f"{r['doa_mean_deg']:.1f} / {r['doa_median_deg']:.1f}"
    return f"{r['top1_acc']:.3f}"


def table(results: dict, columns: list[str], manifest: dict | None = None, compare=None) -> str:
    """Markdown: one row per task and metric, value [95 % CI] per column, and the paired difference."""
    ci = intervals(results, compare)
    head = ["task", "metric (test)"] + columns + ([f"{compare[0]} - {compare[1]}"] if compare else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for task, rows in ci.items():
        for name, row in rows.items():
            digits = 1 if "deg" in name else 3
            cells = [f"{row[c][0]:.{digits}f} [{row[c][1]:.{digits}f}, {row[c][2]:.{digits}f}]" for c in columns]
            if compare:
                d = row.get("diff")
                cells.append(f"{d[0]:+.{digits}f} [{d[1]:+.{digits}f}, {d[2]:+.{digits}f}]" if d else "")
            lines.append("| " + " | ".join([task, name] + cells) + " |")
    note = ("Cells: test value [95 % percentile-bootstrap interval over test clips, 2000 resamples shared by all "
            "columns]; the last column is the paired difference on the same resamples (an interval without 0 is a "
            "real difference). Probes: (training.probe) ridge regressions (alpha = N x 1e-3..1e3) and an MLP "
            "(hidden 256, Adam, early stopping), chosen on valid; localization: direction vectors, cosine loss. "
            "Embeddings: scene embeddings, in-process, module defaults.")
    if manifest:
        s, ls = manifest.get("sizes", {}), manifest.get("localization_sizes", manifest.get("sizes", {}))
        note = (f"Suite: preset `{manifest.get('preset', manifest.get('profile'))}`, seed {manifest.get('seed')}, "
                f"clips train/valid/test per scene task {s.get('train')}/{s.get('valid')}/{s.get('test')}, per "
                f"localization task {ls.get('train')}/{ls.get('valid')}/{ls.get('test')}. ") + note
    return "\n".join(lines) + "\n\n" + note + "\n"


def strip_per_clip(results: dict) -> dict:
    return {t: {c: ({k: v for k, v in r.items() if k != "per_clip"} if isinstance(r, dict) else r)
                for c, r in res.items()} for t, res in results.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.report", description=__doc__.split("\n\n")[0])
    p.add_argument("--suite", required=True, help="a suite folder from `python -m training.minisuite`")
    p.add_argument("--weights", nargs="+", metavar="TRAINED",
                   help="trained checkpoint (file, folder or Hub id) for the module; several (runs of one "
                        "configuration, e.g. training seeds 0, 1, 2): the trained column is their mean per test clip")
    p.add_argument("--module", default="gram_t_patch")
    p.add_argument("--random-config", choices=("full", "tiny", "same"), default="full",
                   help="architecture of the random-init column; 'same' = that of --weights")
    p.add_argument("--random-seeds", type=int, default=1,
                   help="random-init column over init seeds 0..N-1 (seed 0: where a seed-0 training run started), "
                        "averaged per test clip, so that the trained - random interval is not one init draw")
    p.add_argument("--run", help="the training run of (the first) --weights: adds its held-out reconstruction losses")
    p.add_argument("--recon-scenes", type=int, default=32, help="held-out scenes of the reconstruction table")
    p.add_argument("--device", default="cpu", help="where the GRAM columns embed (e.g. cuda)")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"),
                   help="encoder autocast of the GRAM columns (hear_gram option; bf16 on a GPU)")
    p.add_argument("--out", help="write the markdown report here (it is always printed)")
    p.add_argument("--json", help="write all results here")
    p.add_argument("--png-dir", help="predicted-vs-true direction plots of the localization tasks")
    p.add_argument("--overwrite", action="store_true", help="replace existing --out / --json files")
    a = p.parse_args(argv)
    if a.random_config == "same" and not a.weights:
        p.error("--random-config same needs --weights")
    if a.random_seeds < 1:
        p.error(f"--random-seeds must be >= 1, got {a.random_seeds}")
    if a.weights and len(set(a.weights)) < len(a.weights):
        p.error(f"--weights names a checkpoint twice: {a.weights}")
    first = a.weights[0] if a.weights else None
    if a.weights and len(a.weights) > 1:
        from hear_gram.runtime import load_runtime
        configs = {w: load_runtime(a.module, w).config.to_dict() for w in a.weights}
        for w, c in configs.items():
            diff = sorted(k for k in c if c[k] != configs[first].get(k))
            if diff:
                p.error(f"--weights {w} differs from {first} in {', '.join(f'{k}={c[k]!r}' for k in diff)} (vs "
                        f"{', '.join(repr(configs[first].get(k)) for k in diff)}): several --weights are averaged as "
                        "runs of one configuration")
    from hear_gram.outputs import OutputError, check_output, write_text
    try:  # before any work (README "Bad input")
        for opt, path in (("--out", a.out), ("--json", a.json)):
            if path:
                check_output(path, overwrite=a.overwrite, option=opt)
    except OutputError as e:
        p.error(str(e))
    if a.png_dir:
        Path(a.png_dir).mkdir(parents=True, exist_ok=True)
    manifest_path = Path(a.suite) / "manifest.json"
    manifest = read_json(manifest_path) if manifest_path.exists() else None
    t0 = time.perf_counter()
    seeds = a.random_seeds
    random_col = f"random init ({a.random_config} config{f', {seeds} seeds' if seeds > 1 else ''})"
    seed_cols = [random_col] if seeds == 1 else [f"random init seed {s}" for s in range(seeds)]
    with tempfile.TemporaryDirectory() as tmp:
        baselines = {"log-mel (512-d)": logmel_embedder(), "log-mel levels + ILD (384-d)": level_embedder(),
                     "binaural cues (213-d)": binaural_embedder()}
        cols = dict(baselines)
        for s, col in enumerate(seed_cols):
            cols[col] = random_embedder(a.module, a.random_config, str(Path(tmp) / f"seed{s}"), first, seed=s,
                                        device=a.device, precision=a.precision)
        trained_col, run_cols = None, []
        if a.weights:
            runs = len(a.weights)
            trained_col = f"trained ({Path(first).name})" if runs == 1 else f"trained ({runs} runs)"
            run_cols = [trained_col] if runs == 1 else [f"trained {Path(w).name} (run {i})"
                                                        for i, w in enumerate(a.weights)]
            for col, w in zip(run_cols, a.weights):
                cols[col] = gram_embedder(a.module, w, a.device, precision=a.precision)
        res = evaluate(a.suite, cols, a.png_dir, progress=lambda s: print(s, file=sys.stderr))
    if seeds > 1:
        merge_seeds(res, seed_cols, random_col)
    if len(run_cols) > 1:
        merge_seeds(res, run_cols, trained_col)
    columns = [*baselines, random_col, *([trained_col] if trained_col else [])]
    compare = (trained_col, random_col) if trained_col else None
    md = table(res, columns, manifest, compare)
    if seeds > 1:
        md += "\n" + seeds_lines(res, random_col)
    if len(run_cols) > 1:
        md += "\n" + seeds_lines(res, trained_col, unit="run (" + ", ".join(a.weights) + ")")
    out = {"tasks": res, "intervals": intervals(res, compare)}
    if a.run:
        from . import recon
        from .export import load_training_model
        model, ckpt = load_training_model(a.run)
        rec = recon.evaluate(model.to(a.device), n_scenes=a.recon_scenes, init_seed=ckpt["config"]["seed"])
        md += "\n" + recon.table(rec)
        out["recon"] = rec
    md += f"\nModule: hear_gram.{a.module}; report time {time.perf_counter() - t0:.0f} s.\n"
    print(md)
    if a.out:
        write_text(a.out, md)
    if a.json:
        write_text(a.json, json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    torch.set_num_threads(max(1, torch.get_num_threads()))
    sys.exit(main())
