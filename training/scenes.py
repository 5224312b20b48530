"""Naturalistic binaural scenes: dry source ⊛ BRIR + noise ⊛ BRIR(s) at an SNR (paper §3.1/§3.3, gram_spec §7).

Public API (stable; the pretraining loop and the Nat-HEAR builder use only this):

    from training.scenes import SceneConfig, SceneSynth

    cfg = SceneConfig.preset("smoke")             # training/presets/scene/<name>.py; or SceneConfig(...)
    synth = SceneSynth(cfg, seed=0, device="cpu", split="train",
                       backend="auto")            # "numpy": CPU numerics (scipy.fft); "torch": material and
                                                  # numerics on `device`, host draws only (scene_device.py);
                                                  # auto: numpy on a CPU or with user corpora, else torch
    audio, meta = synth.sample(batch_size)        # audio: (B, 2, 320000) float32 torch tensor on `device`,
                                                  # 10 s at 32 kHz, channel 0 = left ear; meta: list of B dicts

    # Nat-HEAR: spatialise a GIVEN mono clip in a held-out room (split="test" uses a disjoint seed namespace
    # and, for user BRIR folders, disjoint houses/rooms).
    test = SceneSynth(cfg, seed=0, split="test")
    audio, meta = test.spatialize(clip,            # (n,) float array / tensor at 32 kHz (any length)
                                  azimuth_deg=None, elevation_deg=None, distance_m=None,  # None = random
                                  snr_db=None,      # None = U[cfg.snr_db]; float('inf') = no noise
                                  rng=None,         # int / np.random.Generator for this clip (reproducible)
                                  normalize=True)   # RMS-normalise the dry clip to cfg.target_dbfs first
    # audio: (2, n) float32 tensor (same length as the clip); meta: one dict as below.

    synth.stats   # {"skipped_files": int, "sources": {kind: count}, "brirs": int, "bank_build_s": float,
                  #  "host_s": host seconds spent in sample() so far, ...}

Metadata dict (every scene): "azimuth_deg", "elevation_deg", "distance_m" of the target relative to the head,
"direction" (unit vector [x front, y left, z up] in head coordinates), "room_id", "room_dims_m", "rt60_s"
(Eyring RT60 of the room), "listener_pos_m", "head_yaw_deg", "snr_db", "noise_type", "noise_mode"
("localized" | "diffuse" | "none"), "n_noise", "noise_azimuths_deg", "source_kind", "source_ids", "split",
"noise_start"/"noise_length" (samples where the noise is active), "brir_source" ("ism" | path of a user
BRIR), "gain" (scene gain applied to stay below full scale).

Conventions: azimuth counter-clockwise from the front, +90 = LEFT ear, -90 = right ear (SOFA / MIT KEMAR);
elevation up; the KEMAR set covers elevation -40..+90 deg, so source elevations are drawn from
cfg.elevation_deg (default -40..+90). The dry source is RMS-normalised to -14 dBFS (spec §7.2); noise is cut
to 10 s with 200 ms linear fades and also set to -14 dBFS before mixing; the SNR gain b is one scalar for both
ears: b = sqrt(sum S^2 / sum N^2 * 10^(-snr/10)), energies summed over both ears where the noise is active.
The same noise clip passes through every noise BRIR (the official recipe), so N = (sum_i BRIR_i) ⊛ n.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .brir import BankSpec, BrirBank, UserBrirFolder, draw_noise_count, place_source, random_listener, \
    random_room, render_brir, render_noise_set, schroeder_rt60
from .config import dataclass_from_preset
from .hrir import ELEVATION_RANGE_DEG, load_kemar, unit_vector
from .mixing import convolve_numpy, fft_convolve, fft_convolve_torch, mix_numpy, mix_torch
from .noise import PROCEDURAL, Pending, draw_noise, render_pending
from .scene_device import DeviceMaterial
from .sources import FS, FolderSource, TarShardSource, cached_pool, rms_normalize

SPLITS = {"train": 0, "test": 1}  # seed namespaces: test rooms/placements never occur in training
BACKENDS = ("auto", "numpy", "torch")
_POOLS: dict = {}  # embedded source pools per ((sizes, seed), cache dir), shared within one process


@dataclass(frozen=True)
class SceneConfig:
    """Scene distribution. Defaults follow paper §3.1/§3.3 (RT60 0.2-0.5 s, source 1.5-5 m, SNR 5-40 dB,
    noise localized or diffuse from 3-5 positions) and spec §7.2 (-14 dBFS dry sources, 10 s at 32 kHz)."""
    sample_rate: int = FS
    duration_s: float = 10.0
    # rooms and BRIR bank (n_rooms x sets_per_room scene BRIR sets, built once per seed, cached on disk)
    n_rooms: int = 64
    sets_per_room: int = 16
    rt60_range: tuple = (0.2, 0.5)
    room_size_range: tuple = ((3.0, 10.0), (3.0, 8.0), (2.4, 4.0))
    distance_range: tuple = (1.5, 5.0)
    elevation_range: tuple = ELEVATION_RANGE_DEG  # what MIT KEMAR covers; lower elevations would snap to -40
    p_diffuse: float = 0.5
    n_diffuse: tuple = (3, 5)
    brir_length_s: float | None = None  # None: 1.5 x max RT60 (at least 0.3 s)
    cache_dir: str | None = "~/.cache/hear_gram/brir"  # also holds the embedded source pool; None: no disk cache
    # dry sources
    n_speech: int = 300
    n_notes: int = 500
    n_events: int = 200
    max_items_per_track: int = 3  # short embedded clips are chained (same kind, same position) into a track
    source_dirs: tuple = ()
    source_shards: tuple = ()  # webdataset tar shards (AudioSet-style 10 s clips)
    p_user_source: float = 0.8  # probability of a user clip when user corpora are given
    target_dbfs: float = -14.0
    # noise and mixing
    noise_types: tuple = PROCEDURAL
    noise_weights: tuple = (0.15, 0.3, 0.15, 0.4)
    noise_dirs: tuple = ()  # e.g. WHAMR! noise; used with probability p_user_noise
    p_user_noise: float = 0.8
    snr_db: tuple = (5.0, 40.0)
    # user BRIR folders (e.g. SoundSpaces 2.0 renders), split by house; replace the ISM bank when given
    brir_dirs: tuple = ()
    brir_test_fraction: float = 0.15
    peak: float = 0.99  # scenes louder than this are scaled down (recorded as meta["gain"])

    @classmethod
    def preset(cls, name: str, overrides: dict | None = None) -> "SceneConfig":
        """training/presets/scene/<name>.py (or a .py path) with field overrides (training/config.py);
        unknown fields are a ValueError naming them."""
        return dataclass_from_preset(cls, name, "scene", overrides)

    @property
    def n_samples(self) -> int:
        return int(round(self.duration_s * self.sample_rate))

    @property
    def bank_spec(self) -> BankSpec:
        length = self.brir_length_s or max(0.3, 1.5 * self.rt60_range[1])
        return BankSpec(self.n_rooms, self.sets_per_room, tuple(self.rt60_range),
                        tuple(map(tuple, self.room_size_range)), tuple(self.distance_range),
                        tuple(self.elevation_range), self.p_diffuse, tuple(self.n_diffuse), float(length))


class SceneSynth:
    """Seeded synthesizer of binaural scenes; see the module docstring for the API and metadata."""

    def __init__(self, config: SceneConfig | str = "smoke", seed: int = 0, device="cpu", split: str = "train",
                 backend: str = "auto"):
        if isinstance(config, str):
            config = SceneConfig.preset(config)
        if split not in SPLITS:
            raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
        assert config.sample_rate == FS, "the HRIR set and the pipeline are fixed at 32 kHz"
        self.cfg, self.split, self.device = config, split, torch.device(device)
        root = np.random.SeedSequence([seed, SPLITS[split]])
        bank_ss, pool_ss, draw_ss = root.spawn(3)
        self._room_seeds = bank_ss.spawn(config.n_rooms)  # same children BrirBank.build uses
        self.rng = np.random.default_rng(draw_ss)
        self.hr = load_kemar()
        # host_s: seconds of host work in sample() so far (the draws; with the numpy backend, everything)
        self.stats = {"skipped_files": 0, "sources": {}, "brirs": 0, "bank_build_s": 0.0, "host_s": 0.0}

        self.user_brirs = None
        for d in config.brir_dirs:  # only the first folder with files for this split is used
            ub = UserBrirFolder(d, split, config.sample_rate, config.brir_test_fraction)
            if len(ub):
                self.user_brirs = ub
                break
        self.bank = None
        if self.user_brirs is None:
            t0 = time.perf_counter()
            cache = str(Path(config.cache_dir).expanduser()) if config.cache_dir else None
            self.bank = BrirBank.build(config.bank_spec, bank_ss, split, self.hr, cache)
            self.stats["bank_build_s"] = self.bank.build_s
            self.stats["bank_load_s"] = time.perf_counter() - t0
            self.stats["brirs"] = sum(1 + m["n_noise"] for m in self.bank.meta)
            self._bank_np = (self.bank.target.numpy(), self.bank.noise.numpy())  # float16 (S, 2, L)

        # Memoised per process (libespeak-ng output is not always bit-identical between calls) and, with a
        # cache_dir, on disk (nor between processes: --resume, DDP ranks); see sources.cached_pool.
        pool_dir = str(Path(config.cache_dir).expanduser()) if config.cache_dir else None
        key = (config.n_speech, config.n_notes, config.n_events, str(pool_ss.entropy), tuple(pool_ss.spawn_key))
        if (key, pool_dir) not in _POOLS:
            _POOLS[key, pool_dir] = cached_pool(config.n_speech, config.n_notes, config.n_events, pool_ss,
                                                pool_dir, generated=_POOLS.get((key, None)))
        self.pool = _POOLS[key, pool_dir]
        self._norm_cache, self._babble = {}, None
        self.user_sources = [s for s in (FolderSource(config.source_dirs) if config.source_dirs else None,
                                         TarShardSource(config.source_shards) if config.source_shards else None)
                             if s is not None and len(s)]
        self.noise_folder = FolderSource(config.noise_dirs, "noise") if config.noise_dirs else None
        self.stats["sources"] = {k: len(v) for k, v in self.pool.items()}
        if not self.pool and not self.user_sources:
            raise RuntimeError("no dry sources available (embedded generators disabled and no user corpora)")
        self.backend = self.resolve_backend(config, self.device, backend)
        if self.backend == "torch" and (self.noise_folder is not None or self.user_brirs is not None):
            raise ValueError("backend='torch' streams dry-source corpora (source_dirs, source_shards) but not "
                             "noise_dirs or brir_dirs: use backend='numpy' for those")
        self.material = DeviceMaterial(self, self.device) if self.backend == "torch" else None
        self.user_stream = None
        if self.material is not None and self.user_sources:
            self.stream_user_clips(np.random.SeedSequence([seed, SPLITS[split], 11]))

    @staticmethod
    def resolve_backend(config: SceneConfig, device, backend: str = "auto") -> str:
        """"auto" -> "numpy" on a CPU (measured faster there, benchmarks/train_step.py) or with noise/BRIR folders,
        else "torch"."""
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if backend == "auto":
            host_only = bool(config.noise_dirs or config.brir_dirs)
            return "numpy" if torch.device(device).type == "cpu" or host_only else "torch"
        return backend

    def stream_user_clips(self, seed: np.random.SeedSequence, workers: int = 0) -> None:
        """(torch backend with source_dirs / source_shards) decode the user clips in `workers` DataLoader
        processes from the stream `seed` (training/streaming.py); CropStream gives each rank its own."""
        from .streaming import DryClipStream

        if self.user_stream is not None:
            self.user_stream.close()
        self.user_stream = DryClipStream(self.user_sources, self.cfg.n_samples, self.cfg.target_dbfs, seed, 0,
                                         workers, pin=self.device.type == "cuda")

    # ------------------------------------------------------------ drawing the ingredients
    def _skipped(self) -> int:
        parts = self.user_sources + [s for s in (self.noise_folder, self.user_brirs) if s is not None]
        return sum(s.skipped for s in parts)

    def _pool_clip(self, kind: str, i: int, n: int) -> np.ndarray:
        """Pool clip i of `kind`, cut to n and RMS-normalised to target_dbfs; memoised, because the same few
        hundred clips are drawn over and over (rms_normalize is a pure function of the clip)."""
        key = (kind, i, n)
        x = self._norm_cache.get(key)
        if x is None:
            x = self._norm_cache[key] = rms_normalize(self.pool[kind][i][1][:n], self.cfg.target_dbfs)
        return x

    def _babble_speech(self):
        """The speech pool at -14 dBFS (what babble() normalises each utterance to), computed once."""
        if self._babble is None and self.pool.get("speech"):
            self._babble = [(name, rms_normalize(x)) for name, x in self.pool["speech"]]
        return self._babble

    def _track(self, rng: np.random.Generator, n: int, out: np.ndarray | None = None):
        """Dry target track (n,) at target_dbfs per item, its kind and item ids (written into `out`, a zeroed
        (n,) float32 buffer, when given)."""
        out = np.zeros(n, np.float32) if out is None else out
        if self.user_sources and (not self.pool or rng.random() < self.cfg.p_user_source):
            src = self.user_sources[int(rng.integers(len(self.user_sources)))]
            got = src.draw(rng)
            if got is not None:
                name, x = got
                x = rms_normalize(x[:n], self.cfg.target_dbfs)
                s = int(rng.integers(0, n - len(x) + 1))
                out[s: s + len(x)] = x
                return out, src.kind, [name]
            if not self.pool:
                raise RuntimeError("user corpora yielded no readable clip")
        kinds = sorted(self.pool)
        kind = kinds[int(rng.integers(len(kinds)))]
        clips = self.pool[kind]
        ids, pos = [], None
        for _ in range(int(rng.integers(1, self.cfg.max_items_per_track + 1))):
            j = int(rng.integers(len(clips)))
            name, x = clips[j][0], self._pool_clip(kind, j, n)
            if pos is None:
                pos = int(rng.integers(0, max(1, n - len(x) + 1)))
            if pos >= n:
                break
            seg = x[: n - pos]
            out[pos: pos + len(seg)] = seg
            ids.append(name)
            pos += len(x) + int(rng.integers(self.cfg.sample_rate // 10, self.cfg.sample_rate))
        return out, kind, ids

    def _draw_noise(self, rng: np.random.Generator, n: int):
        """(noise, start, length, type); noise is a finished (n,) array at target_dbfs or a `Pending` procedural
        clip (rendered batch-wise by render_pending)."""
        if self.noise_folder is not None and len(self.noise_folder) and rng.random() < self.cfg.p_user_noise:
            kind = "folder"
        else:
            w = np.asarray(self.cfg.noise_weights, float)
            kind = self.cfg.noise_types[int(rng.choice(len(w), p=w / w.sum()))]
        noise, start, length, kind = draw_noise(rng, n, kind, self._babble_speech(), self.noise_folder,
                                                normalized_speech=True)
        return self._level(noise), start, length, kind

    def _level(self, noise):
        """Noise clips come at -14 dBFS; rescale only for another target level."""
        if isinstance(noise, Pending) or self.cfg.target_dbfs == -14.0:
            return noise
        return rms_normalize(noise, self.cfg.target_dbfs)

    def _noise(self, rng: np.random.Generator, n: int):
        """Like _draw_noise, rendered: (noise (n,) float32 array, start, length, type)."""
        noise, start, length, kind = self._draw_noise(rng, n)
        if isinstance(noise, Pending):
            noise = self._level(render_pending([noise])[0])
        return noise, start, length, kind

    def _user_brir_set(self, rng):
        """(target (2, L), summed noise (2, L), meta) from the user BRIR folder, padded to a common length."""
        diffuse, k = draw_noise_count(rng, self.cfg.p_diffuse, self.cfg.n_diffuse)
        got = self.user_brirs.draw(rng, k)
        if got is None:
            raise RuntimeError(f"no readable BRIRs under {self.user_brirs.root}")
        tgt, noises, meta = got
        L = max(x.shape[1] for x in [tgt] + noises)
        pad = lambda x: np.pad(x, ((0, 0), (0, L - x.shape[1])))  # noqa: E731
        acc = sum(pad(x) for x in noises)
        if meta["rt60_s"] is None:
            meta["rt60_s"] = schroeder_rt60(tgt, self.cfg.sample_rate)
        d = meta["azimuth_deg"], meta["elevation_deg"]
        meta.update(noise_mode="diffuse" if diffuse else "localized", n_noise=k, noise_azimuths_deg=None,
                    direction=None if None in d else unit_vector(*d).tolist())
        return pad(tgt), acc, meta

    # ------------------------------------------------------------ public
    @torch.no_grad()
    def sample(self, batch_size: int, return_parts: bool = False, meta: bool = True):
        """(audio (B, 2, n) float32 on self.device, [meta dict] * B (None with meta=False)); with return_parts,
        also the reverberant target S and the scaled noise b·N (each (B, 2, n)), so that audio = S + b·N.

        numpy backend: all random draws first, scene by scene in a fixed order (so a seed fixes the batch), then
        batch-wise numerics on the CPU (one FFT for all procedural noise, one overlap-save convolution of every
        target and noise with its BRIR, per-scene mixing). torch backend: host draws of the whole batch, then
        everything numeric on the device (training/scene_device.py). meta=False skips the metadata (and, on the
        torch backend, the device sync that reading the gains back would cost)."""
        t0 = time.perf_counter()
        if self.material is not None:
            clips = user = None
            if self.user_stream is not None:
                clips, lengths, names = self.user_stream.next(batch_size)
                user = (lengths.numpy(), names)
            plan = self.material.draw(self.rng, batch_size, user)
            self.stats["host_s"] += time.perf_counter() - t0
            audio, parts, gains = self.material.render(plan, return_parts, clips)
            metas = self._plan_meta(plan, gains.tolist()) if meta else None
        else:
            audio, parts, metas = self._sample_numpy(batch_size, return_parts)
            self.stats["host_s"] += time.perf_counter() - t0
            audio = audio.to(self.device)
            parts = tuple(p.to(self.device) for p in parts) if return_parts else None
        self.stats["skipped_files"] = self._skipped()
        return (audio, metas, parts) if return_parts else (audio, metas)

    def _plan_meta(self, plan, gains) -> list:
        n = self.cfg.n_samples
        metas, user = [], set() if plan.user_rows is None else set(plan.user_rows.tolist())
        for i, j in enumerate(plan.set_index):
            m = dict(self.bank.meta[int(j)])
            kind = plan.source_kind[i]
            m.update(split=self.split, source_kind=kind,
                     source_ids=plan.source_items[i] if i in user else [self.pool[kind][k][0]
                                                                        for k in plan.source_items[i]],
                     noise_type=plan.noise_type[i], snr_db=float(plan.snr_db[i]), noise_start=0, noise_length=n,
                     gain=gains[i])
            metas.append(m)
        return metas

    def _sample_numpy(self, B: int, return_parts: bool):
        cfg, rng, n = self.cfg, self.rng, self.cfg.n_samples
        xs = np.zeros((2 * B, n), np.float32)  # rows: B dry targets, then B noises
        pending, windows, snr, metas, ht, hn = [], [], [], [], [], []
        for i in range(B):
            if self.bank is not None:
                j = int(rng.integers(len(self.bank)))
                meta = dict(self.bank.meta[j])
            else:
                t, nsum, meta = self._user_brir_set(rng)
                ht.append(t)
                hn.append(nsum.astype(np.float32))
            _, kind, ids = self._track(rng, n, out=xs[i])
            nz, start, length, ntype = self._draw_noise(rng, n)
            if isinstance(nz, Pending):
                pending.append((B + i, nz))
            else:
                xs[B + i] = nz
            s_db = float(rng.uniform(*cfg.snr_db))
            windows.append((start, length)), snr.append(s_db)
            meta.update(split=self.split, source_kind=kind, source_ids=ids, noise_type=ntype, snr_db=s_db,
                        noise_start=start, noise_length=length)
            metas.append(meta)
        if self.bank is not None:
            idx = np.array([m["set_index"] for m in metas])
            h = np.concatenate([self._bank_np[0][idx], self._bank_np[1][idx]])  # float16 -> float32 below
        else:
            L = max(x.shape[-1] for x in ht)
            h = np.stack([np.pad(x, ((0, 0), (0, L - x.shape[-1]))) for x in ht + hn])
        for (row, _), x in zip(pending, render_pending([p for _, p in pending])):
            xs[row] = x
        y = convolve_numpy(xs, h.astype(np.float32), n)  # (2B, 2, n)
        audio, parts, gains = mix_numpy(y[:B], y[B:], snr, cfg.peak, windows, return_parts)
        for m, g in zip(metas, gains):
            m["gain"] = g
        return torch.from_numpy(audio), (tuple(map(torch.from_numpy, parts)) if return_parts else None), metas

    @torch.no_grad()
    def spatialize(self, clip, azimuth_deg=None, elevation_deg=None, distance_m=None, snr_db=None, rng=None,
                   normalize: bool = True, return_parts: bool = False):
        """Render a given mono clip in a random room of this split (rendered fresh with the ISM renderer, so
        any direction works): returns (audio (2, n) float32 on self.device, meta). snr_db=inf: no noise."""
        cfg = self.cfg
        rng = rng if isinstance(rng, np.random.Generator) else (
            self.rng if rng is None else np.random.default_rng([int(rng), SPLITS[self.split], 7]))
        x = clip.detach().cpu().numpy() if torch.is_tensor(clip) else np.asarray(clip)
        x = np.asarray(x, np.float32).reshape(-1)
        if normalize:
            x = rms_normalize(x, cfg.target_dbfs)
        n = len(x)
        r = int(rng.integers(cfg.n_rooms))
        room = random_room(np.random.default_rng(self._room_seeds[r]), f"{self.split}-{r}", cfg.rt60_range,
                           cfg.room_size_range)
        spec = cfg.bank_spec
        head, yaw = random_listener(rng, room)
        pos, az, el, dist = place_source(rng, room, head, yaw, spec.distance_range, spec.elevation_range,
                                         azimuth_deg, elevation_deg, distance_m)
        h_t = render_brir(self.hr, room.dims, room.absorption, head, yaw, pos, spec.length_s, rng)
        snr = float(rng.uniform(*cfg.snr_db)) if snr_db is None else float(snr_db)
        meta = dict(split=self.split, room_id=room.room_id, room_dims_m=list(room.dims), rt60_s=room.rt60,
                    absorption=room.absorption, listener_pos_m=head.tolist(), head_yaw_deg=yaw, azimuth_deg=az,
                    elevation_deg=el, distance_m=dist, direction=unit_vector(az, el).tolist(), brir_source="ism",
                    snr_db=snr, source_kind="given", source_ids=[])
        if np.isfinite(snr):
            h_n, diffuse, k, noise_az = render_noise_set(self.hr, rng, room, head, yaw, spec.length_s, cfg.p_diffuse,
                                                         cfg.n_diffuse)
            nz, start, length, ntype = self._noise(rng, n)
            meta.update(noise_mode="diffuse" if diffuse else "localized", n_noise=k, noise_azimuths_deg=noise_az,
                        noise_type=ntype, noise_start=start, noise_length=length)
        else:  # a zero noise row: the mixers' SNR gain is then 0
            h_n, nz, start, length = np.zeros_like(h_t), np.zeros(n, np.float32), 0, n
            meta.update(noise_mode="none", n_noise=0, noise_azimuths_deg=[], noise_type="none")
        xs, hs = np.stack([x, np.asarray(nz, np.float32)]), np.stack([h_t, h_n])
        if self.backend == "numpy":
            y = convolve_numpy(xs, hs, n)
            audio, parts, gains = mix_numpy(y[:1], y[1:], [snr], cfg.peak, [(start, length)], return_parts)
            audio, parts = torch.from_numpy(audio), (tuple(map(torch.from_numpy, parts)) if parts else None)
        else:
            dev = self.device
            y = fft_convolve_torch(torch.from_numpy(xs).to(dev), torch.from_numpy(hs).to(dev), n)
            active = torch.zeros(1, n, dtype=torch.bool, device=dev)
            active[:, start: start + length] = True
            audio, parts, gains = mix_torch(y[:1], y[1:], torch.tensor([snr], device=dev), cfg.peak, active,
                                            return_parts)
            gains = gains.tolist()
        meta["gain"] = float(gains[0])
        out = (audio[0].to(self.device), meta)
        return out + ((parts[0][0].to(self.device), parts[1][0].to(self.device)),) if return_parts else out


__all__ = ["BACKENDS", "SceneConfig", "SceneSynth", "fft_convolve"]
