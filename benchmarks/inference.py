"""Inference speed of the HEAR runtime on this machine, side by side: chunks, s/chunk, GFLOP/s, ratio.

    python -m benchmarks.inference [--variants gram_t_patch] [--shapes "8 x 10 s" "1 x 120 s"]
        [--modes fp32:32 fp32:8 int8:8] [--repeat 3] [--official-src DIR --official-python PY]
    python -m benchmarks.inference --accuracy [--variants gram_t_patch gram_m_patch]
    python -m benchmarks.inference --ceiling [--variants gram_t_patch gram_m_patch] [--chunks 8]

Weights: the parity fixtures' rule weights (`tests/official_fixtures.py checkpoint`, the same for every
runtime compared).  A mode is `precision:max_chunks` (chunks per forward pass).  Every row embeds the same
binaural noise (amplitude 0.1) with `get_scene_embeddings`; the modes (and the official runtime, when
`--official-src` names a checkout of labhamlet/GRAM-T and `--official-python` a Python that can import it;
its `.cuda()` calls are made no-ops on a machine without CUDA, nothing else of it is changed)
run in turn, `--repeat` rounds, alternating, and the table gives the median wall time of the embedding alone
(load excluded; one warm-up per mode).  GFLOP/s = the encoder's FLOPs per chunk (counted once with
torch.utils.flop_counter) x chunks / wall time.  Ratio = the first mode's time / this row's time.

`--accuracy`: int8 against fp32 on the parity fixtures' audio (3 binaural clips of 3.3 s) with the fixture
weights, raw timestamp embeddings: minimum cosine over frames and relative error ||int8 - fp32|| / ||fp32||.

`--ceiling`: how far the fp32 encoder is from this machine's matrix-product rate.  One pass of `--chunks`
chunks is profiled (torch.profiler, input shapes recorded): the share of time in `aten::addmm`/`aten::mm`
(the linear layers) and the rate they reach inside the model; then every one of those product shapes is
timed alone, in the model's layout, with torch (its BLAS, MKL in the x86 wheels) and with numpy (its own
BLAS, OpenBLAS in the wheels), median of `--repeat` x 5 calls.  The floor is the pass with every product
at the better of the two bare rates and everything else (attention, GELU, norms, copies) unchanged.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import torch

from hear_gram.model import VARIANTS, GramEncoder
from hear_gram.runtime import load_runtime

SR = 32000
SHAPES = {"8 x 10 s": (8, 10), "1 x 120 s": (1, 120), "1 x 10 s": (1, 10), "2 x 4 s": (2, 4)}
FIXTURE = {"gram_t_patch": "gramt_frame", "gram_t_time": "gramt_time", "gram_m_patch": "gramm_frame",
           "gram_m_time": "gramm_time"}
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Run inside --official-python with the official checkout on sys.path: load, warm up, time the embedding.
OFFICIAL_SNIPPET = r"""
import json, sys, time, torch
sys.path.insert(0, sys.argv[1])
if not torch.cuda.is_available():  # the official feature helper calls .cuda(): on a CPU machine, a no-op
    torch.Tensor.cuda = lambda self, *a, **k: self
from hear_configs.GRAMT import load_model
n, seconds, repeat = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
model = load_model(sys.argv[2], use_mwmae_decoder="true")
# the official loader uses strict=False: check that the encoder weights really arrived
sd, msd = torch.load(sys.argv[2])["state_dict"], model.model.state_dict()
enc = [k for k in sd if not k.startswith(("decoder", "mask_token", "spec_pred"))]
bad = [k for k in enc if k not in msd or not torch.equal(msd[k].cpu(), sd[k])]
if bad:
    raise SystemExit(f"official model did not load {len(bad)} of {len(enc)} encoder tensors, e.g. {bad[:3]}")
audio = torch.randn(n, 2, seconds * 32000, generator=torch.Generator().manual_seed(0)) * 0.1
dev = next(model.parameters()).device
audio = audio.to(dev)
with torch.no_grad():
    model.get_scene_embeddings(audio[:, :, :2 * 32000])
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter(); model.get_scene_embeddings(audio)
        if dev.type == "cuda": torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
print("RESULT " + json.dumps(times))
"""


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
            f"CPU capability {torch.backends.cpu.get_cpu_capability()}, load average {load:.1f} at start")


def fixture_weights(variant, folder, prefix=""):
    path = os.path.join(folder, f"{variant}{'-' + prefix.strip('.') if prefix else ''}.safetensors")
    if not os.path.exists(path):
        subprocess.run([sys.executable, os.path.join(REPO, "tests", "official_fixtures.py"), "checkpoint",
                        FIXTURE[variant], path, "--prefix", prefix], check=True, capture_output=True)
    return path


def chunk_flops(rt):
    """FLOPs of one 2 s chunk through the encoder (counted by torch.utils.flop_counter)."""
    from torch.utils.flop_counter import FlopCounterMode

    c = rt.config
    x = torch.zeros(1, c.in_channels, c.chunk_frames, c.n_mels)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        rt.model.forward_features(x)
    return fc.get_total_flops()


def n_chunks(rt, n, seconds):
    return n * len(rt.chunk_plan(seconds * SR)[0])


def time_ours(rt, audio):
    t0 = time.perf_counter()
    rt.get_scene_embeddings(audio)
    return time.perf_counter() - t0


def official_times(a, variant, n, seconds, weights_ckpt):
    cmd = [a.official_python, "-c", OFFICIAL_SNIPPET, a.official_src, weights_ckpt, str(n), str(seconds), "1"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=a.official_src)
    for line in r.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])[0]
    raise RuntimeError(f"official runtime failed: {(r.stderr.strip().splitlines() or ['no output'])[-1]}")


def speed(a, tmp):
    print(machine())
    print("| variant | input | runtime | chunks | s/chunk | GFLOP/s | wall s (median) | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for variant in a.variants:
        weights = fixture_weights(variant, tmp)
        runtimes = {}
        for mode in a.modes:
            precision, mc = mode.split(":")
            runtimes[mode] = load_runtime(variant, weights, max_chunks=int(mc), precision=precision)
        first = next(iter(runtimes.values()))
        flops = chunk_flops(first)
        ckpt = None
        if a.official_src:  # the official runtime reads a torch.load checkpoint {"state_dict": bare keys}
            from safetensors.torch import load_file

            ckpt = os.path.join(tmp, f"{variant}.ckpt")
            torch.save({"state_dict": load_file(fixture_weights(variant, tmp, "model."))}, ckpt)
        for shape in a.shapes:
            n, seconds = SHAPES[shape]
            audio = torch.randn(n, 2, seconds * SR, generator=torch.Generator().manual_seed(0)) * 0.1
            for rt in runtimes.values():  # warm-up (and the int8 copy is built here)
                rt.get_scene_embeddings(audio[:1, :, :2 * SR])
            times = {m: [] for m in runtimes}
            if ckpt:
                times["official"] = []
            for _ in range(a.repeat):  # alternate: one run of each per round
                for m, rt in runtimes.items():
                    times[m].append(time_ours(rt, audio))
                if ckpt:
                    times["official"].append(official_times(a, variant, n, seconds, ckpt))
            base = None
            for m, ts in times.items():
                med = statistics.median(ts)
                k = n * (len(first.chunk_plan(seconds * SR)[0]) if m != "official" else
                         (seconds * 100 + 1) // 200 + 1)  # official: one padding chunk more per whole 2 s
                base = base or med
                label = "official RuntimeGRAMT" if m == "official" else f"hear_gram {m.replace(':', ', max_chunks=')}"
                print(f"| {variant} | {shape} | {label} | {k} | {med / k:.3f} | {flops * k / med / 1e9:.0f} | "
                      f"{med:.2f} ({', '.join(f'{t:.1f}' for t in ts)}) | {base / med:.2f} |", flush=True)


def accuracy(a, tmp):
    from safetensors.torch import load_file

    audio = load_file(os.path.join(REPO, "tests", "fixtures", "official", "inputs.safetensors"))["audio_binaural"]
    print(machine())
    print("| variant | clips | frames | min cosine int8 vs fp32 | rel err int8 vs fp32 | fp32 s | int8 s |")
    print("|---|---|---|---|---|---|---|")
    for variant in a.variants:
        weights = fixture_weights(variant, tmp)
        out = {}
        for p in ("fp32", "int8"):
            rt = load_runtime(variant, weights, precision=p, max_chunks=8)
            rt.get_timestamp_embeddings(audio[:1])  # warm-up
            t0 = time.perf_counter()
            out[p] = rt.get_timestamp_embeddings(audio)[0]
            out[p + "_s"] = time.perf_counter() - t0
        ref, q = out["fp32"].flatten(0, 1).double(), out["int8"].flatten(0, 1).double()
        cos = torch.nn.functional.cosine_similarity(q, ref, dim=-1)
        rel = ((q - ref).norm() / ref.norm()).item()
        print(f"| {variant} | {audio.shape[0]} x {audio.shape[-1] / SR:.1f} s | {ref.shape[0]} | {cos.min():.5f} | "
              f"{rel:.4f} | {out['fp32_s']:.2f} | {out['int8_s']:.2f} |", flush=True)


def ceiling(a):
    import numpy as np
    from torch.profiler import ProfilerActivity, profile

    gemm_ops = ("aten::addmm", "aten::mm")
    print(machine())
    print("| variant | chunks a pass | s/chunk | products' share of the pass | products' GFLOP/s in the model | "
          "bare GFLOP/s, same shapes: torch / numpy | s/chunk floor |")
    print("|---|---|---|---|---|---|---|")
    for variant in a.variants:
        config = VARIANTS[variant].config
        torch.manual_seed(0)
        model = GramEncoder(config).eval()
        x = torch.randn(a.chunks, config.in_channels, config.chunk_frames, config.n_mels)
        with torch.no_grad():
            model.forward_features(x)  # warm-up
            walls = []
            for _ in range(a.repeat):
                t0 = time.perf_counter()
                model.forward_features(x)
                walls.append(time.perf_counter() - t0)
            with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
                model.forward_features(x)
        wall = statistics.median(walls)
        events = prof.key_averages(group_by_input_shape=True)
        total = sum(e.self_cpu_time_total for e in events)
        shapes, gemm_us = {}, 0.0
        for e in events:
            if e.key not in gemm_ops:
                continue
            gemm_us += e.self_cpu_time_total
            dims = [d for d in e.input_shapes if len(d) == 2]
            (m, k), (_, n) = dims[0], dims[1]
            key = (m, k, n, e.key == "aten::addmm")
            shapes[key] = shapes.get(key, 0) + e.count
        share = gemm_us / total
        flops = sum(2 * m * k * n * c for (m, k, n, _), c in shapes.items())
        best_s, lib_s = 0.0, {"torch": 0.0, "numpy": 0.0}  # seconds of all products: at the better / each rate
        for (m, k, n, bias), count in shapes.items():
            inp, w, b = torch.randn(m, k), torch.randn(n, k), torch.randn(n)
            wt, inp_np, w_np = w.t(), inp.numpy(), w.numpy()
            calls = {"torch": (lambda: torch.addmm(b, inp, wt)) if bias else (lambda: torch.mm(inp, wt)),
                     "numpy": lambda: inp_np @ w_np.T}
            secs = {}
            for lib, f in calls.items():
                for _ in range(3):  # warm-up
                    f()
                ts = []
                for _ in range(5 * a.repeat):
                    t0 = time.perf_counter()
                    f()
                    ts.append(time.perf_counter() - t0)
                secs[lib] = statistics.median(ts)
                lib_s[lib] += count * secs[lib]
            best_s += count * min(secs.values())
        floor = best_s + wall * (1 - share)
        print(f"| {variant} | {a.chunks} | {wall / a.chunks:.3f} | {share:.0%} | "
              f"{flops / (wall * share) / 1e9:.0f} | {flops / lib_s['torch'] / 1e9:.0f} / "
              f"{flops / lib_s['numpy'] / 1e9:.0f} | {floor / a.chunks:.3f} |", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--variants", nargs="+", default=["gram_t_patch"], choices=list(VARIANTS))
    p.add_argument("--shapes", nargs="+", default=["8 x 10 s", "1 x 120 s"], choices=list(SHAPES))
    p.add_argument("--modes", nargs="+", default=["fp32:32", "fp32:8", "int8:8"],
                   help="precision:max_chunks, the first is the ratio's reference")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--official-src", default=None, help="a checkout of labhamlet/GRAM-T (never inside this repo)")
    p.add_argument("--official-python", default=sys.executable, help="a Python that can import the official code")
    p.add_argument("--accuracy", action="store_true", help="int8 vs fp32 on the parity fixture audio")
    p.add_argument("--ceiling", action="store_true", help="the fp32 encoder against this machine's GEMM rate")
    p.add_argument("--chunks", type=int, default=8, help="--ceiling: chunks per pass")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.ceiling:
        return ceiling(a)
    with tempfile.TemporaryDirectory() as tmp:
        (accuracy if a.accuracy else speed)(a, tmp)


if __name__ == "__main__":
    main()
