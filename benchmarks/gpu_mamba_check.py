"""GPU check of GRAM-M's Mamba2 encoder: pure-PyTorch path vs mamba_ssm kernel path.

    python -m benchmarks.gpu_mamba_check [--mamba-src DIR] [--fixtures DIR] [--batch 64] [--train-batch 128]
    bash benchmarks/gpu_mamba_check.sh [CARRY_DIR]          # fresh GPU box: installs carried wheels first
    python -m benchmarks.gpu_mamba_check --device cpu --toy # dry run of every step on CPU, small sizes

Checks (each asserted; the script exits 1 if any fails or the kernels do not import):
  1. full-size random-weight encoder (24 layers, (8, 201, 768)):
       float32            kernel vs pure rel <= 1e-4  (mamba_ssm's Triton matmuls run at TF32
                          precision; pure vs float64 ~1e-7)
       bf16 autocast      kernel vs float64 rel <= 2 x (pure vs float64) + 1e-3 (random weights
                          through 24 layers: each path ~3e-3 from float64, so no fixed 2e-3 on
                          kernel vs pure; the fixed bound is in check 2, on the official weights)
     and input/parameter gradients, float32: worst per-tensor rel <= 1e-3;
  2. official fixture gramm_frame (if found), chunk_mean of each path vs the recorded official output:
       float32 rel <= 1e-4, bf16 autocast rel <= 2e-3.
  rel = ||a - b|| / ||b||.  PyTorch's own TF32 is switched off so that "pure float32" is float32.
Speed (printed, not asserted), random weights, chunks of 2 s binaural log-mel, for both paths:
  table      benchmarks/encoder_speed.py's table on this device: s/chunk of GRAM-T patch and GRAM-M
             patch (pure, and kernel when it imports), float32 and bf16 autocast, `--batch` chunks
             per pass, alternating rounds, median, and GRAM-M relative to GRAM-T (issue 18);
  training   forward + masked-MSE + backward + AdamW step on `--train-batch` chunks (80 % masked), bf16
             autocast (float32 on CPU).
hear_gram's default is the pure path (hear_gram/mamba2.py docstring); these numbers are what justify it.
`--toy` (for a dry run, e.g. `--device cpu --toy`): check 1 on a 2-layer encoder of width 64, the
table with 2-layer encoders, batch 2, one round, and a training step of batch 4; on CPU the kernel
path is skipped (it is CUDA-only) instead of counted as a failure.

mamba_ssm: its Triton kernels are all this needs (no CUDA extension).  Either an installed mamba_ssm
(a wheel with its extensions, `pip install --no-deps mamba_ssm-*.whl`), or `--mamba-src DIR` where
DIR/mamba_ssm is the package's source folder (e.g. from `pip download --no-deps --no-binary :all:
mamba_ssm==2.2.5` or a git checkout, `mamba_ssm/` subfolder): it is then imported as a bare package,
skipping mamba_ssm/__init__.py, which would import the compiled selective_scan_cuda.  The kernels
also need `einops` (carry its wheel).  causal_conv1d, when installed, makes hear_gram use the fused
kernel instead of the Triton scan; the route taken is printed.
Fixtures: `--fixtures DIR` in the format of tests/fixtures/official (default: $HEAR_GRAM_FIXTURES or
tests/fixtures/official, as the tests), read with tests/official_fixtures.py.
"""

import argparse
import importlib.util
import os
import sys
import time
import types

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TOL = {"fp32": 1e-4, "bf16": 2e-3, "grad": 1e-3}
FAILURES = []
DEV = torch.device("cuda")
TOY = dict(dim=64, depth=2, d_state=16, headdim=16)  # --toy encoder for check 1


def check(name, value, tol):
    ok = value <= tol
    print(f"  {'ok  ' if ok else 'FAIL'} {name}: {value:.2e} (<= {tol:.0e})", flush=True)
    if not ok:
        FAILURES.append(name)


def rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def import_mamba(src):
    """Make `mamba_ssm.ops.triton.ssd_combined` importable, from `src` (DIR/mamba_ssm) if needed."""
    try:
        import mamba_ssm.ops.triton.ssd_combined  # noqa: F401
        return "installed"
    except ImportError as e:
        if not src:
            return f"not importable ({e})"
    for k in [k for k in sys.modules if k == "mamba_ssm" or k.startswith("mamba_ssm.")]:
        del sys.modules[k]
    pkg = types.ModuleType("mamba_ssm")
    pkg.__path__ = [os.path.join(os.path.abspath(src), "mamba_ssm")]
    sys.modules["mamba_ssm"] = pkg
    try:
        import mamba_ssm.ops.triton.ssd_combined  # noqa: F401,F811
        return f"source {pkg.__path__[0]}"
    except ImportError as e:
        return f"not importable from {src} ({e})"


def set_kernels(module, on):
    from hear_gram.mamba2 import Mamba2Mixer
    for m in module.modules():
        if isinstance(m, Mamba2Mixer):
            m.use_kernels = on


def sync():
    if DEV.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, warmup=2, reps=5):
    for _ in range(warmup):
        fn()
    sync()
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    sync()
    return (time.perf_counter() - t) / reps


def autocast(dt):
    return torch.autocast(DEV.type, dtype=torch.bfloat16, enabled=dt == "bf16")


def empty_cache():
    if DEV.type == "cuda":
        torch.cuda.empty_cache()


def parity_random(paths, toy):
    from hear_gram.mamba2 import MambaEncoder
    size = TOY if toy else dict(dim=768, depth=24)
    print(f"1. random-weight encoder, {size['depth']} layers, (8, 201, {size['dim']}): kernel vs pure", flush=True)
    torch.manual_seed(0)
    enc = MambaEncoder(**size, use_kernels=False).to(DEV).eval()
    x = torch.randn(8, 201, size["dim"], device=DEV)
    with torch.no_grad():
        ref64 = enc.double()(x.double())
        enc.float()
        out = {}
        for p in paths:
            set_kernels(enc, p == "kernel")
            for dt in ("fp32", "bf16"):
                with autocast(dt):
                    out[p, dt] = enc(x).float()
                print(f"  {p:6s} {dt}: rel vs float64 {rel(out[p, dt], ref64):.2e}", flush=True)
    if "kernel" in paths:
        check("fp32 output kernel vs pure", rel(out["kernel", "fp32"], out["pure", "fp32"]), TOL["fp32"])
        print(f"  bf16 output kernel vs pure: {rel(out['kernel', 'bf16'], out['pure', 'bf16']):.2e}")
        check("bf16 output kernel vs float64", rel(out["kernel", "bf16"], ref64),
              2 * rel(out["pure", "bf16"], ref64) + 1e-3)
        grads = {}
        for p in paths:
            set_kernels(enc, p == "kernel")
            enc.zero_grad()
            xg = x[:4].clone().requires_grad_(True)
            enc(xg).pow(2).mean().backward()
            grads[p] = [xg.grad] + [q.grad.clone() for q in enc.parameters()]
        names = ["input"] + [n for n, _ in enc.named_parameters()]
        errs = [(rel(a, b), n) for a, b, n in zip(grads["kernel"], grads["pure"], names)]
        worst = max(errs)
        check(f"fp32 gradients kernel vs pure (worst: {worst[1]})", worst[0], TOL["grad"])
    del enc
    empty_cache()


def parity_fixture(paths, folder):
    if not os.path.exists(os.path.join(folder, "keys.json")):
        print(f"2. official fixture: not found at {folder}, skipped", flush=True)
        return
    from hear_gram.checkpoint import load_encoder
    from hear_gram.model import VARIANTS
    helper = os.path.join(REPO, "tests", "official_fixtures.py")
    spec = importlib.util.spec_from_file_location("official_fixtures", helper)
    oc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(oc)
    print("2. official fixture gramm_frame, chunk_mean vs recorded official output", flush=True)
    model = load_encoder(VARIANTS["gram_m_patch"].config, oc.state_dict("gramm_frame", folder)).to(DEV).eval()
    e = oc.expected("gramm_frame", folder)
    logmel, ref = e["chunk_logmel"].to(DEV), e["chunk_mean"].to(DEV)
    for p in paths:
        set_kernels(model, p == "kernel")
        for dt in ("fp32", "bf16"):
            with torch.no_grad(), autocast(dt):
                got = model.pool(model.forward_features(logmel), "mean").float()
            check(f"{p} {dt} chunk_mean vs official", rel(got, ref), TOL[dt])
    del model
    empty_cache()


def speed(paths, batch, train_batch, toy):
    import dataclasses

    from benchmarks import encoder_speed
    from hear_gram.model import VARIANTS
    from training.pretrain_model import PretrainModel
    print(f"3. speed, random weights ({torch.cuda.get_device_name() if DEV.type == 'cuda' else 'CPU'})", flush=True)
    encoder_speed.main(["--device", str(DEV), "--dtypes", "fp32", "bf16", "--batch", str(batch)]
                       + (["--depth", "2", "--repeat", "1"] if toy else []))
    torch.manual_seed(0)
    config = VARIANTS["gram_m_patch"].config
    model = PretrainModel(dataclasses.replace(config, depth=2) if toy else config).to(DEV)
    c = model.config
    logmel = torch.randn(train_batch, c.in_channels, c.chunk_frames, c.n_mels, device=DEV)
    n, k = c.n_tokens, round(c.n_tokens * c.mask_ratio)
    mask = torch.zeros(train_batch, n, dtype=torch.bool, device=DEV)
    mask.scatter_(1, torch.rand(train_batch, n, device=DEV).argsort(1)[:, :k], True)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
    tdt = "bf16" if DEV.type == "cuda" else "fp32"  # (bf16 matmuls are emulated, slow, on most CPUs)
    print(f"training step, gram_m_patch{' (2 layers)' if toy else ''}, {tdt}, batch {train_batch}")
    print(f"| path | train step {tdt} chunks/s | train ms |")
    print("|---|---|---|")
    for p in paths:
        set_kernels(model, p == "kernel")
        model.train()

        def step():
            with autocast(tdt):
                loss = model(logmel[:train_batch], mask)[0]
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        t = timed(step, warmup=1 if toy else 2, reps=1 if toy else 3)
        print(f"| {p} | {train_batch / t:.1f} | {t * 1e3:.0f} |", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mamba-src", default=os.environ.get("MAMBA_SSM_SRC"),
                    help="folder holding the mamba_ssm package source (DIR/mamba_ssm)")
    ap.add_argument("--fixtures", default=os.environ.get(
        "HEAR_GRAM_FIXTURES", os.path.join(REPO, "tests", "fixtures", "official")))
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--train-batch", type=int, default=128)
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--device", default="cuda", help="cuda (default), or cpu for a dry run with --toy")
    ap.add_argument("--toy", action="store_true", help="small sizes: a quick dry run of every step")
    a = ap.parse_args()
    global DEV
    DEV = torch.device(a.device)
    if DEV.type == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_mamba_check: CUDA is not available (--device cpu --toy for a dry run)")
    if a.toy:
        a.batch, a.train_batch = min(a.batch, 2), min(a.train_batch, 4)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    how = import_mamba(a.mamba_src)
    from hear_gram import mamba2 as m2
    routes = sorted(k for k in m2._load_kernels() if k != "loaded")
    name = torch.cuda.get_device_name() if DEV.type == "cuda" else "CPU"
    print(f"torch {torch.__version__}, {name}; mamba_ssm: {how}; "
          f"kernel route: {'fused' if 'fused' in routes else 'Triton scan' if routes else 'none'}", flush=True)
    paths = ["pure"] + (["kernel"] if DEV.type == "cuda" and m2.kernels_available() else [])
    if len(paths) == 1:
        if DEV.type == "cuda":
            FAILURES.append("mamba_ssm kernels not importable")
        else:
            print("kernel path: CUDA only, skipped on CPU", flush=True)
    parity_random(paths, a.toy)
    parity_fixture(paths, a.fixtures)
    if not a.skip_speed:
        speed(paths, a.batch, a.train_batch, a.toy)
    print("FAILED: " + "; ".join(FAILURES) if FAILURES else "all checks passed", flush=True)
    sys.exit(1 if FAILURES else 0)


if __name__ == "__main__":
    main()
