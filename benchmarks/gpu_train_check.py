"""One-call GPU check of the pretraining step (issue: "a GPU kept busy"): the paper's step, bf16, per backbone.

    bash benchmarks/gpu_train_check.sh                 # on an H100/H200 box, from the repo root (<= 4 minutes)
    python -m benchmarks.gpu_train_check --toy         # the same code path on a CPU at toy size (a dry run)

For GRAM-T patch and GRAM-M patch at the paper's step (32 clips x 16 crops = 512 crops, bf16 autocast; the
16x8-patch models), it runs benchmarks/train_step.py's measurement with the scene material on the device
(backend "torch": the host only draws) and, for comparison, with host rendering (backend "numpy", what a
single-process run without data workers did before), then GRAM-T with torch.compile of the model. It prints
the train_step table (host ms/scene, device ms/scene, data s, compute s, data %, crops/s, projected hours of
the paper's 180k steps) and, after each device-backend row, a verdict against the goals:

    GOAL gram_t_patch torch: data 6 % of the step (<= 20 %): PASS; 3900 crops/s (>= 2500): PASS

GRAM-M runs the pure-PyTorch Mamba2 (hear_gram/mamba2.py: the faster path at GRAM's lengths on an H100), or
mamba_ssm's kernels with HEAR_GRAM_MAMBA_KERNELS=1 (they must then be installed); the first line says which. Exit status 0 when every row ran (a missed goal
is reported, not an error), 1 if a measurement failed.
"""
import argparse
import os
import sys
import time
import traceback

import torch

from benchmarks.train_step import HEADER, bench, gemm_gflops, row

GOAL_DATA, GOAL_CROPS = 0.20, 2500.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--toy", action="store_true", help="CPU dry run: tiny GRAM-T/GRAM-M, 2 clips x 2 crops, 1 step")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--no-compile", action="store_true")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    if args.toy:
        device, configs, clips, crops, steps, warmup = torch.device("cpu"), ["tiny", "tiny@gram_m_patch"], 2, 2, 1, 1
        torch.set_num_threads(1)
        peak = gemm_gflops(device, torch.float32, 512)
    else:
        if not torch.cuda.is_available():
            print("gpu_train_check: CUDA is not available (use --toy for a CPU dry run)", file=sys.stderr)
            return 1
        device, configs, clips, crops, steps, warmup = torch.device("cuda"), ["gram_t_patch", "gram_m_patch"], \
            32, 16, args.steps, 2
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        peak = gemm_gflops(device, torch.bfloat16, 8192)
    kernels = os.environ.get("HEAR_GRAM_MAMBA_KERNELS", "") == "1" and device.type == "cuda"
    kernels = "mamba_ssm kernels (HEAR_GRAM_MAMBA_KERNELS=1)" if kernels else "pure PyTorch (the default)"
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (toy dry run)"
    print(f"# {name}; torch {torch.__version__}; peak GEMM {peak:.0f} GFLOP/s; GRAM-M Mamba2: {kernels}")
    print(f"# paper step: {clips} clips x {crops} crops, medians of {steps} steps after {warmup}")
    print(HEADER)
    print("|" + "---|" * HEADER.count(" | ") + "---|")
    runs = [(c, "torch", False) for c in configs] + [(configs[0], "numpy", False)]
    if not args.no_compile:
        runs.append((configs[0], "torch", True))
    failed = 0
    for cfg, backend, comp in runs:
        n_steps, n_warm = (steps, warmup) if backend == "torch" else (2, 1)
        try:
            r = bench(cfg, device, clips, crops, n_steps, n_warm, backend, comp)
        except Exception:  # report and go on: one backbone's failure must not hide the other's numbers
            failed += 1
            print(f"| {cfg} | {device.type} | {backend} | FAILED: see traceback below |", flush=True)
            traceback.print_exc()
            continue
        print(row(r, peak), flush=True)
        if backend == "torch":  # printed at once: a run cut by the time limit keeps its verdicts
            frac = r["data_s"] / r["step_s"]
            print(f"GOAL {r['config']} torch: data {100 * frac:.0f} % of the step (<= 20 %): "
                  f"{'PASS' if frac <= GOAL_DATA else 'MISS'}; {r['crops_per_s']:.0f} crops/s (>= 2500): "
                  f"{'PASS' if r['crops_per_s'] >= GOAL_CROPS else 'MISS'}", flush=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    print(f"# total {time.perf_counter() - t_start:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
