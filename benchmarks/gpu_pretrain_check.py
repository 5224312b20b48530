"""One-call GPU pretraining check: does GRAM-T (ViT-B, 16x8 patches) learn in a few minutes of paper steps?

    bash benchmarks/gpu_pretrain_check.sh                                   # on the GPU box: writes to $OUT
    python -m benchmarks.gpu_pretrain_check --out DIR [--budget-s 540] [--work /tmp/gram_gpu_check]
    python -m benchmarks.gpu_pretrain_check --out DIR --toy --device cpu    # dry run: tiny model, tiny suite

Within `--budget-s` of wall time from its start (default 540 s = 9 min), in one call:
1. starts building the mini Nat-HEAR suite (`python -m training.minisuite WORK/suite --preset demo`) on the
   CPU cores in a background process (forked workers), while
2. `python -m training.train --preset=paper` pretrains GRAM-T patch (ViT-B: 12 x 768, the paper's step: 32 clips x
   16 crops = 512 crops, AdamW 2e-4, bf16 autocast, scene workers) on the `demo` scene distribution (256 BRIR
   sets, built in a minute) with a short warm-up (`--warmup`, default 100 steps, instead of the paper's 10 k):
   first `--calib-steps` steps, whose median step time sets how many more fit before the training deadline, then
   `--resume` with the cosine schedule re-spanned over that total (exact continuation, training.train);
3. exports the weights (to WORK, never to OUT) and runs `python -m training.report` on the GPU (bf16): log-mel,
   log-mel levels + ILD and binaural-cue baselines vs the random init (the same architecture from the same seed)
   vs trained, with 95 % bootstrap intervals, plus the masked-reconstruction loss on held-out scenes
   (training.recon);
4. writes to OUT: report.md, results.json, loss_curve.png, numbers.json (steps, crops/s, step time, the data
   fraction of the step, stage times, device) and the logs; prints the report and the numbers;
5. if at least 30 s of the budget are left, `python -m benchmarks.token_pooling` (trained vs the init of seed 0,
   output frames pooled by their time-mean and weighted by mel power) into OUT/token_pooling.md, stopped at the
   budget's end; numbers.json says whether it ran.

Data fraction: 1 - compute / step, where `compute` is the median time of forward + backward + AdamW on one fixed
batch (same model size, batch and precision; measured after training) and `step` the median training step time
from the run's log.  Nothing written to OUT is larger than a few hundred kB; the weights stay in WORK.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run_log(run_dir: str) -> list:
    path = os.path.join(run_dir, "log.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if xs else float("nan")


def loss_curve(lines: list, png: str, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot([x["step"] for x in lines], [x["loss"] for x in lines], lw=1.2, label="loss")
    ia = [x for x in lines if "loss_interaural" in x]
    if ia:  # binaural: its interaural part (training.recon), rank 0's crops
        ax.plot([x["step"] for x in ia], [x["loss_interaural"] for x in ia], lw=1.2, label="interaural part")
        ax.legend()
    ax.set(xlabel="step", ylabel="masked-reconstruction loss (train)", title=title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


def compute_step_s(model_args: dict, crops: int, device: str, bf16: bool, reps: int = 8) -> float:
    """Median seconds of forward + backward + AdamW on one fixed batch (no data work)."""
    import contextlib

    import torch

    from hear_gram.model import VARIANTS, GramConfig
    from training.pretrain_model import PretrainModel, random_mask
    cfg = GramConfig.from_dict({**VARIANTS["gram_t_patch"].config.to_dict(), **model_args})
    model = PretrainModel(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(crops, cfg.in_channels, cfg.chunk_frames, cfg.n_mels, device=device)
    mask = random_mask(crops, cfg.n_tokens, cfg.n_masked).to(device)
    ctx = torch.autocast(device, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    times = []
    for i in range(reps + 3):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with ctx:
            loss, _, _ = model(x, mask)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        if i >= 3:
            times.append(time.perf_counter() - t0)
    return median(times)


def preflight(device: str) -> None:
    """Fail in seconds, naming what is missing, rather than minutes into the run."""
    import importlib
    missing = []
    for mod in ("torch", "numpy", "scipy", "soundfile", "matplotlib", "tqdm", "safetensors"):
        try:
            importlib.import_module(mod)
        except ImportError as e:
            missing.append(f"{mod} ({e})")
    if missing:
        raise SystemExit("missing Python packages: " + "; ".join(missing))
    import torch
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda but torch.cuda.is_available() is False (use --device cpu for a dry run)")
    from training.sources import Espeak
    try:
        Espeak()
    except Exception as e:  # noqa: BLE001
        raise SystemExit(f"espeak-ng is needed for the embedded speech sources: {e}") from None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_pretrain_check", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=os.environ.get("OUT", "gpu_check_out"), help="small results only")
    p.add_argument("--work", default="/tmp/gram_gpu_check", help="run, weights and suite (large files)")
    p.add_argument("--budget-s", type=float, default=540.0, help="wall budget of the whole call")
    p.add_argument("--reserve-s", type=float, default=170.0,
                   help="time kept after training for export, report and the compute measurement")
    p.add_argument("--device", default="cuda")
    p.add_argument("--calib-steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--data-workers", type=int, default=0, help="scene processes (0: cores / 2, at most 8)")
    p.add_argument("--suite", default="demo", help="suite preset (training/presets/suite/)")
    p.add_argument("--toy", action="store_true", help="dry run: the tiny model, the tiny suite, a few steps")
    a = p.parse_args(argv)
    t_start = time.time()
    deadline = t_start + a.budget_s
    preflight(a.device)
    py = sys.executable
    cores = os.cpu_count() or 1
    out, work = os.path.abspath(a.out), os.path.abspath(a.work)
    os.makedirs(out, exist_ok=True)
    if os.path.exists(work):
        shutil.rmtree(work)  # our own scratch folder from an earlier call
    os.makedirs(work)
    run_dir, weights, suite = (os.path.join(work, x) for x in ("run", "weights", "suite"))
    dw = a.data_workers or max(1, min(8, cores // 2))
    suite_workers = max(1, cores - dw - 2)
    preset = "tiny" if a.toy else "paper"
    suite_preset = "tiny" if a.toy else a.suite
    stages, numbers = {}, {"device": a.device, "cores": cores, "toy": a.toy, "budget_s": a.budget_s}
    try:
        import torch
        numbers.update(torch=torch.__version__,
                       gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
    except Exception as e:  # noqa: BLE001 (recorded, not fatal)
        numbers["torch_error"] = repr(e)

    # 1. the suite, in the background on the CPU cores
    env1 = dict(os.environ, OMP_NUM_THREADS="1")
    suite_log = open(os.path.join(out, "suite.log"), "w")
    t0 = time.time()
    suite_proc = subprocess.Popen([py, "-m", "training.minisuite", suite, "--preset", suite_preset, "--workers",
                                   str(suite_workers), "--quiet"], cwd=REPO, env=env1, stdout=suite_log,
                                  stderr=subprocess.STDOUT)
    log(f"suite build started ({suite_preset}, {suite_workers} workers)")

    # 2. pretraining: calibration, then as many steps as fit
    common = [f"--out_dir={run_dir}", f"--device={a.device}", "--log_every=10", "--image_every=0",
              "--tensorboard=False", "--progress=False"]
    train_log = open(os.path.join(out, "train.log"), "w")

    def train(args):
        r = subprocess.run([py, "-m", "training.train", *args, *common], cwd=REPO, stdout=train_log,
                           stderr=subprocess.STDOUT)
        if r.returncode != 0:
            raise SystemExit(f"training failed ({r.returncode}); see {out}/train.log")

    first = [f"--preset={preset}", "--scene_preset=demo" if not a.toy else "--scene_preset=smoke",
             f"--warmup_steps={a.warmup}", f"--max_steps={max(a.calib_steps * 10, 1000)}",
             f"--stop_at_step={a.calib_steps}", f"--ckpt_every={a.calib_steps}"]
    if not a.toy:
        first.append(f"--data_workers={dw}")
    t_train = time.time()
    train(first)
    lines = run_log(run_dir)
    step_s = median([x["step_s"] for x in lines if x["step"] > min(10, a.calib_steps // 2)] or
                    [x["step_s"] for x in lines])
    left = deadline - a.reserve_s - time.time() - 20.0  # 20 s: the resumed process starting up
    total = a.calib_steps + max(0, int(left / step_s))
    numbers["calibration"] = {"steps": a.calib_steps, "seconds": round(time.time() - t_train, 1),
                              "median_step_s": step_s}
    log(f"calibration: {a.calib_steps} steps, median {step_s:.3f} s/step -> {total} steps in all")
    if total > a.calib_steps:
        train(["--resume", f"--max_steps={total}", f"--ckpt_every={max(50, total // 4)}"])
    stages["pretrain"] = time.time() - t_train
    lines = run_log(run_dir)
    cfg = json.load(open(os.path.join(run_dir, "config.json")))
    crops = cfg["train"]["clips"] * cfg["train"]["crops_per_clip"] * cfg.get("world_size", 1)
    steady = [x for x in lines if x["step"] > a.calib_steps]
    run_step_s = median([x["step_s"] for x in (steady or lines)])
    numbers.update(steps=lines[-1]["step"] if lines else 0, crops_per_step=crops,
                   crops_per_s=round(crops / run_step_s, 1), step_s=round(run_step_s, 4),
                   loss_first=lines[0]["loss"] if lines else None, loss_last=lines[-1]["loss"] if lines else None,
                   model={k: cfg["model"][k] for k in ("dim", "depth", "num_heads", "mlp_dim", "patch")},
                   lr=cfg["train"]["lr"], warmup_steps=cfg["train"]["warmup_steps"],
                   scene_preset=cfg["train"]["scene_preset"], data_workers=cfg["train"]["data_workers"])
    loss_curve(lines, os.path.join(out, "loss_curve.png"),
               f"GRAM-T {'tiny (toy)' if a.toy else 'ViT-B'}: {numbers['steps']} steps x {crops} crops")

    # 3. suite, export, report
    t0 = time.time()
    rc = suite_proc.wait()
    suite_log.close()
    stages["suite_wait_after_training"] = time.time() - t0
    if rc != 0:
        raise SystemExit(f"suite build failed ({rc}); see {out}/suite.log")
    t0 = time.time()
    subprocess.run([py, "-m", "training.export", run_dir, weights], cwd=REPO, check=True, stdout=train_log,
                   stderr=subprocess.STDOUT)
    stages["export"] = time.time() - t0
    t0 = time.time()
    report_args = [py, "-m", "training.report", "--suite", suite, "--weights", weights, "--random-config", "same",
                   "--run", run_dir, "--device", a.device, "--out", os.path.join(out, "report.md"),
                   "--json", os.path.join(out, "results.json"), "--png-dir", os.path.join(out, "plots")]
    if a.device == "cuda":
        report_args += ["--precision", "bf16"]
    if a.toy:
        report_args += ["--recon-scenes", "8"]
    with open(os.path.join(out, "report.log"), "w") as f:
        subprocess.run(report_args, cwd=REPO, check=True, stdout=f, stderr=subprocess.STDOUT)
    stages["report"] = time.time() - t0

    # 4. the compute-only step, for the data fraction
    t0 = time.time()
    comp = compute_step_s(cfg["model"], crops, a.device, a.device == "cuda")
    stages["compute_measure"] = time.time() - t0
    numbers.update(compute_step_s=round(comp, 4), data_fraction=round(max(0.0, 1 - comp / run_step_s), 3))
    numbers["stages_s"] = {k: round(v, 1) for k, v in stages.items()}
    numbers["wall_s"] = round(time.time() - t_start, 1)
    with open(os.path.join(out, "numbers.json"), "w") as f:
        json.dump(numbers, f, indent=2)
    print(open(os.path.join(out, "report.md")).read())
    print(json.dumps(numbers, indent=2))

    # 5. if time is left: is a direction cue hidden by the time-mean? (benchmarks/token_pooling.py, 1 init seed)
    left = deadline - time.time() - 10.0
    if left < 30.0:
        numbers["token_pooling"] = f"skipped: {max(0.0, left + 10.0):.0f} s of the budget left"
    else:
        t0 = time.time()
        try:
            with open(os.path.join(out, "token_pooling.log"), "w") as f:
                r = subprocess.run([py, "-m", "benchmarks.token_pooling", "--suite", suite, "--weights", weights,
                                    "--random-seeds", "1", "--device", a.device, "--out",
                                    os.path.join(out, "token_pooling.md")], cwd=REPO, stdout=f,
                                   stderr=subprocess.STDOUT, timeout=left)
            numbers["token_pooling"] = "token_pooling.md" if r.returncode == 0 else f"failed ({r.returncode})"
        except subprocess.TimeoutExpired:
            numbers["token_pooling"] = f"stopped after {left:.0f} s: out of budget"
        stages["token_pooling"] = time.time() - t0
        numbers["stages_s"] = {k: round(v, 1) for k, v in stages.items()}
        numbers["wall_s"] = round(time.time() - t_start, 1)
    log(f"token pooling: {numbers['token_pooling']}")
    with open(os.path.join(out, "numbers.json"), "w") as f:
        json.dump(numbers, f, indent=2)
    if os.path.exists(os.path.join(out, "token_pooling.md")):
        print(open(os.path.join(out, "token_pooling.md")).read())
    return 0


if __name__ == "__main__":
    sys.exit(main())
