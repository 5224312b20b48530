"""Training-step time and crops/s of training/train.py's step, per scene backend, against a FLOP floor.

    python -m benchmarks.train_step                                    # CPU: tiny and smoke models, both backends
    python -m benchmarks.train_step --configs gram_t_patch gram_m_patch --clips 32 --crops 16 --device cuda \
        --backends torch numpy --steps 5                               # the paper's step on a GPU
    python -m benchmarks.train_step --configs smoke --compile          # also torch.compile of the model

Per configuration and scene backend (training/scenes.py: "numpy" renders on the host CPU, "torch" keeps the
scene material on the device and the host only draws) it times, separately, (a) data: scene synthesis +
log-mel + crops + masks (training/data.py CropStream.next_batch), split into host work (SceneSynth.stats
["host_s"]) and the rest, device work, and (b) compute: forward + backward + grad clip + AdamW step (bf16
autocast on CUDA, float32 on CPU). Medians over --steps after --warmup steps. It prints:
  host ms/scene, device ms/scene   data time per scene on the host / on the device (on a CPU device both run on
                                   the CPU, one after the other);
  data %                           data / (data + compute): the loop runs them in series;
  crops/s                          clips x crops / (data + compute);
  180k steps h                     projected wall time of the paper's 180,000 steps (paper §3.4) at this step;
  achieved GFLOP/s, bound          data (data > compute), compute (>= 40 % of the measured dense-GEMM rate),
                                   overhead (otherwise).
The scene distribution is the `smoke` scene preset (a 32-set bank, small pool, built in seconds): per-scene
cost does not depend on the bank or pool size (same 10 s scenes, same BRIR length as the default).

FLOPs per crop (forward; 1 multiply-add = 2 FLOPs; forward + backward = 3 x forward), with N tokens per crop,
Nv = 1 + N - n_masked visible tokens + CLS, P = C * fs * ts values per patch:
  patch embed                2 (N - n_masked) P D   (only the visible patches are embedded)
  ViT encoder, per block     2 Nv (4 D^2 + 2 D M) + 4 Nv^2 D        (M = mlp_dim)
  Mamba2 encoder, per block  2 Nv D (2 Di + 2 S + H) + 2 Nv Di D + 2 Nv^2 (Di + S)  (Di = expand D, S = d_state,
                             H = heads; the last term is the quadratic SSD form; an estimate)
  decoder embed              2 Nv D Dd
  MW-MAE decoder, per block  2 N (4 Dd^2 + 8 Dd^2) + 4 N (Dd / H) sum_h n_h   (head h attends to n_h = its
                             window w_h tokens, or all N for a global head: training/decoder.py)
  prediction head            2 N Dd P
GRAM-T patch (D 768, 12 blocks, Dd 512, 8 blocks, N 200, Nv 41): 17.4 GFLOP forward, 52.3 GFLOP per crop
forward + backward (peers.md §3: "about 51"); 53.7 before the windows were computed alone and the masked patches
left out of the patch embedding.
"""

import argparse
import statistics
import time

import torch


from hear_gram.model import VARIANTS, GramConfig
from training.config import load_preset
from training.data import CropStream
from training.pretrain_model import PretrainModel
from training.scenes import SceneConfig


def flops_per_crop(c: GramConfig) -> float:
    """Forward + backward FLOPs of one masked crop (formula in the module docstring)."""
    n, nv, p, d, dd = c.n_tokens, 1 + c.n_tokens - c.n_masked, c.patch_dim, c.dim, c.decoder_dim
    f = 2 * (n - c.n_masked) * p * d
    if c.encoder == "transformer":
        f += c.depth * (2 * nv * (4 * d * d + 2 * d * c.mlp_dim) + 4 * nv * nv * d)
    else:
        di = c.expand * d
        h = di // c.headdim
        f += c.depth * (2 * nv * d * (2 * di + 2 * c.d_state + h) + 2 * nv * di * d + 2 * nv * nv * (di + c.d_state))
    f += 2 * nv * d * dd
    span = sum(w or n for w in c.decoder_windows)  # keys per query, summed over heads
    f += c.decoder_depth * (2 * n * 12 * dd * dd + 4 * n * (dd // c.decoder_heads) * span)
    f += 2 * n * dd * p
    return 3.0 * f


def config_named(name: str) -> GramConfig:
    """A variant name (full size, training log_eps), a preset name, or `preset@variant` (the preset's model
    overrides on another variant's architecture, e.g. tiny@gram_m_patch: a toy GRAM-M)."""
    if name in VARIANTS:
        return GramConfig(**{**VARIANTS[name].config.to_dict(), "log_eps": 1e-5})
    name, _, variant = name.partition("@")
    preset = load_preset(name)
    base = VARIANTS[variant or preset.get("variant", "gram_t_patch")].config.to_dict()
    return GramConfig(**{**base, **preset.get("model", {})})


def gemm_gflops(device: torch.device, dtype: torch.dtype, n: int = 2048, reps: int = 3) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    sync(device)
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n ** 3 * reps / (time.perf_counter() - t) / 1e9


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench(name: str, device: torch.device, clips: int, crops: int, steps: int, warmup: int, backend: str,
          compile_model: bool = False) -> dict:
    cfg = config_named(name)
    torch.manual_seed(0)
    model = PretrainModel(cfg).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.95), weight_decay=0.01,
                            **({"fused": True} if device.type == "cuda" else {}))
    stream = CropStream(SceneConfig.preset("smoke"), cfg, clips, crops, seed=0, device=device, backend=backend)
    run = torch.compile(model) if compile_model else model
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else None
    t_host, t_data, t_comp = [], [], []
    for i in range(warmup + steps):
        sync(device)
        h0 = stream.synth.stats["host_s"]
        t0 = time.perf_counter()
        x, mask = stream.next_batch(model.encoder.melspec)
        sync(device)
        t1 = time.perf_counter()
        if autocast is not None:
            with autocast:
                loss, _, _ = run(x, mask)
        else:
            loss, _, _ = run(x, mask)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync(device)
        t2 = time.perf_counter()
        if i >= warmup:
            t_host.append(stream.synth.stats["host_s"] - h0)
            t_data.append(t1 - t0)
            t_comp.append(t2 - t1)
    host, data, comp = (statistics.median(t) for t in (t_host, t_data, t_comp))
    n = clips * crops
    gf = flops_per_crop(cfg) / 1e9
    return dict(config=name + (" (compiled)" if compile_model else ""), device=device.type,
                backend=stream.synth.backend, batch=f"{clips}x{crops}", gflop_per_crop=gf,
                host_ms=1e3 * host / clips, device_ms=1e3 * max(0.0, data - host) / clips, data_s=data,
                compute_s=comp, step_s=data + comp, crops_per_s=n / (data + comp), gflops=gf * n / comp)


HEADER = ("| config | device | backend | clips x crops | host ms/scene | device ms/scene | data s | compute s "
          "| step s | data % | crops/s | 180k steps h | GFLOP/crop | achieved GFLOP/s | % of GEMM | bound |")


def row(r: dict, peak: float) -> str:
    frac = r["gflops"] / peak
    bound = "data" if r["data_s"] > r["compute_s"] else ("compute" if frac >= 0.4 else "overhead")
    return (f"| {r['config']} | {r['device']} | {r['backend']} | {r['batch']} | {r['host_ms']:.2f} "
            f"| {r['device_ms']:.2f} | {r['data_s']:.3f} | {r['compute_s']:.3f} | {r['step_s']:.3f} "
            f"| {100 * r['data_s'] / r['step_s']:.0f} % | {r['crops_per_s']:.1f} | {180_000 * r['step_s'] / 3600:.1f} "
            f"| {r['gflop_per_crop']:.2f} | {r['gflops']:.1f} | {100 * frac:.0f} % | {bound} |")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", nargs="+", default=["tiny", "smoke"],
                    help="preset names (training/presets) or variant names (full size)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--backends", nargs="+", default=["numpy", "torch"], choices=["numpy", "torch"])
    ap.add_argument("--clips", type=int, default=4)
    ap.add_argument("--crops", type=int, default=4)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile(model) (numpy/torch as given)")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        peak = gemm_gflops(device, torch.bfloat16, 8192)
        label = f"{torch.cuda.get_device_name(device)}, bf16 GEMM {peak:.0f} GFLOP/s"
    else:
        peak = gemm_gflops(device, torch.float32)
        label = f"CPU x{torch.get_num_threads()} threads, fp32 GEMM {peak:.1f} GFLOP/s"
    print(f"# {label}; torch {torch.__version__}; medians of {args.steps} steps after {args.warmup}")
    print(HEADER)
    print("|" + "---|" * HEADER.count(" | ") + "---|")
    for name in args.configs:
        for backend in args.backends:
            for comp in (False, True) if args.compile else (False,):
                print(row(bench(name, device, args.clips, args.crops, args.steps, args.warmup, backend, comp), peak),
                      flush=True)


if __name__ == "__main__":
    main()
