"""Binaural room impulse responses: shoebox image-source renderer with KEMAR HRIRs, a diffuse late tail,
a cached bank of scene BRIR sets, and a reader for user BRIR folders (e.g. SoundSpaces renders).

Renderer (data.md §1.4, "hybrid"): image sources up to `t_ism` (250 ms) each carry the nearest KEMAR HRIR
(exact 710-direction set for the first 50 ms, 72 coarse directions later); after that, every coarse direction
gets decaying Gaussian noise at the room's Eyring RT60, energy-matched to the ISM part and cross-faded over
30 ms. Absorption is frequency independent; delays are whole samples (the ITD comes from the HRIRs).
Coordinates: metres, z up, head yaw counter-clockwise from +x; directions as in `training.hrir`.
Output BRIRs are (2, n) float32 at 32 kHz, ear 0 = left.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import scipy.fft as sfft

from hear_gram.audio import AUDIO_EXTENSIONS
from hear_gram.outputs import atomic_path

from .hrir import ELEVATION_RANGE_DEG, Hrir, load_kemar, unit_vector
from .sources import FS, resample

C = 343.0  # speed of sound, m/s
BANK_VERSION = 1  # bump when rendering changes, so stale caches are not reused
log = logging.getLogger(__name__)


# ---------------------------------------------------------------- acoustics helpers

def eyring_rt60(dims, absorption: float) -> float:
    """Eyring RT60 (s) of a shoebox with one (energy) absorption coefficient on all walls."""
    lx, ly, lz = dims
    v, s = lx * ly * lz, 2 * (lx * ly + lx * lz + ly * lz)
    return float(0.161 * v / (-s * np.log(1 - absorption)))


def absorption_for_rt60(dims, rt60: float) -> float:
    """Inverse of `eyring_rt60`, clipped to [0.02, 0.95]."""
    lx, ly, lz = dims
    v, s = lx * ly * lz, 2 * (lx * ly + lx * lz + ly * lz)
    return float(np.clip(1 - np.exp(-0.161 * v / (s * rt60)), 0.02, 0.95))


def schroeder_rt60(h: np.ndarray, fs: int, decay_db: float = 20.0) -> float:
    """RT60 from the Schroeder energy decay curve (T20 by default: -5 to -25 dB), both ears summed."""
    e = (np.atleast_2d(np.asarray(h, np.float64)) ** 2).sum(0)
    edc = np.cumsum(e[::-1])[::-1]
    edc = 10 * np.log10(edc / edc[0] + 1e-30)
    i0, i1 = int(np.argmax(edc <= -5)), int(np.argmax(edc <= -5 - decay_db))
    return (i1 - i0) / fs * 60.0 / decay_db


# ---------------------------------------------------------------- image sources and rendering

def image_sources(dims, src, absorption: float, max_dist: float, jitter: float = 0.0, rng=None):
    """Shoebox image sources within max_dist of src: positions (K, 3) and amplitude gains (K,).

    Each reflection multiplies the amplitude by sqrt(1 - absorption). With jitter > 0, reflected images move
    by U[-jitter, jitter] m per axis (randomised ISM, against sweeping echoes); the direct path stays exact.
    """
    beta = np.sqrt(1.0 - absorption)
    axes = []
    for k in range(3):
        L, s = dims[k], src[k]
        m = np.arange(-(int(max_dist / (2 * L)) + 1), int(max_dist / (2 * L)) + 2)
        pos = np.concatenate([s + 2 * m * L, -s + 2 * m * L])  # even and odd images along this axis
        order = np.concatenate([2 * np.abs(m), np.abs(m - 1) + np.abs(m)])
        axes.append((pos, order))
    (px, ox), (py, oy), (pz, oz) = axes
    dyz2 = (py[:, None] - src[1]) ** 2 + (pz[None, :] - src[2]) ** 2  # (Ny, Nz)
    pos_list, ord_list = [], []
    for x, o in zip(px, ox):
        iy, iz = np.nonzero((x - src[0]) ** 2 + dyz2 <= max_dist ** 2)
        if len(iy):
            pos_list.append(np.stack([np.full(len(iy), x), py[iy], pz[iz]], 1))
            ord_list.append(o + oy[iy] + oz[iz])
    pos, order = np.concatenate(pos_list), np.concatenate(ord_list)
    if jitter > 0:
        rng = rng if rng is not None else np.random.default_rng()
        pos = pos + (order > 0)[:, None] * rng.uniform(-jitter, jitter, pos.shape)
    return pos, beta ** order


def _to_head(v: np.ndarray, yaw_deg: float):
    """World offsets (K, 3) -> head-relative (azimuth deg, elevation deg, distance m)."""
    c, s = np.cos(np.deg2rad(yaw_deg)), np.sin(np.deg2rad(yaw_deg))
    x, y = c * v[:, 0] + s * v[:, 1], -s * v[:, 0] + c * v[:, 1]
    d = np.linalg.norm(v, axis=1)
    return np.rad2deg(np.arctan2(y, x)), np.rad2deg(np.arcsin(np.clip(v[:, 2] / np.maximum(d, 1e-9), -1, 1))), d


def _filter_trains(hr: Hrir, idx, t, g, n: int, coarse: bool) -> np.ndarray:
    """Sum over directions of (impulse train of that direction) ⊛ HRIR: (2, n + taps - 1)."""
    used, inv = np.unique(idx, return_inverse=True)
    trains = np.bincount(inv * n + t, weights=g, minlength=len(used) * n).reshape(len(used), n)
    nfft = sfft.next_fast_len(n + hr.taps - 1, real=True)
    spec = hr.spectra(nfft, coarse)
    spec = spec[np.searchsorted(hr.coarse, used)] if coarse else spec[used]
    y = np.einsum("uf,ucf->cf", sfft.rfft(trains.astype(np.float32), nfft, axis=1), spec, optimize=True)
    return sfft.irfft(y, nfft, axis=-1)[:, : n + hr.taps - 1]


def render_ism(hr: Hrir, dims, absorption, head, yaw_deg, src, length_s, rng=None, jitter=0.05, early_ms=50.0):
    """Image-source BRIR (2, n) float32 truncated to length_s, and the number of images."""
    fs, n = hr.fs, int(round(length_s * hr.fs))
    n_early = int(early_ms * 1e-3 * fs)
    pos, amp = image_sources(np.asarray(dims, float), np.asarray(src, float), absorption, C * length_s, jitter, rng)
    az, el, d = _to_head(pos - np.asarray(head, float), yaw_deg)
    t = np.rint(d / C * fs).astype(np.int64)
    g = amp / np.maximum(d, 0.1)  # spherical spreading
    out = np.zeros((2, n + hr.taps), np.float64)
    for coarse, m in ((False, t < n_early), (True, (t >= n_early) & (t < n))):
        if m.any():
            span = n_early if not coarse else n
            y = _filter_trains(hr, hr.index(az[m], el[m], coarse), t[m], g[m], span, coarse)
            out[:, : y.shape[1]] += y
    return out[:, :n].astype(np.float32), len(pos)


def render_brir(hr: Hrir, dims, absorption, head, yaw_deg, src, length_s, rng=None, t_ism=0.25, xfade_s=0.03):
    """Hybrid BRIR (2, n) float32: ISM up to t_ism, then an HRIR-filtered exponential noise tail."""
    rng = rng if rng is not None else np.random.default_rng()
    if length_s <= t_ism + xfade_s:
        return render_ism(hr, dims, absorption, head, yaw_deg, src, length_s, rng)[0]
    fs = hr.fs
    rt60 = eyring_rt60(dims, absorption)
    n, n_ism, w = int(round(length_s * fs)), int(t_ism * fs), int(xfade_s * fs)
    h, _ = render_ism(hr, dims, absorption, head, yaw_deg, src, t_ism, rng)
    m = n - n_ism + w
    env = np.exp(-3 * np.log(10) * np.arange(m) / fs / rt60)
    noise = (rng.standard_normal((len(hr.coarse), m)) * env).astype(np.float32)
    nfft = sfft.next_fast_len(m + hr.taps - 1, real=True)
    tail = sfft.irfft(np.einsum("uf,ucf->cf", sfft.rfft(noise, nfft, axis=1), hr.spectra(nfft, True),
                                optimize=True), nfft, axis=-1)[:, :m]
    tail *= np.sqrt((h[:, n_ism - w:] ** 2).sum() / ((tail[:, :w] ** 2).sum() + 1e-20))
    ramp = np.linspace(0.0, 1.0, w, dtype=np.float32)
    out = np.zeros((2, n), np.float32)
    out[:, :n_ism] = h
    out[:, n_ism - w:n_ism] *= 1 - ramp
    tail[:, :w] *= ramp
    out[:, n_ism - w:] += tail
    return out


# ---------------------------------------------------------------- random geometry

@dataclass(frozen=True)
class Room:
    room_id: str
    dims: tuple
    absorption: float
    rt60: float


def random_room(rng: np.random.Generator, room_id: str, rt60_range, size_range) -> Room:
    """Shoebox with dims ~ U[size_range] (((x0, x1), (y0, y1), (z0, z1)) m) and RT60 ~ U[rt60_range]."""
    dims = tuple(float(rng.uniform(lo, hi)) for lo, hi in size_range)
    a = absorption_for_rt60(dims, float(rng.uniform(*rt60_range)))
    return Room(room_id, dims, a, eyring_rt60(dims, a))


def random_listener(rng: np.random.Generator, room: Room, margin: float = 0.5):
    """Head position (3,) at least `margin` m from the walls, height 1.2-1.8 m, and yaw ~ U[0, 360)."""
    x, y = (float(rng.uniform(margin, L - margin)) for L in room.dims[:2])
    z = float(min(rng.uniform(1.2, 1.8), room.dims[2] - 0.3))
    return np.array([x, y, z]), float(rng.uniform(0.0, 360.0))


def _ray_length(room: Room, head, direction, margin: float) -> float:
    """Distance from head along a world-frame unit direction to `margin` m inside the walls."""
    best = np.inf
    for k in range(3):
        if abs(direction[k]) > 1e-9:
            wall = room.dims[k] - margin if direction[k] > 0 else margin
            best = min(best, (wall - head[k]) / direction[k])
    return max(float(best), 0.0)


def place_source(rng, room: Room, head, yaw_deg, distance_range, elevation_range,
                 az=None, el=None, dist=None, margin: float = 0.2, tries: int = 200):
    """Source position for a head-relative direction; None arguments are drawn (azimuth uniform, elevation
    uniform on the sphere within elevation_range, distance uniform). A direction that does not fit at the
    requested distance is redrawn (if random) or moved closer (if given). Returns (pos, az, el, dist)."""
    for i in range(tries):
        a = float(rng.uniform(-180.0, 180.0)) if az is None else float(az)
        if el is None:
            s0, s1 = np.sin(np.deg2rad(elevation_range))
            e = float(np.rad2deg(np.arcsin(rng.uniform(s0, s1))))
        else:
            e = float(el)
        world = unit_vector(a + yaw_deg, e)
        reach = _ray_length(room, head, world, margin)
        d = float(rng.uniform(*distance_range)) if dist is None else float(dist)
        if d <= reach:
            return head + d * world, a, e, d
        if (az is not None and el is not None) or i == tries - 1:
            d = max(min(d, reach), 0.3)
            return head + d * world, a, e, d
    raise AssertionError("unreachable")


def random_noise_position(rng, room: Room, head, min_dist: float = 0.5, margin: float = 0.3):
    """Uniform position in the room, at least min_dist from the head."""
    while True:
        p = np.array([rng.uniform(margin, L - margin) for L in room.dims])
        if np.linalg.norm(p - head) >= min_dist:
            return p


def draw_noise_count(rng: np.random.Generator, p_diffuse: float, n_diffuse) -> tuple:
    """(diffuse, k): diffuse noise from k ~ U{n_diffuse} positions with probability p_diffuse, else one."""
    diffuse = rng.random() < p_diffuse
    return diffuse, (int(rng.integers(n_diffuse[0], n_diffuse[1] + 1)) if diffuse else 1)


def render_noise_set(hr: Hrir, rng: np.random.Generator, room: Room, head, yaw_deg: float, length_s: float,
                     p_diffuse: float, n_diffuse) -> tuple:
    """The noise side of a scene BRIR set (used by the bank and by SceneSynth.spatialize): draws
    localized/diffuse and k noise positions, renders their BRIRs and sums them (the same noise clip passes
    through every one). Returns (h (2, n) float32, diffuse, k, [azimuth deg of each position])."""
    diffuse, k = draw_noise_count(rng, p_diffuse, n_diffuse)
    acc, azimuths = np.zeros((2, int(round(length_s * hr.fs))), np.float32), []
    for _ in range(k):
        p = random_noise_position(rng, room, head)
        acc += render_brir(hr, room.dims, room.absorption, head, yaw_deg, p, length_s, rng)
        azimuths.append(float(_to_head((p - head)[None], yaw_deg)[0][0]))
    return acc, diffuse, k, azimuths


# ---------------------------------------------------------------- bank of scene BRIR sets

@dataclass(frozen=True)
class BankSpec:
    """What determines a bank (its cache key)."""
    n_rooms: int
    sets_per_room: int
    rt60_range: tuple
    room_size_range: tuple
    distance_range: tuple
    elevation_range: tuple
    p_diffuse: float
    n_diffuse: tuple
    length_s: float


class BrirBank:
    """Scene BRIR sets: target BRIRs (S, 2, L) and summed noise BRIRs (S, 2, L) as float16 torch tensors, and
    per-set metadata. Sets come from `spec.n_rooms` random rooms x `spec.sets_per_room` listener placements."""

    def __init__(self, target, noise, meta, build_s: float = 0.0):
        import torch
        self.target = torch.as_tensor(target)
        self.noise = torch.as_tensor(noise)
        self.meta = meta
        self.build_s = build_s

    def __len__(self) -> int:
        return len(self.meta)

    @classmethod
    def build(cls, spec: BankSpec, seed_seq: np.random.SeedSequence, split: str, hr: Hrir | None = None,
              cache_dir: str | Path | None = None) -> "BrirBank":
        hr = hr or load_kemar()
        key = hashlib.sha1(json.dumps([BANK_VERSION, asdict(spec), seed_seq.entropy, list(seed_seq.spawn_key),
                                       split], default=str).encode()).hexdigest()[:16]
        path = Path(cache_dir) / f"brirbank_{split}_{key}.npz" if cache_dir else None
        if path is not None and path.exists():
            z = np.load(path, allow_pickle=False)
            return cls(z["target"], z["noise"], json.loads(str(z["meta"])), float(z["build_s"]))
        t0 = time.perf_counter()
        n = int(round(spec.length_s * hr.fs))
        S = spec.n_rooms * spec.sets_per_room
        target = np.zeros((S, 2, n), np.float16)
        noise = np.zeros((S, 2, n), np.float16)
        meta = []
        for r, rs in enumerate(seed_seq.spawn(spec.n_rooms)):
            rng = np.random.default_rng(rs)
            room = random_room(rng, f"{split}-{r}", spec.rt60_range, spec.room_size_range)
            for j in range(spec.sets_per_room):
                head, yaw = random_listener(rng, room)
                pos, az, el, dist = place_source(rng, room, head, yaw, spec.distance_range, spec.elevation_range)
                i = r * spec.sets_per_room + j
                target[i] = render_brir(hr, room.dims, room.absorption, head, yaw, pos, spec.length_s, rng)
                noise[i], diffuse, k, noise_az = render_noise_set(hr, rng, room, head, yaw, spec.length_s,
                                                                  spec.p_diffuse, spec.n_diffuse)
                noise_az = [round(a, 2) for a in noise_az]
                meta.append(dict(set_index=i, room_id=room.room_id, room_dims_m=list(room.dims),
                                 rt60_s=room.rt60, absorption=room.absorption, listener_pos_m=head.tolist(),
                                 head_yaw_deg=yaw, azimuth_deg=az, elevation_deg=el, distance_m=dist,
                                 direction=unit_vector(az, el).tolist(),
                                 noise_mode="diffuse" if diffuse else "localized", n_noise=k,
                                 noise_azimuths_deg=noise_az, brir_source="ism"))
        build_s = time.perf_counter() - t0
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path, suffix=".npz") as tmp:
                np.savez(tmp, target=target, noise=noise, meta=json.dumps(meta), build_s=build_s)
        return cls(target, noise, meta, build_s)


# ---------------------------------------------------------------- user BRIR folders

AUDIO_EXT = (*AUDIO_EXTENSIONS, ".npy")  # BRIR files: audio, or (2, n) arrays at 32 kHz


def split_of_group(group: str, test_fraction: float) -> str:
    """Stable train/test assignment of a house/room name (hash based, independent of listing order)."""
    h = int(hashlib.sha1(group.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if h < test_fraction else "train"


class UserBrirFolder:
    """Binaural RIR files under `root` (wav/flac/ogg/npy, 2 channels), grouped by house = the first folder
    below root (SoundSpaces layout `<root>/<house>/.../<receiver>_<source>.wav`). Houses are split between
    train and test by `split_of_group`. A sidecar `<file>.json` with azimuth_deg/elevation_deg/distance_m
    supplies the direction; otherwise those fields are None. Noise BRIRs are other files of the same house.
    Unreadable files and files that are not 2-channel are skipped and counted in `skipped`."""

    def __init__(self, root, split: str, fs: int = FS, test_fraction: float = 0.15, max_len_s: float = 3.0):
        self.root, self.fs, self.max_len = Path(root), fs, int(max_len_s * fs)
        self.skipped = 0
        self.by_house: dict[str, list[Path]] = {}
        for p in sorted(self.root.rglob("*")):
            if p.suffix.lower() in AUDIO_EXT and p.is_file():
                rel = p.relative_to(self.root).parts
                house = rel[0] if len(rel) > 1 else "_"
                if split_of_group(house, test_fraction) == split:
                    self.by_house.setdefault(house, []).append(p)
        self.houses = sorted(self.by_house)

    def __len__(self) -> int:
        return sum(len(v) for v in self.by_house.values())

    def load(self, path: Path):
        """(2, n) float32 at self.fs, or None (counted) if unreadable / not binaural / silent."""
        try:
            if path.suffix.lower() == ".npy":
                x, sr = np.load(path).astype(np.float32), self.fs
            else:
                import soundfile as sf
                x, sr = sf.read(str(path), dtype="float32", always_2d=True)
                x = x.T
        except Exception as e:  # any decoder failure means "skip this file", by design
            log.debug("skipping BRIR %s: %s", path, e)
            self.skipped += 1
            return None
        if x.ndim != 2 or x.shape[0] != 2 or not np.any(x):
            self.skipped += 1
            return None
        return resample(x, sr, self.fs)[:, : self.max_len]

    def draw(self, rng: np.random.Generator, n_noise: int):
        """(target (2, n), [noise (2, n), ...], meta) from one random house; None if nothing readable.
        Unreadable files are dropped from the listing (counted once)."""
        while self.houses:
            house = self.houses[int(rng.integers(len(self.houses)))]
            files = self.by_house[house]
            loaded = []
            for i in rng.integers(len(files), size=1 + n_noise):
                p = files[min(int(i), len(files) - 1)] if files else None
                x = self.load(p) if p is not None else None
                while x is None and files:
                    if p in files:
                        files.remove(p)
                    p = files[int(rng.integers(len(files)))] if files else None
                    x = self.load(p) if p is not None else None
                if x is None:
                    break
                loaded.append((p, x))
            if len(loaded) < 1 + n_noise:
                self.houses.remove(house)
                continue
            side = loaded[0][0].with_suffix(loaded[0][0].suffix + ".json")
            info = json.loads(side.read_text()) if side.exists() else {}
            meta = dict(room_id=house, brir_source=str(loaded[0][0]), azimuth_deg=info.get("azimuth_deg"),
                        elevation_deg=info.get("elevation_deg"), distance_m=info.get("distance_m"),
                        rt60_s=info.get("rt60_s"))
            return loaded[0][1], [x for _, x in loaded[1:]], meta
        return None


__all__ = ["BankSpec", "BrirBank", "ELEVATION_RANGE_DEG", "Room", "UserBrirFolder", "absorption_for_rt60",
           "draw_noise_count", "eyring_rt60", "image_sources", "place_source", "random_listener",
           "random_noise_position", "random_room", "render_brir", "render_ism", "render_noise_set", "schroeder_rt60"]
