"""GPU throughput in one call (<= 4 minutes on an H100/H200): chunks/s by precision and batch, TFLOP/s against
the device's measured bf16 matmul rate, and the runtime end to end (optionally beside the official runtime).

    python -m benchmarks.gpu                                  # on a CUDA machine
    python -m benchmarks.gpu --device cpu --toy               # dry run of the same code at toy size
    python -m benchmarks.gpu --official-src DIR               # + the official RuntimeGRAMT (a git-ignored checkout)

What it prints:
1. the measured dense bf16 (and fp32/TF32) matmul rate: 8192^3 GEMMs (toy: 512^3), TFLOP/s;
2. encoder-only throughput, GRAM-T patch and GRAM-M patch with the official architecture (random weights),
   fp32 and bf16 (autocast), batches 1-256 of 2 s chunks: chunks/s, TFLOP/s (FLOPs counted once with
   torch.utils.flop_counter), % of the bf16 matmul rate, peak memory;
3. end to end `get_scene_embeddings` (front end + chunking + encoder) for 8 x 10 s and 1 x 120 s, default
   runtime with the fastest batch from 2, fp32 and bf16; and the official runtime on the same device and
   the same rule weights (tests/official_fixtures.py) when `--official-src` is given.
Each measurement: warm-up, then repeated until `--seconds` (default 1.5 s) have passed; the median step.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch

from hear_gram.model import VARIANTS, GramConfig, GramEncoder
from hear_gram.runtime import GramRuntime

from .inference import OFFICIAL_SNIPPET, REPO, fixture_weights

SR = 32000


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, dev, seconds):
    fn()
    sync(dev)
    times, start = [], time.perf_counter()
    while True:
        t0 = time.perf_counter()
        fn()
        sync(dev)
        times.append(time.perf_counter() - t0)
        if time.perf_counter() - start > seconds and len(times) >= 3:
            return statistics.median(times)


def matmul_rate(dev, dtype, n, seconds):
    a = torch.randn(n, n, device=dev, dtype=dtype)
    b = torch.randn(n, n, device=dev, dtype=dtype)
    return 2 * n ** 3 / timed(lambda: a @ b, dev, seconds) / 1e12


def config(name, toy):
    cfg = VARIANTS[name].config
    if toy:
        cfg = GramConfig(**{**cfg.to_dict(), "dim": 64, "depth": 2, "num_heads": 4, "mlp_dim": 128, "headdim": 16,
                            "d_state": 16, "decoder_dim": 32, "decoder_depth": 1})
    return cfg


def chunk_flops(model, cfg):
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, cfg.in_channels, cfg.chunk_frames, cfg.n_mels, device=next(model.parameters()).device)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model.forward_features(x)
    return fc.get_total_flops()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--toy", action="store_true", help="tiny models and sizes: a dry run of the script")
    p.add_argument("--variants", nargs="+", default=["gram_t_patch", "gram_m_patch"])
    p.add_argument("--batches", nargs="+", type=int, default=[1, 8, 32, 64, 128, 256])
    p.add_argument("--seconds", type=float, default=1.5, help="time per measurement")
    p.add_argument("--official-src", default=None, help="checkout of labhamlet/GRAM-T (git-ignored, never committed)")
    a = p.parse_args()
    dev = torch.device(a.device)
    if a.toy:
        a.batches = [b for b in a.batches if b <= 8] or [1]
        a.seconds = min(a.seconds, 0.2)
    t_start = time.perf_counter()
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 rows are true fp32
    n = 512 if a.toy else 8192
    bf16_rate = matmul_rate(dev, torch.bfloat16, n, a.seconds)
    fp32_rate = matmul_rate(dev, torch.float32, n, a.seconds)
    print(f"device: {name}, torch {torch.__version__}; measured {n}^3 matmul: bf16 {bf16_rate:.1f} TFLOP/s, "
          f"fp32 {fp32_rate:.1f} TFLOP/s{' (toy sizes: a dry run)' if a.toy else ''}")
    print()
    print("| variant | precision | batch | chunks/s | TFLOP/s | % of bf16 matmul | peak GiB |")
    print("|---|---|---|---|---|---|---|")
    best = {}
    for v in a.variants:
        cfg = config(v, a.toy)
        torch.manual_seed(0)
        model = GramEncoder(cfg).to(dev).eval()
        flops = chunk_flops(model, cfg)
        for prec, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
            for b in a.batches:
                x = torch.randn(b, cfg.in_channels, cfg.chunk_frames, cfg.n_mels, device=dev)

                def step():
                    with torch.no_grad(), torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None):
                        model.forward_features(x)

                if dev.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(dev)
                try:
                    t = timed(step, dev, a.seconds)
                except torch.OutOfMemoryError:
                    print(f"| {v} | {prec} | {b} | out of memory | | | |", flush=True)
                    break
                peak = torch.cuda.max_memory_allocated(dev) / 2 ** 30 if dev.type == "cuda" else float("nan")
                cps, tflops = b / t, flops * b / t / 1e12
                if cps > best.get((v, prec), (0, 0))[0]:
                    best[(v, prec)] = (cps, b)
                print(f"| {v} | {prec} | {b} | {cps:,.1f} | {tflops:.3g} | {100 * tflops / bf16_rate:.0f} % | "
                      f"{peak:.2f} |", flush=True)
        del model
    print()
    print("| variant | input | runtime | max_chunks | wall s | chunks/s |")
    print("|---|---|---|---|---|---|")
    shapes = [(2, 4), (1, 10)] if a.toy else [(8, 10), (1, 120)]
    with tempfile.TemporaryDirectory() as tmp:
        for v in a.variants:
            cfg = config(v, a.toy)
            torch.manual_seed(0)
            if a.toy:
                model = GramEncoder(cfg)
            else:  # the rule weights, shared with the official runtime
                from hear_gram import checkpoint

                model = checkpoint.load_encoder_file(fixture_weights(v, tmp), cfg)
            for prec in ("fp32", "bf16"):
                mc = best.get((v, prec), (0, 64))[1]
                rt = GramRuntime(model.to(dev), v, max_chunks=mc, precision=prec)
                for n_clips, seconds in shapes:
                    audio = torch.randn(n_clips, 2, seconds * SR, generator=torch.Generator().manual_seed(0)) * 0.1
                    audio = audio.to(dev)
                    t = timed(lambda: rt.get_scene_embeddings(audio), dev, a.seconds)
                    k = n_clips * len(rt.chunk_plan(seconds * SR)[0])
                    print(f"| {v} | {n_clips} x {seconds} s | hear_gram {prec} | {mc} | {t:.3f} | {k / t:,.1f} |",
                          flush=True)
            if a.official_src and v == "gram_t_patch" and not a.toy:
                from safetensors.torch import load_file

                ckpt = os.path.join(tmp, f"{v}.ckpt")
                torch.save({"state_dict": load_file(fixture_weights(v, tmp, "model."))}, ckpt)
                for n_clips, seconds in shapes:
                    r = subprocess.run([sys.executable, "-c", OFFICIAL_SNIPPET, a.official_src, ckpt, str(n_clips),
                                        str(seconds), "3"], capture_output=True, text=True, cwd=a.official_src)
                    res = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
                    if not res:
                        err = (r.stderr.strip().splitlines() or ["no output"])[-1]
                        print(f"| {v} | {n_clips} x {seconds} s | official RuntimeGRAMT | 1 | failed: {err} | |")
                        continue
                    t = statistics.median(eval(res[0][7:]))
                    k = n_clips * ((seconds * 100 + 1) // 200 + 1)
                    print(f"| {v} | {n_clips} x {seconds} s | official RuntimeGRAMT | 1 | {t:.3f} | {k / t:,.1f} |",
                          flush=True)
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
