"""Decode throughput of streamed user corpora (training/streaming.py): clips/s through DataLoader workers that
decode + resample + RMS-normalise 10 s dry clips (the only host work per user clip on the torch backend).

    python -m benchmarks.decode [--clips 48] [--workers 0 1 2] [--rate 44100] [--format FLAC]

Writes --clips random-noise clips of 10 s at --rate as one AudioSet-style tar shard in a temporary folder,
then reads --clips clips (batches of 8) through DryClipStream per worker count, after one warm-up batch.
Prints clips/s and clips/s per worker (0 workers: decoding in the calling process).
"""
import argparse
import io
import tarfile
import tempfile
import time

import numpy as np
import soundfile as sf
import torch

from training.sources import TarShardSource
from training.streaming import DryClipStream


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=48)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--rate", type=int, default=44100)
    ap.add_argument("--format", default="FLAC")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        shard = f"{tmp}/shard-000000.tar"
        rng = np.random.default_rng(0)
        with tarfile.open(shard, "w") as tf:
            for i in range(args.clips):
                buf = io.BytesIO()
                sf.write(buf, 0.1 * rng.standard_normal(10 * args.rate).astype(np.float32), args.rate,
                         format=args.format)
                info = tarfile.TarInfo(f"{i:05d}.{args.format.lower()}")
                info.size = len(buf.getvalue())
                tf.addfile(info, io.BytesIO(buf.getvalue()))
        print(f"# {args.clips} clips of 10 s, {args.format} at {args.rate} Hz -> 32 kHz; batches of 8; "
              f"torch {torch.__version__}")
        print("| workers | clips/s | clips/s per worker |")
        print("|---|---|---|")
        for w in args.workers:
            stream = DryClipStream([TarShardSource([shard])], 320000, -14.0, np.random.SeedSequence(0), 8, w)
            stream.next()  # warm-up: worker start, shard index, resampler kernel
            t0 = time.perf_counter()
            n = 0
            while n < args.clips:
                n += len(stream.next()[1])
            rate = n / (time.perf_counter() - t0)
            stream.close()
            print(f"| {w} | {rate:.1f} | {rate / max(1, w):.1f} |", flush=True)


if __name__ == "__main__":
    main()
