"""Two pretraining kernels, each in the form training runs against the straightforward one, side by side:

1. MW-MAE decoder attention: per-window blocks (training/decoder.py) against the dense (N, N) softmax with -inf
   outside the windows (`MultiWindowAttention.dense_forward`);
2. the masked patch embedding: a GEMM over the visible patches only (`GramEncoder.embed_patches(x, mask)`) against the
   official form, the stride = kernel conv over every patch, then the masked tokens dropped.

    python -m benchmarks.pretrain_kernels                      # CPU, the threads torch picks
    python -m benchmarks.pretrain_kernels --threads 1
    python -m benchmarks.pretrain_kernels --device cuda --batch 512

Per configuration (a preset or variant: decoder width, heads and windows; encoder width, patch and mask ratio;
`--batch` crops) it times forward + backward (input and parameter gradients for the attention, parameter
gradients for the embedding, whose input is data), median of `--repeats` after `--warmup`, and prints the largest
output difference of the two forms (float32).
"""
import argparse
import statistics
import time

import torch

from benchmarks.train_step import config_named
from hear_gram.model import GramEncoder
from training.decoder import MultiWindowAttention
from training.pretrain_model import random_mask


def time_fn(fn, x, repeats, warmup, device) -> float:
    """Median seconds of fn(x).sum().backward()."""
    times = []
    for i in range(warmup + repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn(x).sum().backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def conv_then_mask(enc: GramEncoder, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The official embedding: conv over every patch, masked tokens dropped afterwards."""
    tok = enc.embed_patches(x)
    return tok[~mask].reshape(x.shape[0], -1, tok.shape[-1])


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.pretrain_kernels", description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", nargs="+", default=["demo", "demo@gram_t_time", "gram_t_patch"],
                   help="variant or preset names (benchmarks.train_step.config_named)")
    p.add_argument("--batch", type=int, nargs="+", default=[64, 64, 8], help="crops per configuration (one value: all)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch's default)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    a = p.parse_args(argv)
    if len(a.batch) not in (1, len(a.configs)):
        p.error(f"--batch: give one value or one per configuration ({len(a.configs)}), not {len(a.batch)}")
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    batches = a.batch * len(a.configs) if len(a.batch) == 1 else a.batch
    print(f"device {device}, {torch.get_num_threads()} threads, float32, forward + backward of one layer, "
          f"median of {a.repeats}\n")
    print("| decoder attention | crops x tokens | Dd / heads | windows | dense ms | by windows ms | speed-up | max |diff| |")
    print("|---|---|---|---|---|---|---|---|")
    for name, b in zip(a.configs, batches):
        c = config_named(name)
        torch.manual_seed(0)
        att = MultiWindowAttention(c.decoder_dim, c.decoder_heads, c.decoder_windows).to(device)
        x = torch.randn(b, c.n_tokens, c.decoder_dim, device=device, requires_grad=True)
        with torch.no_grad():
            diff = (att(x) - att.dense_forward(x)).abs().max().item()
        dense = time_fn(att.dense_forward, x, a.repeats, a.warmup, device)
        blocks = time_fn(att, x, a.repeats, a.warmup, device)
        print(f"| {name} | {b} x {c.n_tokens} | {c.decoder_dim} / {c.decoder_heads} | "
              f"{','.join(map(str, c.decoder_windows))} | {dense * 1e3:.1f} | {blocks * 1e3:.1f} | "
              f"{dense / blocks:.2f}x | {diff:.1e} |")
    print("\n| patch embedding | crops x tokens (visible) | patch -> D | conv, all patches ms | GEMM, visible ms | "
          "speed-up | max |diff| |")
    print("|---|---|---|---|---|---|---|")
    for name, b in zip(a.configs, batches):
        c = config_named(name)
        torch.manual_seed(0)
        with torch.device(device):
            enc = GramEncoder(c)
        x = torch.randn(b, c.in_channels, c.n_mels, c.chunk_frames, device=device)
        mask = random_mask(b, c.n_tokens, c.n_masked, generator=torch.Generator().manual_seed(0)).to(device)
        with torch.no_grad():
            diff = (conv_then_mask(enc, x, mask) - enc.embed_patches(x, mask)).abs().max().item()
        conv = time_fn(lambda x: conv_then_mask(enc, x, mask), x, a.repeats, a.warmup, device)
        gemm = time_fn(lambda x: enc.embed_patches(x, mask), x, a.repeats, a.warmup, device)
        print(f"| {name} | {b} x {c.n_tokens} ({c.n_tokens - c.n_masked}) | {c.patch_dim} -> {c.dim} | "
              f"{conv * 1e3:.1f} | {gemm * 1e3:.1f} | {conv / gemm:.2f}x | {diff:.1e} |")


if __name__ == "__main__":
    main()
