"""Streaming embeddings: real-time factor and latency on this machine.

    python -m benchmarks.streaming [--variants gram_t_patch gram_m_patch] [--seconds 16] [--blocks-ms 10 100 1000]

Full official architectures with random weights (speed does not depend on the values), binaural noise
pushed block by block into `model.stream()` as fast as the machine goes; each push is timed.
Columns:
- compute s/chunk: median encoder + front-end time of a push that completed one chunk;
- RTF: total compute / audio duration (below 1: keeps up with live audio);
- latency: the delay from a sample's arrival to the embedding that covers it, if the audio arrives in
  real time and each push starts when its block has arrived (valid while RTF < 1): for every sample,
  (arrival of the block that completed its chunk + that push's compute) - the sample's own arrival;
  the median and the maximum over all samples.  The structural part is at most one 2 s chunk + 6 ms
  (STFT context) + one block; the rest is compute.
"""

import argparse
import statistics
import time

import torch

from hear_gram.model import VARIANTS, GramEncoder
from hear_gram.runtime import GramRuntime

SR = 32000


def run(rt, seconds, block):
    x = torch.randn(2, seconds * SR, generator=torch.Generator().manual_seed(0)) * 0.1
    s = rt.stream()
    s.push(x[:, :3 * SR])  # warm-up (one chunk)
    s = rt.stream()
    per_chunk, total, delays = [], 0.0, []
    for a in range(0, x.shape[1], block):
        b = min(a + block, x.shape[1])
        t0 = time.perf_counter()
        emb, ts = s.push(x[:, a:b])
        dt = time.perf_counter() - t0
        total += dt
        if len(ts):
            chunks = len(ts) / rt.config.grid[1] if rt.strategy == "raw" else len(ts)
            per_chunk.append(dt / chunks)
            # samples covered by these frames: from the first frame's token start to the last one's end
            tok_ms = 10.0 * rt.config.patch[1]
            first_ms = ts[0].item() - (tok_ms - 10.0) / 2 - 5.0
            last_ms = ts[-1].item() + (tok_ms - 10.0) / 2 + 5.0
            ready_ms = 1000.0 * b / SR + 1000.0 * dt
            # delays of the covered samples are uniform in [ready - last, ready - first]
            delays.append((ready_ms - last_ms, ready_ms - first_ms))
    t0 = time.perf_counter()
    s.flush()
    total += time.perf_counter() - t0
    # median over samples: every emitted span covers the same audio length, so the mid-span delays' median
    med = statistics.median([(lo + hi) / 2 for lo, hi in delays])
    return statistics.median(per_chunk), total / seconds, med / 1000.0, max(hi for _, hi in delays) / 1000.0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--variants", nargs="+", default=["gram_t_patch", "gram_m_patch"])
    p.add_argument("--seconds", type=int, default=16)
    p.add_argument("--blocks-ms", nargs="+", type=float, default=[10, 100, 1000])
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--max-chunks", type=int, default=8)
    p.add_argument("--toy", action="store_true", help="tiny models (a quick check of the script)")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    import platform

    print(f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"{a.seconds} s binaural per row; latency assumes real-time arrival (valid when RTF < 1)")
    print("| variant | block ms | compute s/chunk | RTF | median latency s | max latency s |")
    print("|---|---|---|---|---|---|")
    for name in a.variants:
        cfg = VARIANTS[name].config
        if a.toy:
            cfg = type(cfg)(**{**cfg.to_dict(), "dim": 64, "depth": 2, "num_heads": 4, "mlp_dim": 128,
                               "headdim": 16, "d_state": 16, "decoder_dim": 32, "decoder_depth": 1})
        torch.manual_seed(0)
        rt = GramRuntime(GramEncoder(cfg), name, max_chunks=a.max_chunks)
        for ms in a.blocks_ms:
            chunk_s, rtf, med, worst = run(rt, a.seconds, max(1, int(ms * SR / 1000)))
            print(f"| {name} | {ms:g} | {chunk_s:.3f} | {rtf:.3f} | {med:.2f} | {worst:.2f} |", flush=True)


if __name__ == "__main__":
    main()
