"""Host work per scene of the torch scene backend (training/scene_device.py DeviceMaterial.draw) at the sizes of a
scene preset, without rendering its bank or pool: the draws depend only on the number of BRIR sets and on the
pool's clip counts and lengths, so a stand-in bank (S sets of 1 sample) and pool (silent clips with the embedded
generators' length ranges: speech 1-4 s, notes 1.5-4 s, events 0.3-2.5 s) give the same host cost.

    python -m benchmarks.scene_draws [--preset default] [--batch 32] [--repeats 20] [--threads 1]

Prints ms per scene (median over --repeats batches) for the default noise mix and for all-babble scenes
(the most draws: 4-8 talkers of chained utterances).
"""
import argparse
import dataclasses
import statistics
import time
import types

import numpy as np
import torch

from training.scene_device import DeviceMaterial
from training.scenes import SceneConfig


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="default")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"# scene preset {args.preset}, batches of {args.batch}, median of {args.repeats}, "
          f"{args.threads} thread(s)")
    print("| noise mix | BRIR sets | pool clips | host ms/scene |")
    print("|---|---|---|---|")
    base = SceneConfig.preset(args.preset)
    for label, weights in (("preset", base.noise_weights), ("all babble", (0, 0, 0, 1))):
        cfg = dataclasses.replace(base, noise_weights=tuple(weights))
        mat = _material(cfg)
        rng = np.random.default_rng(0)
        mat.draw(rng, args.batch)
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            mat.draw(rng, args.batch)
            times.append(time.perf_counter() - t0)
        print(f"| {label} | {mat.n_sets} | {len(mat.pool_lengths)} | "
              f"{1e3 * statistics.median(times) / args.batch:.3f} |", flush=True)


class _Bank:
    def __init__(self, S):
        self.target = self.noise = torch.zeros(S, 2, 1, dtype=torch.float16)
        self.S = S

    def __len__(self):
        return self.S


def _material(cfg: SceneConfig) -> DeviceMaterial:
    rng = np.random.default_rng(0)
    fs = cfg.sample_rate
    pool = {k: [(f"{k}{i}", np.zeros(int(rng.uniform(lo, hi) * fs), np.float32)) for i in range(n)]
            for k, n, lo, hi in (("speech", cfg.n_speech, 1.0, 4.0), ("note", cfg.n_notes, 1.5, 4.0),
                                 ("event", cfg.n_events, 0.3, 2.5)) if n}
    synth = types.SimpleNamespace(cfg=cfg, bank=_Bank(cfg.n_rooms * cfg.sets_per_room), pool=pool,
                                  _pool_clip=lambda k, j, n: pool[k][j][1][:n])
    mat = DeviceMaterial(synth, "cpu")
    mat.pool_lengths = [x for v in pool.values() for x in v]
    return mat


if __name__ == "__main__":
    main()
