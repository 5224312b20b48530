"""Dry (mono) sources at 32 kHz: embedded generators and user corpora.

Embedded, offline from PyPI (data.md §2): speech from espeak-ng through the `espeakng-loader` wheel (ctypes,
22.05 kHz, resampled), General-MIDI notes from `pretty_midi`'s TimGM6mb.sf2 rendered by `tinysoundfont`
(`pip install --no-deps tinysoundfont`), and procedural events (tones, chirps, bursts, impacts). A missing
optional package removes its kind from the pool, with one warning.
The embedded pool is cached on disk (`cached_pool`, one .npz per generator settings, seed and generator
versions), so that a `--resume`, each DDP rank and each scene worker load the clips the first process wrote
instead of synthesising them again.  Speech is a pure function of the seed: `Espeak.seed` seeds both random
sources of espeak-ng's voices (libc rand() and espeak-ng's own generator, which it otherwise seeds from the
clock, so breathy and whispered voices came out different in every process).
User corpora: folders of audio files, and webdataset-style tar shards of clips (AudioSet), read with `tarfile`
+ `soundfile`. Every clip is reduced to channel 0, resampled to 32 kHz and RMS-normalised (spec §7.2) by the
caller. Unreadable or silent files are skipped and counted (`skipped`), never raised.
"""
from __future__ import annotations

import ctypes
import hashlib
import io
import json
import logging
import os
import shutil
import tarfile
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from hear_gram import audio as _audio_module
from hear_gram.audio import AUDIO_EXTENSIONS as AUDIO_EXT
from hear_gram.audio import resample as _resample
from hear_gram.outputs import atomic_path

FS = 32000  # the sample rate of everything in training/ (the KEMAR set, scenes, Nat-HEAR): GRAM's input rate
LIBC = ctypes.CDLL(None)  # the C library of this process (its rand() feeds espeak-ng's noise sources)
log = logging.getLogger(__name__)


def resample(x: np.ndarray, sr: int, fs: int = FS) -> np.ndarray:
    """numpy float32 in and out of the project's one resampler (hear_gram.audio.resample, windowed sinc),
    along the last axis."""
    x = np.ascontiguousarray(x, np.float32)
    if sr == fs:
        return x
    return _resample(torch.from_numpy(x), int(sr), int(fs)).numpy()


def rms_normalize(x: np.ndarray, dbfs: float = -14.0) -> np.ndarray:
    """Scale to the given RMS level in dBFS (spec §7.2); silence is returned unchanged."""
    r = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0
    return x if r == 0 else (x * (10 ** (dbfs / 20) / r)).astype(np.float32)


# ---------------------------------------------------------------- espeak-ng speech

WORDS = ("yes no up down left right on off stop go one two three four five six seven eight nine zero "
         "the a small house near water under bright light music morning evening quickly slowly window "
         "garden river yellow green blue little big happy we they you open close bring take train city "
         "table coffee paper phone letter weather today tomorrow listen speak people friend").split()
VOICES = ("en-us", "en", "en-gb-scotland", "fr", "de", "es", "it", "nl", "pl", "ru", "pt", "sv")
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2",
            "klatt3", "whisper", "croak")


class Espeak:
    """In-process espeak-ng (from the espeakng-loader wheel) via ctypes.

    libespeak-ng keeps static state between utterances (the same text comes out a few samples different
    after other calls, and espeak_Terminate does not reset it). For reproducible pools each instance loads
    its own copy of the shared library (dlopen of a fresh path gives fresh statics); the copy is unlinked
    right after loading. Call `seed` before each utterance that must be reproducible. Not thread safe."""

    def __init__(self):
        import espeakng_loader  # optional dependency; ImportError handled by the caller

        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "libespeak-ng.so")
            shutil.copyfile(espeakng_loader.get_library_path(), path)
            self.lib = ctypes.CDLL(path)
        self._chunks: list[np.ndarray] = []
        cb_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

        def _collect(wav, n, events):
            if n > 0:
                self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            return 0

        self._cb = cb_type(_collect)  # keep a reference: ctypes callbacks die with their Python object
        # 2 = AUDIO_OUTPUT_SYNCHRONOUS: samples arrive through the callback
        self.sr = self.lib.espeak_Initialize(2, 0, espeakng_loader.get_data_path().encode(), 0)
        if self.sr <= 0:
            raise RuntimeError("espeak_Initialize failed")
        self.lib.espeak_SetSynthCallback(self._cb)
        # espeak-ng >= 1.52 has its own generator (breath, whisper), seeded from the clock at initialisation
        self._set_seed = getattr(self.lib, "espeak_ng_SetRandSeed", None)
        if self._set_seed is not None:
            self._set_seed.argtypes = [ctypes.c_long]
        try:
            from importlib.metadata import version
            self.version = version("espeakng-loader")
        except Exception:  # metadata is informative only
            self.version = "unknown"

    def seed(self, seed: int) -> None:
        """Seed the random sources of the next utterances: libc rand() (klatt voices) and espeak-ng's own
        generator (breathy variants, whisper). Without it, voices with noise differ between processes."""
        LIBC.srand(int(seed))
        if self._set_seed is not None:
            self._set_seed(int(seed))

    def synth(self, text: str, voice: str = "en-us", rate: int = 160, pitch: int = 50) -> np.ndarray:
        """Mono float32 at self.sr (22050 Hz); empty if the voice is unknown."""
        self._chunks.clear()
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            return np.zeros(0, np.float32)
        self.lib.espeak_SetParameter(1, int(rate), 0)  # espeakRATE
        self.lib.espeak_SetParameter(3, int(pitch), 0)  # espeakPITCH
        t = text.encode("utf-8")
        self.lib.espeak_Synth(t, len(t) + 1, 0, 1, 0, 0, None, None)  # position type 1 = character
        self.lib.espeak_Synchronize()
        return np.concatenate(self._chunks).astype(np.float32) / 32768.0 if self._chunks else np.zeros(0, np.float32)


def speech_clips(n: int, rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    """n espeak utterances (3-12 random words, random language/variant/speed/pitch) at 32 kHz."""
    eng = Espeak()  # fresh engine: the pool depends on rng only
    out = []
    for i in range(n):
        words = " ".join(rng.choice(WORDS, size=int(rng.integers(3, 13))))
        voice = f"{rng.choice(VOICES)}+{rng.choice(VARIANTS)}"
        rate, pitch = int(rng.integers(110, 260)), int(rng.integers(20, 90))
        eng.seed(int(rng.integers(2 ** 31)))  # the noise of klatt, breathy and whispered voices
        x = eng.synth(words, voice, rate, pitch)
        if len(x) and np.any(x):
            out.append((f"espeak:{voice}:{rate}:{pitch}:{words}", resample(x, eng.sr)))
    return out


# ---------------------------------------------------------------- soundfont notes

def soundfont_path() -> str | None:
    """A General-MIDI .sf2: Debian FluidR3 if installed, else pretty_midi's bundled TimGM6mb.sf2, else None."""
    for p in ("/usr/share/sounds/sf2/FluidR3_GM.sf2",):
        if os.path.exists(p):
            return p
    try:
        import pretty_midi
    except ImportError:
        return None
    p = os.path.join(os.path.dirname(pretty_midi.__file__), "TimGM6mb.sf2")
    return p if os.path.exists(p) else None


def note_clips(n: int, rng: np.random.Generator, sf2: str | None = None) -> list[tuple[str, np.ndarray]]:
    """n GM notes (program 0-111, MIDI 36-84, velocity 60-127, 0.5-3 s held + 1 s release) at 32 kHz."""
    import tinysoundfont  # optional; ImportError handled by the caller

    sf2 = sf2 or soundfont_path()
    if sf2 is None:
        raise ImportError("no General-MIDI soundfont (pip install pretty_midi)")
    synth = tinysoundfont.Synth(samplerate=FS)
    sfid = synth.sfload(sf2)
    out = []
    for _ in range(n):
        prog, pitch, vel = int(rng.integers(0, 112)), int(rng.integers(36, 85)), int(rng.integers(60, 128))
        held = float(rng.uniform(0.5, 3.0))
        synth.program_select(0, sfid, 0, prog)
        synth.noteon(0, pitch, vel)
        a = np.frombuffer(synth.generate(int(held * FS)), np.float32)
        synth.noteoff(0, pitch)
        b = np.frombuffer(synth.generate(FS), np.float32)
        synth.notes_off()
        synth.generate(FS // 10)  # flush voices so the next note starts clean
        x = np.concatenate([a, b]).reshape(-1, 2).mean(1)
        if np.any(x):
            out.append((f"sf2:{Path(sf2).name}:{prog}:{pitch}:{vel}", x.astype(np.float32)))
    return out


# ---------------------------------------------------------------- procedural events

def event_clips(n: int, rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    """n procedural events (AM/FM tones, chirps, filtered noise bursts, impacts, click trains) at 32 kHz."""
    out = []
    kinds = ("tone", "chirp", "burst", "impact", "clicks")
    for _ in range(n):
        kind = kinds[int(rng.integers(len(kinds)))]
        dur = float(rng.uniform(0.3, 2.5))
        t = np.arange(int(dur * FS)) / FS
        env = np.minimum(1, t / 0.01) * np.minimum(1, (dur - t) / 0.05)
        if kind == "tone":
            f0, fm, depth = rng.uniform(150, 3000), rng.uniform(0.5, 12), rng.uniform(0, 0.05)
            phase = 2 * np.pi * f0 * t + depth * f0 / fm * np.sin(2 * np.pi * fm * t)
            x = sum(np.sin(k * phase) / k for k in range(1, int(rng.integers(1, 6)) + 1))
            x = x * (1 + rng.uniform(0, 0.9) * np.sin(2 * np.pi * rng.uniform(1, 20) * t))
        elif kind == "chirp":
            f0, f1 = np.sort(rng.uniform(100, 12000, 2))[:: int(rng.choice([1, -1]))]
            x = np.sin(2 * np.pi * np.cumsum(np.geomspace(f0, f1, len(t))) / FS)
        elif kind == "burst":
            spec = np.fft.rfft(rng.standard_normal(len(t)))
            f = np.fft.rfftfreq(len(t), 1 / FS)
            fc, bw = rng.uniform(200, 10000), rng.uniform(0.2, 2.0)
            spec *= np.exp(-0.5 * (np.log2(np.maximum(f, 1) / fc) / bw) ** 2)
            x = np.fft.irfft(spec, len(t)) * np.exp(-t * rng.uniform(0, 6))
        elif kind == "impact":
            modes = rng.uniform(80, 6000, int(rng.integers(2, 8)))
            x = sum(np.sin(2 * np.pi * f * t) * np.exp(-t * rng.uniform(5, 60)) for f in modes)
            x[: 32] += rng.standard_normal(32)
        else:
            x = np.zeros(len(t))
            period = int(FS / rng.uniform(2, 40))
            x[::period] = 1.0
            x = np.convolve(x, rng.standard_normal(64) * np.exp(-np.arange(64) / 8), mode="same")
        out.append((f"event:{kind}", (x * env).astype(np.float32)))
    return out


# ---------------------------------------------------------------- user corpora

def decode(data_or_path, fs: int = FS) -> np.ndarray | None:
    """Channel 0 of an audio file/bytes at fs, or None if unreadable or silent."""
    import soundfile as sf
    try:
        src = io.BytesIO(data_or_path) if isinstance(data_or_path, (bytes, bytearray)) else str(data_or_path)
        x, sr = sf.read(src, dtype="float32", always_2d=True)
    except Exception as e:  # any decoder failure means "skip this file", by design
        log.debug("unreadable audio %s: %s", str(data_or_path)[:80], e)
        return None
    x = x[:, 0]
    if len(x) == 0 or not np.any(x):
        return None
    return resample(x, sr, fs)


class FolderSource:
    """Audio files under one or more folders (recursive), read on demand; clips longer than max_s are cut
    at a random offset."""

    def __init__(self, roots, kind: str = "folder", max_s: float = 10.0):
        self.kind, self.max_n = kind, int(max_s * FS)
        self.files = sorted(p for r in roots for p in Path(r).rglob("*") if p.suffix.lower() in AUDIO_EXT)
        self.skipped = 0

    def __len__(self) -> int:
        return len(self.files)

    def draw(self, rng: np.random.Generator, tries: int = 10):
        for _ in range(tries):
            p = self.files[int(rng.integers(len(self.files)))]
            x = decode(p)
            if x is None:
                self.skipped += 1
                continue
            if len(x) > self.max_n:
                s = int(rng.integers(0, len(x) - self.max_n + 1))
                x = x[s: s + self.max_n]
            return str(p), x
        return None


class TarShardSource:
    """Webdataset-style tar shards (e.g. AudioSet `unbal_train*.tar` with `.flac` members), random access via
    the stdlib `tarfile` (member index built lazily per shard, handles kept open)."""

    def __init__(self, shards, kind: str = "audioset", max_s: float = 10.0):
        self.kind, self.max_n = kind, int(max_s * FS)
        self.shards = sorted(str(s) for s in shards)
        self._members: dict[str, list] = {}
        self._open: dict[str, tarfile.TarFile] = {}
        self.skipped = 0

    def __len__(self) -> int:
        return len(self.shards)

    def _index(self, shard: str):
        if shard not in self._members:
            try:
                tf = tarfile.open(shard, "r")
                self._open[shard] = tf
                self._members[shard] = [m for m in tf.getmembers()
                                        if m.isfile() and m.name.lower().endswith(AUDIO_EXT)]
            except (tarfile.TarError, OSError) as e:
                log.debug("unreadable shard %s: %s", shard, e)
                self._members[shard] = []
                self.skipped += 1
        return self._members[shard]

    def draw(self, rng: np.random.Generator, tries: int = 10):
        for _ in range(tries):
            shard = self.shards[int(rng.integers(len(self.shards)))]
            members = self._index(shard)
            if not members:
                continue
            m = members[int(rng.integers(len(members)))]
            x = decode(self._open[shard].extractfile(m).read())
            if x is None:
                self.skipped += 1
                continue
            return f"{shard}:{m.name}", x[: self.max_n]
        return None


def embedded_pool(n_speech: int, n_notes: int, n_events: int, rng: np.random.Generator):
    """{kind: [(id, clip)]} from the embedded generators that are available; missing ones are reported once."""
    pool, missing = {}, []
    for kind, n, make in (("speech", n_speech, speech_clips), ("note", n_notes, note_clips),
                          ("event", n_events, event_clips)):
        if n <= 0:
            continue
        try:
            clips = make(n, rng)
        except (ImportError, OSError, RuntimeError) as e:
            missing.append(f"{kind} ({e})")
            continue
        if clips:
            pool[kind] = clips
    if missing:
        warnings.warn("scene source pool: unavailable generators: " + "; ".join(missing), stacklevel=2)
    return pool


# ---------------------------------------------------------------- on-disk pool cache

POOL_VERSION = 1  # bump when the pool format or a generator changes in a way the key below does not see


def pool_key(n_speech: int, n_notes: int, n_events: int, seed_seq: np.random.SeedSequence) -> str:
    """Cache key of an embedded pool: sizes, seed, the versions of everything that shapes the clips (espeak-ng
    and its data, the soundfont and its renderer, numpy/scipy for the draws and resampling) and this module."""
    from importlib.metadata import PackageNotFoundError, version
    versions = {}
    for dist in ("espeakng-loader", "tinysoundfont", "pretty_midi", "numpy", "scipy"):
        try:
            versions[dist] = version(dist)
        except PackageNotFoundError:
            versions[dist] = None
    sf2 = soundfont_path()
    items = [POOL_VERSION, n_speech, n_notes, n_events, str(seed_seq.entropy), list(seed_seq.spawn_key), versions,
             [sf2, os.path.getsize(sf2)] if sf2 else None, hashlib.sha1(Path(__file__).read_bytes()).hexdigest(),
             hashlib.sha1(Path(_audio_module.__file__).read_bytes()).hexdigest()]  # the resampler of the speech
    return hashlib.sha1(json.dumps(items).encode()).hexdigest()[:16]


def save_pool(path: Path, pool: dict) -> None:
    """{kind: [(id, clip)]} -> one .npz (clips concatenated per kind), written under a temporary name and
    renamed, so a reader never sees a partial file."""
    arrays = {"names": json.dumps({k: [name for name, _ in v] for k, v in pool.items()})}
    for k, v in pool.items():
        arrays[f"{k}_audio"] = np.concatenate([x for _, x in v]).astype(np.float32)
        arrays[f"{k}_offsets"] = np.cumsum([0] + [len(x) for _, x in v])
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)


def load_pool(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        names = json.loads(str(z["names"]))
        pool = {}
        for k, ids in names.items():
            audio, off = z[f"{k}_audio"], z[f"{k}_offsets"]
            pool[k] = [(name, audio[off[i]: off[i + 1]]) for i, name in enumerate(ids)]
    return pool


def cached_pool(n_speech: int, n_notes: int, n_events: int, seed_seq: np.random.SeedSequence,
                cache_dir=None, generated: dict | None = None) -> dict:
    """embedded_pool(..., default_rng(seed_seq)), cached as `<cache_dir>/pool_<key>.npz`.

    The first process to get the file lock generates (or takes `generated`, a pool this process already made)
    and writes it; the others wait and load it. Every caller returns the file's contents, never its own
    generation, so all processes sharing the cache use bit-identical clips. cache_dir None: no caching."""
    if cache_dir is None:
        return generated if generated is not None else embedded_pool(n_speech, n_notes, n_events,
                                                                     np.random.default_rng(seed_seq))
    import fcntl
    root = Path(cache_dir).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"pool_{pool_key(n_speech, n_notes, n_events, seed_seq)}.npz"
    with open(root / f".{path.stem}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # DDP ranks starting together: one generates, the rest load
        try:
            if not path.exists():
                pool = generated if generated is not None else embedded_pool(n_speech, n_notes, n_events,
                                                                             np.random.default_rng(seed_seq))
                save_pool(path, pool)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return load_pool(path)
