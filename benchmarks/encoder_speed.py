"""Encoder time per 2 s chunk, GRAM-T vs GRAM-M, side by side in one process (alternating, median).

    python -m benchmarks.encoder_speed                          # CPU, 2 threads, float32, 8 chunks per pass
    python -m benchmarks.encoder_speed --baseline 883d563       # + the same models with hear_gram/ of a revision
    python -m benchmarks.encoder_speed --profile                # + top operators of one GRAM-M pass
    python -m benchmarks.encoder_speed --threads 1 --clock cpu  # CPU seconds: robust on a busy machine
    python -m benchmarks.encoder_speed --device cuda --dtypes fp32 bf16 --batch 64   # GPU (+ kernel rows)

Each row times `GramEncoder.forward_features` (patch embedding, encoder, final norm) on `--batch` random
log-mel chunks (B, 2, 200, 128) with random full-size weights (the official init; the two code trees
get the same state dict).  The rows are timed in turn, `--repeat` rounds after one warm-up round, and
the median of the rounds is reported, so slow phases of a shared machine hit every row alike; the
load average is printed before and after.  Columns: s/chunk, chunks/s, and time relative to GRAM-T
of the same code, path and dtype (the goal of issue 18: GRAM-M patch <= 1.3 x GRAM-T patch on CPU).

Paths: `pure` is hear_gram's PyTorch Mamba2; `kernel` (CUDA only, added when mamba_ssm's kernels
import) is the same model with `use_kernels`; GRAM-T has one path.  dtypes: fp32, or bf16 autocast.
`--baseline REV` extracts hear_gram/ of a git revision into a temporary folder and imports it as a
second package (`hear_gram_baseline`), so both trees run in the same process, alternating.
"""

import argparse
import dataclasses
import importlib
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch

VARIANTS = ("gram_t_patch", "gram_m_patch")


def load_tree(path: str, name: str):
    """Import the package folder `path` (holding hear_gram's files) as a package called `name`."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(path, "__init__.py"),
                                                  submodule_search_locations=[path])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return importlib.import_module(f"{name}.model")


def extract(rev: str, tmp: str) -> str:
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    archive = subprocess.run(["git", "-C", repo, "archive", rev, "hear_gram"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
    return os.path.join(tmp, "hear_gram")


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def set_kernels(model, on: bool):
    for m in model.modules():
        if hasattr(m, "use_kernels"):
            m.use_kernels = on


def runner(model, logmel, dtype, path):
    def run():
        set_kernels(model, path == "kernel")
        with torch.no_grad(), torch.autocast(logmel.device.type, dtype=torch.bfloat16, enabled=dtype == "bf16"):
            model.forward_features(logmel)
        sync(logmel.device)
    return run


def kernels_import() -> bool:
    from hear_gram import mamba2
    return mamba2.kernels_available()


def build_rows(a, trees, device):
    """[(label dict, run)] for every code tree x variant x path x dtype."""
    rows = []
    states = {}
    for code, model_mod in trees:
        for name in a.variants:
            torch.manual_seed(0)
            cls = getattr(model_mod, "GramEncoder", None) or model_mod.GramModel  # (older revisions)
            config = model_mod.VARIANTS[name].config
            model = cls(dataclasses.replace(config, depth=a.depth) if a.depth else config)
            if name in states:
                model.load_state_dict(states[name])
            else:
                states[name] = model.state_dict()
            model = model.to(device).eval()
            c = model.config
            logmel = torch.randn(a.batch, c.in_channels, c.chunk_frames, c.n_mels,
                                 generator=torch.Generator().manual_seed(1)).to(device)
            paths = ["pure"]
            if c.encoder == "mamba" and device.type == "cuda" and a.kernels and kernels_import():
                paths.append("kernel")
            for path in paths if c.encoder == "mamba" else ["-"]:
                for dt in a.dtypes:
                    rows.append((dict(code=code, variant=name, path=path, dtype=dt),
                                 runner(model, logmel, dt, path)))
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS),
                   choices=["gram_t_patch", "gram_t_time", "gram_m_patch", "gram_m_time"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtypes", nargs="+", default=["fp32"], choices=["fp32", "bf16"])
    p.add_argument("--batch", type=int, default=8, help="chunks per pass (default 8)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    p.add_argument("--depth", type=int, default=None, help="override the encoder depth (quick dry runs)")
    p.add_argument("--repeat", type=int, default=3, help="timed rounds; the median is reported (default 3)")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="wall time (default), or this process's CPU time (with --threads 1 it is immune to "
                        "other jobs taking turns on a shared machine; CPU device only)")
    p.add_argument("--baseline", default=None, help="git revision whose hear_gram/ runs beside this tree")
    p.add_argument("--no-kernels", dest="kernels", action="store_false",
                   help="CUDA: do not add mamba_ssm kernel rows even when they import")
    p.add_argument("--profile", action="store_true",
                   help="after timing, print the top operators of one GRAM-M (this tree, pure, first dtype) pass")
    a = p.parse_args(argv)
    if a.repeat < 1 or a.batch < 1 or a.threads < 1:
        p.error("--repeat, --batch and --threads must be >= 1")
    device = torch.device(a.device)
    if a.clock == "cpu" and device.type != "cpu":
        p.error("--clock cpu measures CPU work: use it with --device cpu")
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: CUDA is not available")
    torch.set_num_threads(a.threads)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # float32 means float32
        torch.backends.cudnn.allow_tf32 = False

    from hear_gram import model as this_model

    with tempfile.TemporaryDirectory() as tmp:
        trees = [("this tree", this_model)]
        if a.baseline:
            trees.append((f"baseline {a.baseline}", load_tree(extract(a.baseline, tmp), "hear_gram_baseline")))
        rows = build_rows(a, trees, device)
        dev = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {a.threads} threads"
        size = f"depth {a.depth}" if a.depth else "full-size"
        print(f"torch {torch.__version__}, {dev}; {a.batch} chunks of 2 s per pass, random {size} weights; "
              f"median of {a.repeat} alternating rounds; {a.clock} time")
        load0 = os.getloadavg()
        for _, run in rows:  # warm-up round
            run()
        clock = time.process_time if a.clock == "cpu" else time.perf_counter
        times = [[] for _ in rows]
        for _ in range(a.repeat):
            for t, (_, run) in zip(times, rows):
                t0 = clock()
                run()
                t.append(clock() - t0)
        load1 = os.getloadavg()
        per_chunk = [statistics.median(t) / a.batch for t in times]
        ref = {(r["code"], r["dtype"]): s for (r, _), s in zip(rows, per_chunk) if r["variant"] == "gram_t_patch"}
        print("| code | variant | path | dtype | s/chunk | chunks/s | x GRAM-T patch |")
        print("|---|---|---|---|---|---|---|")
        for (r, _), s in zip(rows, per_chunk):
            t = ref.get((r["code"], r["dtype"]))
            ratio = f"{s / t:.2f}" if t else "-"
            print(f"| {r['code']} | {r['variant']} | {r['path']} | {r['dtype']} | {s:.4f} | {1 / s:.1f} | {ratio} |")
        print(f"load average (1 min) {load0[0]:.1f} before, {load1[0]:.1f} after, on {os.cpu_count()} CPUs"
              + (": the machine was shared, compare within this table" if max(load0[0], load1[0]) > 1.5 * a.threads
                 else ""))
        if a.profile:
            profile(a, rows, device)


def profile(a, rows, device):
    for r, run in rows:
        if r["code"] == "this tree" and r["variant"].startswith("gram_m") and r["path"] == "pure":
            break
    else:
        print("profile: no GRAM-M row")
        return
    acts = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        acts.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=acts) as prof:
        run()
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(f"\nprofile of one pass, {r['variant']} {r['dtype']} (this tree):")
    print(prof.key_averages().table(sort_by=key, row_limit=15))


if __name__ == "__main__":
    main()
