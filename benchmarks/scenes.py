"""Scene synthesis throughput: bank build time and 10 s binaural scenes per second, per device, torch thread
count and batch size (median of --repeats timed batches after a warm-up batch).

    python -m benchmarks.scenes [--preset smoke] [--batch 8 32] [--threads 1 2 16] [--repeats 3]
                                [--no-speech] [--devices cpu cuda]

--threads sets torch.set_num_threads, which the synthesizer also uses for scipy.fft workers.
--no-speech drops the espeak and soundfont pools (n_speech = n_notes = 0), as on a box without those packages:
babble noise then falls back to speech-shaped noise.
The script uses only the public API (SceneConfig, SceneSynth.sample), so running it with PYTHONPATH pointing at
an older checkout gives comparable "before" numbers.
"""
import argparse
import dataclasses
import statistics
import tempfile
import time

import torch

from training.scenes import SceneConfig, SceneSynth


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="smoke")
    ap.add_argument("--batch", type=int, nargs="+", default=[8, 32])
    ap.add_argument("--threads", type=int, nargs="+", default=[torch.get_num_threads()])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-speech", action="store_true")
    ap.add_argument("--devices", nargs="+", default=None)
    ap.add_argument("--cache-dir", default=None, help="bank/pool cache (default: a fresh temporary folder)")
    args = ap.parse_args()
    cfg = dataclasses.replace(SceneConfig.preset(args.preset), cache_dir=args.cache_dir or tempfile.mkdtemp())
    if args.no_speech:
        cfg = dataclasses.replace(cfg, n_speech=0, n_notes=0)
    devices = args.devices or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    print(f"preset={args.preset} no_speech={args.no_speech} repeats={args.repeats} (median scenes/s)")
    print(f"{'device':6} {'sets':>5} {'BRIRs':>6} {'bank build s':>12} {'init s':>7} {'threads':>7} {'batch':>5} "
          f"{'10-s scenes/s':>13}  all runs")
    for dev in devices:
        t0 = time.perf_counter()
        synth = SceneSynth(cfg, seed=0, device=dev)
        init = time.perf_counter() - t0
        head = f"{dev:6} {len(synth.bank):5d} {synth.stats['brirs']:6d} {synth.stats['bank_build_s']:12.1f} {init:7.1f}"
        for threads in args.threads:
            torch.set_num_threads(threads)
            synth.sample(2)  # warm-up (FFT plans, CUDA context, memoised pool clips)
            for b in args.batch:
                rates = []
                for _ in range(args.repeats):
                    if dev == "cuda":
                        torch.cuda.synchronize()
                    t0 = time.perf_counter()
                    synth.sample(b)
                    if dev == "cuda":
                        torch.cuda.synchronize()
                    rates.append(b / (time.perf_counter() - t0))
                print(f"{head} {threads:7d} {b:5d} {statistics.median(rates):13.2f}  "
                      + " ".join(f"{r:.1f}" for r in rates), flush=True)


if __name__ == "__main__":
    main()
