"""User corpora (folders of audio, AudioSet-style tar shards) streamed into the torch scene backend.

`torch.utils.data` workers only decode and resample dry clips (no convolution, no mixing): clip i of a stream is
a pure function of (seed, i) -- a random corpus file (training/sources.py FolderSource / TarShardSource draws),
channel 0, resampled to 32 kHz by the project's resampler, cut at a random offset to at most n samples,
RMS-normalised -- so the stream is the same for any number of workers, and its position (the next index) is
all `--resume` needs.  Batches come in pinned memory with prefetch; the device-side spatialisation
(training/scene_device.py) places each clip into its scene's source row.

    stream = DryClipStream(sources, n=320000, dbfs=-14.0, seed=ss, batch=32, workers=4, pin=True)
    # (SceneSynth(backend="torch") with source_dirs/source_shards makes one; CropStream passes data_workers)
    clips, lengths, names = stream.next()     # (32, n) float32 (zero-padded), (32,) int64, [str] * 32
    state = stream.state_dict(); stream.load_state_dict(state)

`benchmarks/decode.py` measures the decode throughput (clips/s per worker).
"""
from __future__ import annotations

import numpy as np
import torch

from .sources import rms_normalize


class DryClips(torch.utils.data.Dataset):
    """Map-style dataset: item i = (clip (n,) float32 zero-padded, length, name) drawn with rng(seed, i)."""

    def __init__(self, sources: list, n: int, dbfs: float, seed: np.random.SeedSequence):
        self.sources, self.n, self.dbfs = list(sources), int(n), float(dbfs)
        self.entropy, self.key = seed.entropy, tuple(seed.spawn_key)

    def __len__(self) -> int:
        return 2 ** 62  # endless: the sampler says which items

    def __getitem__(self, i: int):
        rng = np.random.default_rng(np.random.SeedSequence(self.entropy, spawn_key=(*self.key, int(i))))
        src = self.sources[int(rng.integers(len(self.sources)))]
        got = src.draw(rng)
        out = np.zeros(self.n, np.float32)
        if got is None:  # nothing readable in `tries` draws: an empty clip (the scene falls back to the pool)
            return torch.from_numpy(out), 0, ""
        name, x = got
        x = rms_normalize(x[: self.n], self.dbfs)
        out[: len(x)] = x
        return torch.from_numpy(out), len(x), f"{src.kind}:{name}"


class _From(torch.utils.data.Sampler):
    def __init__(self, start: int):
        self.start = start

    def __iter__(self):
        i = self.start
        while True:
            yield i
            i += 1


class DryClipStream:
    """Batches of DryClips from position `pos` on, through a DataLoader (workers, pinned memory, prefetch)."""

    def __init__(self, sources: list, n: int, dbfs: float, seed: np.random.SeedSequence, batch: int,
                 workers: int = 0, pin: bool = False, prefetch: int = 2):
        self.data, self.batch, self.workers, self.pin, self.prefetch = DryClips(sources, n, dbfs, seed), batch, \
            workers, pin, prefetch
        self.pos, self._it = 0, None

    def _loader(self):
        kw = dict(num_workers=self.workers, pin_memory=self.pin)
        if self.workers:
            kw.update(prefetch_factor=self.prefetch, persistent_workers=False, multiprocessing_context="fork",
                      worker_init_fn=_one_thread)
        return iter(torch.utils.data.DataLoader(self.data, batch_size=self.batch, sampler=_From(self.pos), **kw))

    def next(self, batch: int | None = None):
        """(clips (batch, n), lengths (batch,) int64, names [str]); a new batch size restarts the loader at the
        current position."""
        if batch is not None and batch != self.batch:
            self.close()
            self.batch = batch
        if self._it is None:
            self._it = self._loader()
        clips, lengths, names = next(self._it)
        self.pos += self.batch
        return clips, lengths, list(names)

    def state_dict(self) -> dict:
        return {"pos": self.pos}

    def load_state_dict(self, state: dict) -> None:
        self.close()
        self.pos = int(state["pos"])

    def close(self) -> None:
        self._it = None  # the DataLoader iterator shuts its workers down when collected


def _one_thread(_):
    torch.set_num_threads(1)
