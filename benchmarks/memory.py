"""Peak memory of the HEAR runtime beyond its input and output, by clip length: this code vs an older revision.

    python -m benchmarks.memory [--baseline REV] [--cases 60 600 3600 64x10] [--model tiny|gram_t]
                                [--strategy raw] [--max-chunks 32] [--baseline-max-seconds 600]

Each case runs in a fresh process: the model is loaded and the binaural input (float32, amplitude 0.1
noise) allocated, the resident set is read (VmRSS) and its peak reset (`/proc/self/clear_refs`, Linux),
then `model.embed(audio)` runs; "extra peak" = peak VmHWM - RSS before - bytes of the returned tensors.
`--baseline REV` extracts `hear_gram/` of a git revision (e.g. the commit before chunked log-mels) into
a temporary folder and runs the same cases with it, side by side (cases above `--baseline-max-seconds`
are skipped for it: the old whole-clip front end needs ~17x the audio's size).

Models (random weights, speed and memory do not depend on their values): `tiny` (dim 64, 2 blocks: the
memory is the front end's, as in issue 16's table); `gram_t` = GRAM-T patch at the official width
(dim 768, 12 heads, MLP 3072, 6144-d raw output) with `--depth` blocks (default 1: under no_grad the
blocks run one after another, so the working memory of one pass does not depend on the depth; `--depth
12` is the full model, 12x the time).
"""

import argparse
import os
import subprocess
import sys
import tempfile

SR = 32000
CASES = {"60": (1, 60), "300": (1, 300), "600": (1, 600), "3600": (1, 3600), "64x10": (64, 10)}


def _status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{key} not in /proc/self/status")


def child(a):
    import time

    import torch

    from hear_gram.runtime import load_runtime

    torch.set_num_threads(a.threads)
    rt = load_runtime(a.variant, a.weights, strategy=a.strategy, max_chunks=a.max_chunks)
    n, seconds = CASES[a.case]
    audio = torch.randn(n, 2, seconds * SR, generator=torch.Generator().manual_seed(0)) * 0.1
    rt.embed(audio[:1, :, :3 * SR])  # warm-up: allocator pools, kernels
    before = _status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak RSS (VmHWM) to the current RSS
    t0 = time.perf_counter()
    outs = rt.embed(audio)
    wall = time.perf_counter() - t0
    peak = _status("VmHWM")
    out_bytes = sum(o.numel() * o.element_size() for o in outs)
    print(f"RESULT {before} {peak} {out_bytes} {audio.numel() * 4} {wall:.2f}")


def run_case(pythonpath, args, case):
    env = dict(os.environ, PYTHONPATH=pythonpath, OMP_NUM_THREADS=str(args.threads))
    cmd = [sys.executable, "-m", "benchmarks.memory", "--child", "--case", case, "--weights", args.weights,
           "--variant", args.variant, "--strategy", args.strategy, "--max-chunks", str(args.max_chunks),
           "--threads", str(args.threads)]
    with tempfile.TemporaryDirectory() as cwd:  # so that PYTHONPATH alone decides which hear_gram is imported
        r = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    for line in r.stdout.splitlines():
        if line.startswith("RESULT "):
            before, peak, out_bytes, in_bytes, wall = line.split()[1:]
            return dict(extra=int(peak) - int(before) - int(out_bytes), out=int(out_bytes), inp=int(in_bytes),
                        wall=float(wall))
    return dict(error=(r.stderr.strip().splitlines() or ["no output"])[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--case", help=argparse.SUPPRESS)
    p.add_argument("--weights", help=argparse.SUPPRESS)
    p.add_argument("--variant", default="gram_t_patch", help=argparse.SUPPRESS)
    p.add_argument("--cases", nargs="+", default=["60", "600", "3600", "64x10"], choices=list(CASES))
    p.add_argument("--model", choices=["tiny", "gram_t"], default="gram_t")
    p.add_argument("--depth", type=int, default=1, help="encoder blocks of the gram_t model (default 1)")
    p.add_argument("--strategy", default="raw", choices=["raw", "mean", "cls"])
    p.add_argument("--max-chunks", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--baseline", default=None, help="git revision to compare with (e.g. 883d563)")
    p.add_argument("--baseline-max-seconds", type=float, default=700)
    a = p.parse_args()
    if a.child:
        return child(a)

    import torch

    from hear_gram.checkpoint import save_model
    from hear_gram.model import VARIANTS, GramConfig, GramEncoder

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    base = VARIANTS["gram_t_patch"].config.to_dict()
    if a.model == "tiny":
        base.update(dim=64, depth=2, num_heads=4, mlp_dim=128, decoder_dim=32, decoder_depth=1, decoder_heads=8)
    else:
        base.update(depth=a.depth, decoder_depth=1)
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        a.weights = os.path.join(tmp, "weights")
        save_model(GramEncoder(GramConfig(**base)), a.weights)
        trees = [("this tree", repo)]
        if a.baseline:
            old = os.path.join(tmp, "baseline")
            os.makedirs(old)
            archive = subprocess.run(["git", "-C", repo, "archive", a.baseline, "hear_gram"], check=True,
                                     capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", old], input=archive, check=True)
            trees.insert(0, (f"baseline {a.baseline}", old + os.pathsep + repo))
        print(f"model: {a.model} (dim {base['dim']}, depth {base['depth']}), strategy={a.strategy}, "
              f"max_chunks={a.max_chunks}, {a.threads} threads, torch {torch.__version__}")
        print("| input | audio MiB | output MiB | code | extra peak RSS MiB | extra / audio | wall s |")
        print("|---|---|---|---|---|---|---|")
        mib = 2 ** 20
        for case in a.cases:
            n, s = CASES[case]
            label = f"{n} x {s} s"
            for name, path in trees:
                if name != "this tree" and n * s > a.baseline_max_seconds:
                    print(f"| {label} | {n * s * 2 * SR * 4 / mib:.0f} | | {name} | not run (> "
                          f"--baseline-max-seconds) | | |", flush=True)
                    continue
                r = run_case(path, a, case)
                if "error" in r:
                    print(f"| {label} | | | {name} | failed: {r['error']} | | |", flush=True)
                    continue
                print(f"| {label} | {r['inp'] / mib:.0f} | {r['out'] / mib:.0f} | {name} | {r['extra'] / mib:,.0f} | "
                      f"{r['extra'] / r['inp']:.2f} | {r['wall']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
