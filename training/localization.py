"""Sound localization tasks (Nat-HEAR) and their evaluation on frozen embeddings.

    python -m training.localization make SRC_TASK OUT [--kind azimuth|3d] [--seed 0]
    python -m training.localization eval TASK [--module gram_t_patch] [--weights W] [--options JSON] [--png F]
    python -m training.localization eval-heareval EMB_TASK_DIR [--png F]   # heareval's embedding output folder

Task: every clip of a mono HEAR task, spatialised (held-out rooms, noise as in pretraining) at a random
direction: `azimuth` = uniform azimuth on the horizontal plane (elevation 0), `3d` = uniform azimuth and elevation
uniform on the sphere within -40..+90 degrees (what the KEMAR set covers).  Label = [x, y, z], the unit vector of
the source relative to the head (x front, y left, z up), stored as the file's label in <split>.json;
task_metadata.json has "prediction_type": "cartesian-regression" (the listen-eval-kit name).  heareval's stock
predictions runner cannot regress vectors, hence the evaluator here.

Evaluation (HEAR-like protocol, training.probe): embeddings standardised with train statistics; closed-form ridge
regressions of the direction vector (a grid of alphas) and a shallow MLP regressor (Adam, cosine loss, full
batch, early-stopped) fitted on train, the point with the lowest valid mean DOA error scored once on test.
DOA error = great-circle angle between the normalised predicted and true vectors, arccos(clip(cos, -1, 1)) in
degrees; a prediction that is not finite or has zero norm counts as 180 degrees (the worst case; the
listen-eval-kit DOA turned such NaNs into 0, gram_spec §8.2).
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np
from torch import nn

from .hrir import ELEVATION_RANGE_DEG as ELEVATION_RANGE
from .nathear import build_task
from .probe import embed_task, fit_probe, gram_embedder
from .taskio import read_heareval_split, write_vocabulary

# ---------------------------------------------------------------- task generation

def make_task(src, out, kind: str = "3d", seed: int = 0, synth=None, progress: bool = True, task_name: str = "",
              **build_kw) -> dict:
    """Localization task from the clips of the mono HEAR task `src` (same splits and file names), named
    `task_name` (default: the source's name + "_azimuth" / "_loc3d")."""
    if kind not in ("azimuth", "3d"):
        raise ValueError("kind must be 'azimuth' or '3d'")

    def placement(rng):  # drawn from the file's own stream, before the scene
        az = float(rng.uniform(-180.0, 180.0))
        if kind == "azimuth":
            return {"azimuth_deg": az, "elevation_deg": 0.0}
        s0, s1 = np.sin(np.deg2rad(ELEVATION_RANGE))
        return {"azimuth_deg": az, "elevation_deg": float(np.rad2deg(np.arcsin(rng.uniform(s0, s1))))}

    def relabel(scene, _old):
        return [round(float(v), 6) for v in scene["direction"]]

    def update(meta):
        src_name = meta["task_name"]
        meta.update(task_name=task_name or f"{src_name}_{'azimuth' if kind == 'azimuth' else 'loc3d'}",
                    prediction_type="cartesian-regression", evaluation=["doa_mean_deg", "doa_median_deg"],
                    localization={"kind": kind, "label": "unit vector [x front, y left, z up], head-relative",
                                  "source_task": src_name})
        return meta

    stats = build_task(src, out, seed=seed, synth=synth, mode=f"localization-{kind}", placement=placement,
                       relabel=relabel, metadata_update=update, progress=progress, **build_kw)
    write_vocabulary(out, [])
    return stats


# ---------------------------------------------------------------- metrics

def doa_errors(pred, true) -> np.ndarray:
    """Great-circle angle in degrees per example; non-finite or zero-norm predictions count as 180."""
    p, t = np.asarray(pred, np.float64), np.asarray(true, np.float64)
    pn, tn = np.linalg.norm(p, axis=1), np.linalg.norm(t, axis=1)
    ok = np.isfinite(p).all(1) & (pn > 1e-12)
    cos = np.einsum("ij,ij->i", np.where(ok[:, None], p, 0.0), t) / np.where(ok, pn, 1.0) / np.maximum(tn, 1e-12)
    ang = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    return np.where(ok, ang, 180.0)


def doa_summary(pred, true) -> dict:
    e = doa_errors(pred, true)
    p = np.asarray(pred, np.float64)
    return {"doa_mean_deg": float(e.mean()), "doa_median_deg": float(np.median(e)), "n": int(len(e)),
            "n_invalid": int((~(np.isfinite(p).all(1) & (np.linalg.norm(np.nan_to_num(p), axis=1) > 1e-12))).sum())}


def az_el(v) -> tuple[np.ndarray, np.ndarray]:
    """Azimuth (counter-clockwise from the front, +90 = left) and elevation in degrees of (N, 3) vectors."""
    v = np.asarray(v, np.float64)
    return np.degrees(np.arctan2(v[:, 1], v[:, 0])), np.degrees(np.arctan2(v[:, 2], np.hypot(v[:, 0], v[:, 1])))


# ---------------------------------------------------------------- evaluation

def cosine_loss(p, t):
    return (1 - nn.functional.cosine_similarity(p, t, dim=1, eps=1e-6)).mean()


def evaluate_doa(data: dict, png: str | None = None, title: str = "", **kw) -> dict:
    """data: {"train"|"valid"|"test": (X (N, D), Y (N, 3))} -> test DOA metrics (+ a PNG when asked)."""
    xs = [np.asarray(data[s][0], np.float32) for s in ("train", "valid", "test")]
    ys = [np.asarray(data[s][1], np.float32) for s in ("train", "valid", "test")]
    r = fit_probe(xs, ys, cosine_loss, lambda p, t: doa_errors(p, t).mean(), 3, ridge_targets=ys[0], **kw)
    out = {**doa_summary(r["pred"], ys[2]), "per_clip": doa_errors(r["pred"], ys[2]).tolist(),
           "valid_doa_mean_deg": r["valid_score"], "hparams": r["hparams"],
           "probe": "ridge on direction vectors or MLP regressor with cosine loss (training.probe), chosen on "
                    "valid mean DOA"}
    if png:
        plot_doa(r["pred"], ys[2], png, title or f"DOA mean {out['doa_mean_deg']:.1f} deg")
        out["png"] = str(png)
    return out


def plot_doa(pred, true, path, title: str = "") -> None:
    """Predicted vs true azimuth and elevation (test set)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    pa, pe = az_el(pred)
    ta, te = az_el(true)
    fig, ax = plt.subplots(1, 2, figsize=(9, 4.2))
    for a, (t, p, name, lim) in zip(ax, ((ta, pa, "azimuth", (-180, 180)), (te, pe, "elevation", (-90, 90)))):
        a.scatter(t, p, s=12, alpha=0.7)
        a.plot(lim, lim, "k--", lw=0.8)
        a.set(xlim=lim, ylim=lim, xlabel=f"true {name} (deg)", ylabel=f"predicted {name} (deg)", title=name)
        a.set_aspect("equal")
    fig.suptitle(title)
    fig.tight_layout()
    from hear_gram.outputs import atomic_path

    with atomic_path(path, suffix=".png") as tmp:  # the suffix tells matplotlib the format
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.localization", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make", help="localization task from a mono HEAR task")
    m.add_argument("src")
    m.add_argument("out")
    m.add_argument("--kind", choices=("azimuth", "3d"), default="3d")
    m.add_argument("--seed", type=int, default=0)
    e = sub.add_parser("eval", help="DOA evaluation with in-process hear_gram embeddings")
    e.add_argument("task")
    e.add_argument("--module", default="gram_t_patch")
    e.add_argument("--weights", default="", help="weights file/folder/Hub id (default: the variant's Hub weights)")
    e.add_argument("--options", default="{}", help="JSON dict of load_model options")
    e.add_argument("--png", help="predicted-vs-true direction plot (checked before the embedding work)")
    e.add_argument("--overwrite", action="store_true", help="replace an existing --png")
    h = sub.add_parser("eval-heareval", help="DOA evaluation on heareval's embedding output folder")
    h.add_argument("emb_task_dir")
    h.add_argument("--png", help="predicted-vs-true direction plot")
    h.add_argument("--overwrite", action="store_true", help="replace an existing --png")
    a = p.parse_args(argv)
    if a.cmd != "make" and a.png:
        from hear_gram.outputs import OutputError, check_output

        try:
            check_output(a.png, overwrite=a.overwrite, option="--png")
        except OutputError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    if a.cmd == "make":
        st = make_task(a.src, a.out, a.kind, a.seed)
        print(json.dumps(st))
        return 0
    if a.cmd == "eval":
        emb = embed_task(a.task, gram_embedder(a.module, a.weights, **json.loads(a.options)))
    else:
        emb = {s: read_heareval_split(a.emb_task_dir, s) for s in ("train", "valid", "test")}
    res = evaluate_doa(emb, png=a.png)
    print(json.dumps({k: v for k, v in res.items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
