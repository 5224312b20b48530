"""Inference throughput of the HEAR runtime: clips/s and real-time factor (audio seconds per second).

    python -m benchmarks.inference [--variants gram_t_patch gram_m_patch] [--repeat 2] [--device cpu cuda]

Random weights of the full official architecture (speed does not depend on the values).  Rows:
(1 x 120 s) and (8 x 10 s) binaural clips, default runtime vs official-compatibility runtime, on
CPU and on CUDA when present.  Prints a markdown table.
"""

import argparse
import os
import tempfile
import time

import torch


from hear_gram.checkpoint import save_model
from hear_gram.model import VARIANTS, GramEncoder
from hear_gram.runtime import load_runtime

SR = 32000
SHAPES = {"1 x 120 s": (1, 120), "8 x 10 s": (8, 10)}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench(rt, n, seconds, repeat):
    audio = torch.randn(n, 2, seconds * SR, generator=torch.Generator().manual_seed(0)) * 0.1
    audio = audio.to(rt.device)
    rt.get_scene_embeddings(audio[:, :, : 2 * SR])  # warm-up
    _sync(rt.device)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        rt.get_scene_embeddings(audio)
        _sync(rt.device)
        times.append(time.perf_counter() - t0)
    best = min(times)
    return n / best, n * seconds / best, best


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--variants", nargs="+", default=["gram_t_patch"])
    p.add_argument("--devices", nargs="+", default=["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    p.add_argument("--shapes", nargs="+", default=list(SHAPES))
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--max-chunks", type=int, default=32)
    a = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
          + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""))
    print("| variant | device | input | runtime | clips/s | real-time factor (audio s / s) | wall s |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.variants:
            torch.manual_seed(0)
            folder = os.path.join(tmp, name)
            save_model(GramEncoder(VARIANTS[name].config), folder)
            for dev in a.devices:
                for compat in (False, True):
                    rt = load_runtime(name, folder, compat=compat, max_chunks=a.max_chunks).to(dev)
                    for shape in a.shapes:
                        n, s = SHAPES[shape]
                        cps, rtf, wall = bench(rt, n, s, a.repeat)
                        mode = "official-compat" if compat else "default"
                        print(f"| {name} | {dev} | {shape} | {mode} | {cps:.3f} | {rtf:.1f} | {wall:.2f} |", flush=True)


if __name__ == "__main__":
    main()
