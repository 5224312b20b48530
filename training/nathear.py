"""Nat-HEAR: naturalistic (binaural, reverberant, noisy) versions of HEAR tasks, and a mini suite built offline.

    python -m training.nathear build SRC OUT [--seed 0] [--snr-db 5 40] [--rooms 64] [--brir-dir D] [--noise-dir D]
                                         [--workers N]
    python -m training.nathear mini OUT [--profile ci|demo|full] [--seed 0] [--workers N]

`build`: SRC is one HEAR task directory (it holds task_metadata.json) or a folder of them (each becomes
OUT/<name>).  Every clip of every split is spatialised by `training.scenes.SceneSynth(split="test")`: held-out
rooms (the test seed namespace; for user BRIR folders, the held-out houses), never the training ones, with noise
added as in pretraining (SNR uniform in --snr-db, localized or diffuse).  Output: 2-channel 16-bit wavs at 32 kHz
in OUT/<task>/32000/<split>/, the same split names, file names and labels, `task_metadata.json` with a
"naturalistic" record, and per split `scenes/<split>.jsonl` (the scene of each file: room, direction, SNR...).

* Source audio: the 32000 folder when present, else the highest rate present, resampled (polyphase); multichannel
  sources are averaged to mono first.  With `sample_duration` set, output clips have exactly that length.
* Deterministic: each file's scene depends only on (seed, split, file name), so a build is reproducible
  whatever the order, the number of runs or an interruption.
* Parallel: `--workers N` renders files in N forked processes; records are written in file order, so the
  output (wavs, scenes/<split>.jsonl, labels, metadata) is byte-identical to a serial build.
* Resumable: a file is finished when its wav exists and its scene line is in scenes/<split>.jsonl (the wav is
  written to a temporary name and renamed first); a rerun renders only the rest.  A rerun with different settings
  is refused (OUT/<task>/nathear.json records them).
* Never writes into SRC: OUT equal to, inside, or above SRC is refused, and so is a non-empty OUT that is not a
  Nat-HEAR build.

`mini`: a mini Nat-HEAR suite from the embedded sources (training/sources.py): mono "dry" HEAR tasks in OUT/dry,
their naturalistic versions and two localization tasks in OUT/tasks (the folder to give heareval), and
OUT/manifest.json (profile, tasks, sizes, generation time).  Profiles: `ci` (30/10/10 clips a task, six tasks,
a few minutes on one CPU core) and `full` (600/200/200 clips a task).  Never committed: always regenerated.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import zlib
from pathlib import Path

import numpy as np

SR = 32000
RATES = (16000, 22050, 32000, 44100, 48000)
BUILDER_VERSION = 1


# ---------------------------------------------------------------- task folders

def is_task(path) -> bool:
    return (Path(path) / "task_metadata.json").is_file()


def read_json(path):
    with open(path) as f:
        return json.load(f)


def write_json(path, obj, indent=None):
    """Atomic JSON write (temporary file + rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=indent)
    os.replace(tmp, path)


def source_rate(task: Path) -> int:
    """The 32000 folder when present, else the highest sample rate folder present."""
    rates = sorted(int(p.name) for p in task.iterdir() if p.is_dir() and p.name.isdigit())
    if not rates:
        raise FileNotFoundError(f"{task}: no sample-rate folder (expected one of {RATES})")
    return SR if SR in rates else rates[-1]


def read_clip(path: Path, n_out: int | None) -> tuple[np.ndarray, int]:
    """Mono float32 clip at 32 kHz (resampled if needed), cut or zero-padded to n_out samples when given."""
    import soundfile as sf

    from .sources import resample
    x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    x = resample(x.mean(axis=1), sr, SR)
    if n_out is not None:
        x = x[:n_out] if len(x) >= n_out else np.pad(x, (0, n_out - len(x)))
    return np.ascontiguousarray(x, np.float32), sr


def write_wav(path: Path, audio: np.ndarray) -> None:
    """(channels, n) float -> 16-bit PCM wav, written under a temporary name and renamed."""
    import soundfile as sf
    tmp = path.with_name(f".{path.name}.part")
    sf.write(str(tmp), np.asarray(audio, np.float32).T, SR, subtype="PCM_16", format="WAV")
    os.replace(tmp, path)


def check_paths(src: Path, out: Path) -> None:
    """Refuse any OUT that would write into (or replace) the source."""
    s, o = src.resolve(), out.resolve()
    if s == o or s in o.parents or o in s.parents:
        raise ValueError(f"refusing to write {out} : it is the source {src}, inside it, or above it")


def file_rng(seed: int, split: str, name: str, salt: int = 0) -> np.random.Generator:
    """The per-file random stream: a function of (seed, split, file name) only."""
    return np.random.default_rng([int(seed), zlib.crc32(f"{split}/{name}".encode()), int(salt)])


# ---------------------------------------------------------------- the synthesizer

def make_synth(seed: int = 0, snr_db=(5.0, 40.0), rooms: int = 64, brir_dirs=(), noise_dirs=()):
    """A SceneSynth on the held-out split ("test"): rooms/placements from the test seed namespace (user BRIR
    folders: the held-out houses), noise as in pretraining.  The cached bank it builds is not used by
    spatialize (it renders each clip's room fresh), so it is kept at one set per room."""
    from .scenes import SceneConfig, SceneSynth
    cfg = SceneConfig(n_rooms=int(rooms), sets_per_room=1, n_speech=32, n_notes=0, n_events=8,
                      snr_db=tuple(float(v) for v in snr_db), brir_dirs=tuple(map(str, brir_dirs)),
                      noise_dirs=tuple(map(str, noise_dirs)))
    return SceneSynth(cfg, seed=seed, split="test")


def _settings(seed, snr_db, rooms, brir_dirs, noise_dirs, mode, src):
    return {"builder_version": BUILDER_VERSION, "source": str(Path(src).resolve()), "seed": int(seed),
            "snr_db": [float(v) for v in snr_db], "rooms": int(rooms), "brir_dirs": [str(d) for d in brir_dirs],
            "noise_dirs": [str(d) for d in noise_dirs], "mode": mode}


def _load_done(jsonl: Path, folder: Path) -> dict:
    """{file: scene record} of the finished files of one split (wav present and scene line written)."""
    done = {}
    if jsonl.exists():
        with open(jsonl) as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:  # a line cut by an interruption
                    continue
                if (folder / rec["file"]).exists():
                    done[rec["file"]] = rec
    return done


_JSONABLE = (str, int, float, bool, type(None))


def _clean(meta: dict) -> dict:
    out = {}
    for k, v in meta.items():
        if isinstance(v, (list, tuple)):
            v = [float(x) if isinstance(x, (np.floating, float)) else x for x in v]
        elif isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, _JSONABLE) or isinstance(v, list):
            out[k] = v
    return out


_JOB: dict = {}  # the split being rendered; set before the worker pool forks, so workers inherit the synth


def _render_one(name: str, job: dict | None = None) -> dict:
    """Spatialise one file (a function of (seed, split, name) only), write its wav, return its scene record."""
    job = job or _JOB
    clip, _ = read_clip(job["src"] / name, job["n_out"])
    rng = file_rng(job["seed"], job["split"], name)
    kwargs = job["placement"](rng) if job["placement"] is not None else {}
    audio, scene = job["synth"].spatialize(clip, rng=rng, **kwargs)
    write_wav(job["folder"] / name, audio.cpu().numpy())
    return {"file": name, **_clean(scene)}


def _worker_init():
    import torch
    torch.set_num_threads(1)  # N workers on N cores: no nested intra-op pools


class _renderer:
    """Context manager giving render(names) -> records in order: in this process (workers <= 1) or in a pool
    of forked workers (the synth, hooks included, is inherited; nothing is pickled but names and records)."""

    def __init__(self, job: dict, workers: int, n_todo: int):
        self.job, self.workers, self.pool = job, int(workers or 1), None
        if self.workers > 1 and job["synth"].device.type != "cpu":
            raise ValueError("--workers needs a CPU synthesizer (CUDA cannot be forked)")
        self.workers = min(self.workers, max(n_todo, 1))

    def __enter__(self):
        if self.workers <= 1:
            return lambda names: (_render_one(n, self.job) for n in names)
        import multiprocessing as mp
        _JOB.clear()
        _JOB.update(self.job)
        self.pool = mp.get_context("fork").Pool(self.workers, initializer=_worker_init)
        return lambda names: self.pool.imap(_render_one, names, chunksize=1)

    def __exit__(self, *exc):
        if self.pool is not None:
            self.pool.terminate()  # after a complete pass nothing is left; after an error, stop the rest
            self.pool.join()
            _JOB.clear()
        return False


def build_task(src, out, seed: int = 0, snr_db=(5.0, 40.0), rooms: int = 64, brir_dirs=(), noise_dirs=(),
               synth=None, mode: str = "scene", placement=None, relabel=None, metadata_update=None,
               progress: bool = True, workers: int = 1) -> dict:
    """Naturalistic version of one HEAR task (see the module docstring).  Returns build statistics.
    `workers` > 1 renders in that many forked processes; the output is byte-identical to workers=1.

    Hooks (used by training.localization): `placement(rng) -> dict` of spatialize keyword arguments drawn from
    the file's own random stream; `relabel(scene_meta, old_label) -> new label`; `metadata_update(dict) -> dict`.
    """
    from tqdm import tqdm

    src, out = Path(src), Path(out)
    if not is_task(src):
        raise FileNotFoundError(f"{src} is not a HEAR task directory (no task_metadata.json)")
    check_paths(src, out)
    settings = _settings(seed, snr_db, rooms, brir_dirs, noise_dirs, mode, src)
    record = out / "nathear.json"
    if out.exists() and any(out.iterdir()):
        if not record.exists():
            raise FileExistsError(f"{out} exists, is not empty and is not a Nat-HEAR build; choose a new folder")
        if read_json(record)["settings"] != settings:
            raise FileExistsError(f"{out} was built with other settings ({record}); choose a new folder")
    out.mkdir(parents=True, exist_ok=True)
    write_json(record, {"settings": settings, "complete": False}, indent=2)

    meta = read_json(src / "task_metadata.json")
    rate = source_rate(src)
    n_out = int(round(meta["sample_duration"] * SR)) if meta.get("sample_duration") else None
    synth = synth or make_synth(seed, snr_db, rooms, brir_dirs, noise_dirs)
    t0, stats = time.perf_counter(), {"rendered": 0, "skipped": 0, "files": 0}
    (out / "scenes").mkdir(exist_ok=True)
    split_labels = {}
    for split in meta["splits"]:
        labels = read_json(src / f"{split}.json")
        folder = out / str(SR) / split
        folder.mkdir(parents=True, exist_ok=True)
        jsonl = out / "scenes" / f"{split}.jsonl"
        done = _load_done(jsonl, folder)
        names = sorted(labels)
        todo = [n for n in names if n not in done]
        stats["files"] += len(names)
        stats["skipped"] += len(names) - len(todo)
        if jsonl.exists() and jsonl.stat().st_size and not jsonl.read_bytes().endswith(b"\n"):
            with open(jsonl, "a") as log:  # end a line cut by an interruption
                log.write("\n")
        job = dict(synth=synth, placement=placement, src=src / str(rate) / split, folder=folder, n_out=n_out,
                   seed=seed, split=split)
        with open(jsonl, "a") as log, _renderer(job, workers, len(todo)) as render:
            # Records come back in `todo` order whatever the worker count, so scenes/<split>.jsonl is the
            # same file as a serial build's; a wav is on disk before its line (the resume criterion).
            for rec in tqdm(render(todo), desc=f"{out.name}/{split}", unit="clip", disable=not progress,
                            initial=len(names) - len(todo), total=len(names)):
                log.write(json.dumps(rec) + "\n")
                log.flush()
                done[rec["file"]] = rec
                stats["rendered"] += 1
        if relabel is not None:
            labels = {n: relabel(done[n], labels[n]) for n in names}
        split_labels[split] = labels
        write_json(out / f"{split}.json", labels)

    vocab = src / "labelvocabulary.csv"
    if relabel is None and vocab.exists():
        shutil.copyfile(vocab, out / "labelvocabulary.csv")
    new = dict(meta)
    new["naturalistic"] = {**settings, "source_sample_rate": rate, "sample_rate": SR, "channels": 2,
                           "rooms_split": "test (held out from pretraining)",
                           "scene_records": "scenes/<split>.jsonl"}
    new["num_channels"] = 2
    if metadata_update is not None:
        new = metadata_update(new)
    write_json(out / "task_metadata.json", new, indent=2)
    stats["seconds"] = time.perf_counter() - t0
    write_json(record, {"settings": settings, "complete": True, "stats": stats}, indent=2)
    return stats


def build(src, out, progress: bool = True, **kw) -> dict:
    """One task (SRC holds task_metadata.json) or every task folder under SRC (-> OUT/<name>)."""
    src, out = Path(src), Path(out)
    check_paths(src, out)
    if is_task(src):
        return {src.name: build_task(src, out, progress=progress, **kw)}
    tasks = sorted(p for p in src.iterdir() if is_task(p))
    if not tasks:
        raise FileNotFoundError(f"{src}: neither a HEAR task nor a folder of HEAR tasks")
    synth = kw.pop("synth", None) or make_synth(**{k: kw[k] for k in ("seed", "snr_db", "rooms", "brir_dirs",
                                                                       "noise_dirs") if k in kw})
    return {t.name: build_task(t, out / t.name, synth=synth, progress=progress, **kw) for t in tasks}


# ---------------------------------------------------------------- mini Nat-HEAR suite (dry tasks)

# clips per task: train, valid, test ("demo": what `make demo` evaluates on, a few minutes to build)
PROFILES = {"ci": (30, 10, 10), "demo": (150, 50, 100), "full": (600, 200, 200)}
KEYWORDS = ("yes", "no", "up", "down", "stop")
PITCH_BANDS = ((36, 48), (48, 60), (60, 72), (72, 84))  # MIDI note ranges -> labels C2..C5
COUNT_WORDS = ("one two three", "the small house", "bright light music", "open the window", "coffee today",
               "listen to people", "green river garden", "we take the train")


def _fit(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Cut x to n samples or place it at a random offset in n samples of silence."""
    if len(x) >= n:
        return x[:n]
    out = np.zeros(n, np.float32)
    s = int(rng.integers(0, n - len(x) + 1))
    out[s: s + len(x)] = x
    return out


def _espeak():
    from .sources import Espeak
    return Espeak()


def _say(eng, text: str, rng: np.random.Generator) -> np.ndarray:
    from .sources import LIBC, VARIANTS, VOICES, resample
    voice = f"{rng.choice(VOICES[:6])}+{rng.choice(VARIANTS)}"
    LIBC.srand(int(rng.integers(2 ** 31)))
    x = eng.synth(text, voice, int(rng.integers(130, 240)), int(rng.integers(20, 90)))
    return resample(x, eng.sr)


def _tone(midi: float, dur: float, rng: np.random.Generator) -> np.ndarray:
    """A harmonic note with a random timbre, attack/decay and vibrato."""
    t = np.arange(int(dur * SR)) / SR
    f0 = 440.0 * 2 ** ((midi - 69) / 12)
    vib = 1 + rng.uniform(0, 0.006) * np.sin(2 * np.pi * rng.uniform(3, 7) * t)
    phase = 2 * np.pi * f0 * np.cumsum(vib) / SR
    tilt = rng.uniform(0.5, 2.0)
    x = sum(np.sin(k * phase + rng.uniform(0, 2 * np.pi)) / k ** tilt
            for k in range(1, int(rng.integers(1, 12)) + 1) if k * f0 < SR / 2 - 1000)
    env = np.minimum(1, t / rng.uniform(0.005, 0.08)) * np.exp(-t * rng.uniform(0, 3))
    return (x * env).astype(np.float32)


def dry_clip(task: str, label_index: int, rng: np.random.Generator, eng=None) -> tuple[np.ndarray, str]:
    """One mono 32 kHz clip of a mini-suite task and its label."""
    from .sources import event_clips, rms_normalize
    if task == "nh_keywords":
        word = KEYWORDS[label_index % len(KEYWORDS)]
        return _fit(_say(eng, word, rng), SR, rng), word
    if task == "nh_events":
        kinds = ("tone", "chirp", "burst", "impact", "clicks")
        want = kinds[label_index % len(kinds)]
        for _ in range(200):  # event_clips draws its kind; redraw until it is the wanted one
            name, x = event_clips(1, rng)[0]
            if name == f"event:{want}":
                return _fit(x, SR, rng), want
        raise RuntimeError("event generator did not produce the wanted kind")
    if task == "nh_pitch":
        lo, hi = PITCH_BANDS[label_index % len(PITCH_BANDS)]
        return _fit(_tone(rng.uniform(lo, hi), rng.uniform(0.5, 1.0), rng), SR, rng), f"C{lo // 12 - 1}"
    if task == "nh_count":
        k = label_index % 3 + 1
        n = 2 * SR
        mix = np.zeros(n, np.float32)
        for _ in range(k):
            x = _say(eng, COUNT_WORDS[int(rng.integers(len(COUNT_WORDS)))], rng)
            mix += rms_normalize(_fit(x, n, rng), -20.0)
        return mix, str(k)
    raise ValueError(task)


DRY_TASKS = {  # name: (duration s, evaluation, description)
    "nh_keywords": (1.0, ["top1_acc", "mAP"], "spoken keyword (5 words, espeak-ng voices)"),
    "nh_events": (1.0, ["top1_acc", "mAP"], "procedural sound event kind (5 classes)"),
    "nh_pitch": (1.0, ["top1_acc", "mAP"], "pitch register of a harmonic note (4 octaves)"),
    "nh_count": (2.0, ["top1_acc", "mAP"], "number of overlapping talkers (1-3)"),
}


def make_dry_task(out: Path, task: str, sizes, seed: int, eng=None, progress: bool = True) -> Path:
    """A mono 32 kHz HEAR scene/multiclass task of the mini suite (trainvaltest)."""
    import soundfile as sf
    from tqdm import tqdm

    from .sources import rms_normalize
    dur, evaluation, desc = DRY_TASKS[task]
    out.mkdir(parents=True, exist_ok=True)
    labels_all = set()
    for s_i, (split, n) in enumerate(zip(("train", "valid", "test"), sizes)):
        folder = out / str(SR) / split
        folder.mkdir(parents=True, exist_ok=True)
        labels = {}
        order = np.random.default_rng([seed, zlib.crc32(task.encode()), s_i]).permutation(n)
        for i in tqdm(range(n), desc=f"dry {task}/{split}", unit="clip", disable=not progress):
            name = f"{task}_{split}_{i:05d}.wav"
            rng = np.random.default_rng([seed, zlib.crc32(task.encode()), s_i, i])
            x, label = dry_clip(task, int(order[i]), rng, eng)
            x = rms_normalize(x, -20.0)
            x = x * min(1.0, 0.99 / (float(np.abs(x).max()) + 1e-12))
            sf.write(str(folder / name), x, SR, subtype="PCM_16")
            labels[name] = [label]
            labels_all.add(label)
        write_json(out / f"{split}.json", labels)
    vocab = sorted(labels_all)
    (out / "labelvocabulary.csv").write_text("idx,label\n" + "".join(f"{i},{v}\n" for i, v in enumerate(vocab)))
    write_json(out / "task_metadata.json", {
        "task_name": task, "version": "v1.0", "embedding_type": "scene", "prediction_type": "multiclass",
        "split_mode": "trainvaltest", "sample_duration": dur, "evaluation": evaluation,
        "splits": ["train", "valid", "test"], "description": desc, "mode": "mini"}, indent=2)
    return out


def dir_size(path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


LOCALIZATION_TASKS = {"nh_azimuth": ("nh_events", "azimuth"), "nh_loc3d": ("nh_keywords", "3d")}
MINI_TASKS = tuple(DRY_TASKS) + tuple(LOCALIZATION_TASKS)


def make_mini(out, profile: str = "ci", seed: int = 0, progress: bool = True, tasks=MINI_TASKS,
              sizes=None, workers: int = 1) -> dict:
    """The mini Nat-HEAR suite (module docstring); returns the manifest.  `tasks` picks a subset and `sizes`
    (train, valid, test) overrides the profile's clip counts (tests)."""
    from . import localization
    out = Path(out)
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {sorted(PROFILES)}")
    unknown = set(tasks) - set(MINI_TASKS)
    if unknown:
        raise ValueError(f"unknown mini tasks {sorted(unknown)}; known: {MINI_TASKS}")
    sizes = tuple(sizes or PROFILES[profile])
    if out.exists() and (out / "manifest.json").exists():
        m = read_json(out / "manifest.json")
        if (m["profile"], m["seed"]) != (profile, seed):
            raise FileExistsError(f"{out} holds a {m['profile']} suite with seed {m['seed']}; choose a new folder")
    t_all = time.perf_counter()
    eng = _espeak()
    synth = make_synth(seed)
    manifest = {"profile": profile, "seed": seed, "sizes": dict(zip(("train", "valid", "test"), sizes)),
                "command": f"python -m training.nathear mini OUT --profile {profile} --seed {seed}",
                "tasks_dir": "tasks", "dry_dir": "dry", "tasks": {}}
    need_dry = [t for t in DRY_TASKS if t in tasks or any(LOCALIZATION_TASKS[x][0] == t for x in tasks
                                                           if x in LOCALIZATION_TASKS)]
    for task in need_dry:
        t0 = time.perf_counter()
        dry = out / "dry" / task
        if not (dry / "task_metadata.json").exists():
            make_dry_task(dry, task, sizes, seed, eng, progress)
        t1 = time.perf_counter()
        if task not in tasks:
            continue
        st = build_task(dry, out / "tasks" / task, seed=seed, synth=synth, progress=progress, workers=workers)
        m = read_json(dry / "task_metadata.json")
        manifest["tasks"][task] = {"kind": "scene", "source": f"dry/{task}", "description": m["description"],
                                   "evaluation": m["evaluation"], "duration_s": m["sample_duration"],
                                   "dry_s": round(t1 - t0, 1), "build_s": round(st["seconds"], 1),
                                   "bytes": dir_size(out / "tasks" / task)}
    for task, (src, kind) in LOCALIZATION_TASKS.items():
        if task not in tasks:
            continue
        st = localization.make_task(out / "dry" / src, out / "tasks" / task, kind=kind, seed=seed, synth=synth,
                                    progress=progress, workers=workers)
        manifest["tasks"][task] = {"kind": f"localization-{kind}", "source": f"dry/{src}",
                                   "evaluation": ["doa_mean_deg", "doa_median_deg"], "duration_s": 1.0,
                                   "build_s": round(st["seconds"], 1), "bytes": dir_size(out / "tasks" / task)}
    manifest["seconds"] = round(time.perf_counter() - t_all, 1)
    manifest["bytes_tasks"] = dir_size(out / "tasks")
    manifest["bytes_dry"] = dir_size(out / "dry")
    write_json(out / "manifest.json", manifest, indent=2)
    return manifest


# ---------------------------------------------------------------- CLI

def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.nathear", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="naturalistic version of a HEAR task (or of every task in a folder)")
    b.add_argument("src")
    b.add_argument("out")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--snr-db", type=float, nargs=2, default=(5.0, 40.0), metavar=("LO", "HI"))
    b.add_argument("--rooms", type=int, default=64, help="held-out ISM rooms to draw from")
    b.add_argument("--brir-dir", action="append", default=[], help="user BRIR folder (its held-out houses are used)")
    b.add_argument("--noise-dir", action="append", default=[], help="folder of noise recordings")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    b.add_argument("--workers", type=int, default=1, help="render in N processes (same output as 1)")
    m = sub.add_parser("mini", help="generate the mini Nat-HEAR suite from the embedded sources")
    m.add_argument("out")
    m.add_argument("--profile", choices=sorted(PROFILES), default="ci")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--tasks", nargs="+", choices=MINI_TASKS, default=MINI_TASKS, help="a subset of the suite")
    m.add_argument("--quiet", action="store_true")
    m.add_argument("--workers", type=int, default=1, help="spatialise in N processes (same output as 1)")
    a = p.parse_args(argv)
    try:
        if a.cmd == "build":
            stats = build(a.src, a.out, seed=a.seed, snr_db=a.snr_db, rooms=a.rooms, brir_dirs=a.brir_dir,
                          noise_dirs=a.noise_dir, progress=not a.quiet, workers=a.workers)
            for name, st in stats.items():
                print(f"{name}: {st['files']} files, {st['rendered']} rendered, {st['skipped']} already done, "
                      f"{st['seconds']:.1f} s")
        else:
            man = make_mini(a.out, a.profile, a.seed, progress=not a.quiet, tasks=a.tasks, workers=a.workers)
            print(json.dumps({k: man[k] for k in ("profile", "seconds", "bytes_tasks", "bytes_dry")}))
    except (ValueError, FileExistsError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
