"""Training batches: naturalistic scenes -> 10 s binaural log-mels -> in-batch 2 s crops + masks (gram_spec §7.3).

    stream = CropStream(SceneConfig.preset("smoke"), gram_cfg, clips=32, crops_per_clip=16, seed=0, rank=0,
                        device="cpu")
    x, mask = stream.next_batch(model.encoder.melspec)
    # x: (clips * crops_per_clip, C, 200, 128) float32 log-mel crops (time before frequency, as the encoder takes them)
    # mask: (clips * crops_per_clip, N) bool, True = masked, exactly round(mask_ratio * N) per row (§5.1)

Per step (gram_spec §7.3, steps 2-4):
1. `clips` scenes of 10 s at 32 kHz from `training.scenes.SceneSynth` (online mixing; user corpora come in
   through `SceneConfig.source_dirs` / `source_shards` / `noise_dirs` / `brir_dirs`).
2. Log-mel in float32 outside autocast with the model's own front end (ln(mel + cfg.log_eps); training
   presets use 1e-5 as the official training, §9.1): (B, C, 1001, 128), padded with 0.0 rows to
   `input_frames` = 1024 frames as the official `pad_or_truncate_batch`.
3. `crops_per_clip` start frames per clip ~ U{0 .. input_frames - 200} (crops may overlap and may include the
   padded tail, as in the official code), gathered to (B * K, C, 200, 128) and shuffled across clips.
4. Masks: i.i.d. uniformly random subsets of the tokens (`training.pretrain_model.random_mask`).

Per-rank data: every rank builds the same BRIR bank and embedded source pool (seed `seed`, so a run's rooms
do not depend on the world size), but draws its scenes, crops and masks from its own stream seeded by
(seed, rank): ranks see disjoint random draws (the sampling is with replacement, so this is the sharding).
`state_dict()` / `load_state_dict()` capture the exact position of both streams for `--resume`.

`backend` is SceneSynth's: "torch" keeps the scene material on `device` and renders there (the host only draws;
what a GPU run wants), "numpy" renders on the CPU (faster on a CPU), "auto" picks by device (training/scenes.py).
With the torch backend, user corpora (`source_dirs`, `source_shards`) stream in through `workers` DataLoader
processes that only decode and resample dry clips (training/streaming.py; the stream does not depend on the
number of workers). With the numpy backend, `workers=W > 0` moves scene synthesis into W background processes
that take turns making whole batches, each with its own draw stream (seed, rank, w): the stream differs from
W = 0 but is just as deterministic and resumable (same W required).
"""

import queue

import numpy as np
import torch

from hear_gram.model import GramConfig

from .pretrain_model import random_mask

from .scenes import SceneConfig, SceneSynth


class CropStream:
    """Endless stream of (log-mel crops, masks) for one rank; see the module docstring."""

    def __init__(self, scenes: SceneConfig, model_cfg: GramConfig, clips: int, crops_per_clip: int,
                 input_frames: int = 1024, seed: int = 0, rank: int = 0, device="cpu", workers: int = 0,
                 backend: str = "auto"):
        if input_frames < model_cfg.chunk_frames:
            raise ValueError(f"input_frames={input_frames} is shorter than a {model_cfg.chunk_frames}-frame crop")
        self.cfg, self.clips, self.k, self.input_frames = model_cfg, clips, crops_per_clip, input_frames
        self.device = torch.device(device)
        ss = np.random.SeedSequence([seed, rank])
        scene_ss, crop_ss = ss.spawn(2)
        self.gen = torch.Generator().manual_seed(int(crop_ss.generate_state(1, np.uint64)[0] >> 1))
        resolved = SceneSynth.resolve_backend(scenes, self.device, backend)
        streams = bool(scenes.source_dirs or scenes.source_shards)
        if backend == "auto" and workers and not streams:
            resolved = "numpy"  # workers without corpora to decode: scene workers, as before the torch backend
        if resolved == "torch" and workers and not streams:
            raise ValueError("data_workers with the torch scene backend decode user corpora (source_dirs, "
                             "source_shards); without them the scenes render on the device in the loop: use 0")
        scene_workers = workers if resolved == "numpy" else 0
        # with scene workers, this synthesizer is their template (they render on the CPU)
        self.synth = SceneSynth(scenes, seed=seed, device="cpu" if scene_workers else self.device, split="train",
                                backend=resolved)
        # The synthesizer's own draw stream is replaced by a per-rank one: the bank and pool stay shared.
        self.synth.rng = np.random.default_rng(scene_ss)
        if self.synth.user_stream is not None:  # per-rank stream of decoded user clips, `workers` decoders
            self.synth.stream_user_clips(np.random.SeedSequence(scene_ss.entropy, spawn_key=(*scene_ss.spawn_key, 1)),
                                         workers)
        workers = scene_workers
        self.workers = None
        if workers:
            # Scene synthesis is CPU work (tens of ms per clip); `workers` forked copies of the synthesizer (same
            # bank and source pool) make whole batches in turn: batch i comes from worker i % workers, each
            # with its own draw stream (seed, rank, 1 + w).
            self.workers = SceneWorkers(self.synth, clips, [np.random.SeedSequence([seed, rank, 1 + w])
                                                             for w in range(workers)])

    @property
    def crops(self) -> int:
        return self.clips * self.k

    @torch.no_grad()
    def logmels(self, melspec) -> torch.Tensor:
        """(clips, C, input_frames, n_mels) float32 log-mels of fresh scenes."""
        if self.workers is not None:
            audio = self.workers.next().to(self.device)  # (B, 2, 320000)
        else:
            audio, _ = self.synth.sample(self.clips, meta=False)  # (B, 2, 320000) on the device
        if self.cfg.in_channels == 1:
            audio = audio.mean(dim=1, keepdim=True)
        elif self.cfg.in_channels != audio.shape[1]:
            raise ValueError(f"scenes have {audio.shape[1]} channels, the model takes {self.cfg.in_channels}")
        with torch.autocast(self.device.type, enabled=False):
            lm = melspec(audio.float())  # (B, C, 1001, F)
        t = lm.shape[2]
        if t < self.input_frames:  # zero rows appended (official pad_or_truncate_batch)
            lm = torch.nn.functional.pad(lm, (0, 0, 0, self.input_frames - t))
        return lm[:, :, : self.input_frames]

    @torch.no_grad()
    def next_batch(self, melspec) -> tuple:
        """-> (x (B*K, C, 200, F) float32, mask (B*K, N) bool) on the stream's device."""
        lm = self.logmels(melspec)
        b, frames = lm.shape[0], self.cfg.chunk_frames
        starts = torch.randint(0, self.input_frames - frames + 1, (b, self.k), generator=self.gen)  # (B, K)
        idx = (starts[..., None] + torch.arange(frames)).to(lm.device)  # (B, K, 200)
        rows = torch.arange(b, device=lm.device)[:, None, None]
        x = lm.permute(0, 2, 1, 3)[rows, idx]  # (B, K, 200, C, F)
        x = x.permute(0, 1, 3, 2, 4).reshape(b * self.k, lm.shape[1], frames, lm.shape[3])
        x = x[torch.randperm(b * self.k, generator=self.gen).to(lm.device)]
        mask = random_mask(b * self.k, self.cfg.n_tokens, self.cfg.n_masked, generator=self.gen)
        return x.contiguous(), mask.to(lm.device)

    # -- exact data position for --resume --------------------------------------------------------
    def state_dict(self) -> dict:
        scenes = self.workers.state_dict() if self.workers is not None else self.synth.rng.bit_generator.state
        state = {"scenes": scenes, "crops": self.gen.get_state(), "backend": self.synth.backend}
        if self.synth.user_stream is not None:
            state["clips"] = self.synth.user_stream.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        if self.workers is not None:
            self.workers.load_state_dict(state["scenes"])
        else:
            self.synth.rng.bit_generator.state = state["scenes"]
        if self.synth.user_stream is not None:
            self.synth.user_stream.load_state_dict(state["clips"])
        self.gen.set_state(state["crops"])

    def close(self) -> None:
        if self.workers is not None:
            self.workers.close()
        if self.synth.user_stream is not None:
            self.synth.user_stream.close()


def _scene_worker(synth, clips, state, out, stop):
    """Worker process: batches of `clips` scenes (CPU tensors) with the draw state after each batch."""
    torch.set_num_threads(1)
    out.cancel_join_thread()  # exit at stop even with unread batches in the queue
    synth.rng = np.random.default_rng()
    synth.rng.bit_generator.state = state
    while not stop.is_set():
        audio, _ = synth.sample(clips, meta=False)
        item = (audio, synth.rng.bit_generator.state)
        while not stop.is_set():
            try:
                out.put(item, timeout=0.5)
                break
            except queue.Full:
                pass


class SceneWorkers:
    """Background scene synthesis in `len(seeds)` processes, consumed round-robin in a fixed order, so the
    stream is deterministic and its position (each worker's state after its last consumed batch, and whose
    turn is next) restarts exactly.  Started lazily, at the first batch, from that position.

    Workers are forked (as torch's DataLoader does on Linux): they inherit the synthesizer with its BRIR bank
    and source pool, so they draw from exactly the sources of the parent, and they never touch CUDA."""

    def __init__(self, synth: SceneSynth, clips: int, seeds: list, prefetch: int = 2):
        assert synth.device.type == "cpu", "scene workers render on the CPU"
        self.synth, self.clips, self.prefetch = synth, clips, prefetch
        self.states = [np.random.default_rng(s).bit_generator.state for s in seeds]
        self.turn, self.procs = 0, None

    def _start(self):
        import torch.multiprocessing as mp

        ctx = mp.get_context("fork")
        self.stop = ctx.Event()
        self.queues = [ctx.Queue(self.prefetch) for _ in self.states]
        self.procs = [ctx.Process(target=_scene_worker, args=(self.synth, self.clips, st, q, self.stop), daemon=True)
                      for st, q in zip(self.states, self.queues)]
        for p in self.procs:
            p.start()

    def next(self) -> torch.Tensor:
        if self.procs is None:
            self._start()
        w = self.turn
        while True:
            try:
                audio, state = self.queues[w].get(timeout=10)
                break
            except queue.Empty:  # check the worker is alive, then wait on
                if not self.procs[w].is_alive():
                    raise RuntimeError(f"scene worker {w} died (exit code {self.procs[w].exitcode})") from None
        self.states[w], self.turn = state, (w + 1) % len(self.states)
        return audio.clone()  # own the memory: the worker's shared block is released

    def state_dict(self) -> dict:
        return {"workers": list(self.states), "turn": self.turn}

    def load_state_dict(self, state: dict) -> None:
        if len(state["workers"]) != len(self.states):
            raise ValueError(f"checkpoint has {len(state['workers'])} scene workers, this run {len(self.states)}")
        self.close()
        self.states, self.turn = list(state["workers"]), state["turn"]

    def close(self) -> None:
        if self.procs is None:
            return
        self.stop.set()  # workers notice within 0.5 s; queued batches are dropped with the queues
        for p in self.procs:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()
        for q in self.queues:
            q.close()
        self.procs = None
