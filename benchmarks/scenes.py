"""Scene synthesis throughput: bank build time and 10 s binaural scenes per second (CPU, and CUDA if present).

    python benchmarks/scenes.py [--preset smoke] [--batch 8] [--batches 3]
"""
import argparse
import tempfile
import time

import torch

from training.scenes import SceneConfig, SceneSynth


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="smoke")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--batches", type=int, default=3)
    args = ap.parse_args()
    cfg = SceneConfig(**{**SceneConfig.preset(args.preset).__dict__, "cache_dir": tempfile.mkdtemp()})
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for dev in devices:
        t0 = time.perf_counter()
        synth = SceneSynth(cfg, seed=0, device=dev)
        init = time.perf_counter() - t0
        synth.sample(2)  # warm-up (FFT plans, CUDA context)
        if dev == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(args.batches):
            synth.sample(args.batch)
        if dev == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        rows.append((dev, len(synth.bank), synth.stats["brirs"], synth.stats["bank_build_s"], init,
                     args.batch * args.batches / dt))
    print(f"preset={args.preset} batch={args.batch} torch threads={torch.get_num_threads()}")
    print(f"{'device':6} {'sets':>5} {'BRIRs':>6} {'bank build s':>12} {'init s':>7} {'10-s scenes/s':>13}")
    for dev, sets, n, build, init, rate in rows:
        print(f"{dev:6} {sets:5d} {n:6d} {build:12.1f} {init:7.1f} {rate:13.2f}")


if __name__ == "__main__":
    main()
