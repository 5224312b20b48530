"""The mini Nat-HEAR suite: small HEAR tasks generated offline from the embedded sources, then made naturalistic.

    python -m training.minisuite OUT [--preset tiny|demo|full] [--seed 0] [--tasks ...] [--workers N]
                                 [--sizes TRAIN VALID TEST] [--localization-sizes TRAIN VALID TEST]

Mono "dry" HEAR tasks (keywords, events, pitch, talker count; training/sources.py generators) in OUT/dry, their
naturalistic versions (training.nathear: held-out rooms, noise) and two localization tasks (training.localization:
events on the horizontal plane, keywords in 3-D) in OUT/tasks (the folder to give heareval), and OUT/manifest.json
(preset, tasks, sizes, generation time).  Each localization task has its own dry source set (OUT/dry/<task>), so
its size is set apart from the scene tasks'.

Presets (training/presets/suite/<name>.py, read by training.config): `sizes` = (train, valid, test) clips of each
scene task, `localization_sizes` the same for each localization task.  `tiny` serves the tests and the CI demo,
`demo` is what `make demo` evaluates on, `full` is larger.  Never committed: always regenerated.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import zlib
from pathlib import Path

import numpy as np

from . import localization
from .config import known_presets, load_preset
from .nathear import build_task, make_synth
from .sources import VARIANTS, VOICES, Espeak, event_clips, resample, rms_normalize
from .taskio import SR, dir_size, read_json, write_json, write_vocabulary, write_wav

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


def _say(eng, text: str, rng: np.random.Generator) -> np.ndarray:
    voice = f"{rng.choice(VOICES[:6])}+{rng.choice(VARIANTS)}"
    eng.seed(int(rng.integers(2 ** 31)))
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


def make_dry_task(out: Path, task: str, sizes, seed: int, eng=None, progress: bool = True,
                  generator: str = "") -> Path:
    """A mono 32 kHz HEAR scene/multiclass task of the mini suite (trainvaltest) named `task`, its clips from
    `dry_clip(generator or task, ...)`."""
    from tqdm import tqdm
    gen = generator or task
    dur, evaluation, desc = DRY_TASKS[gen]
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
            x, label = dry_clip(gen, int(order[i]), rng, eng)
            x = rms_normalize(x, -20.0)
            x = x * min(1.0, 0.99 / (float(np.abs(x).max()) + 1e-12))
            write_wav(folder / name, x)
            labels[name] = [label]
            labels_all.add(label)
        write_json(out / f"{split}.json", labels)
    vocab = sorted(labels_all)
    write_vocabulary(out, vocab)
    write_json(out / "task_metadata.json", {
        "task_name": task, "version": "v1.0", "embedding_type": "scene", "prediction_type": "multiclass",
        "split_mode": "trainvaltest", "sample_duration": dur, "evaluation": evaluation,
        "splits": ["train", "valid", "test"], "description": desc, "mode": "mini"}, indent=2)
    return out



LOCALIZATION_TASKS = {"nh_azimuth": ("nh_events", "azimuth"), "nh_loc3d": ("nh_keywords", "3d")}
MINI_TASKS = tuple(DRY_TASKS) + tuple(LOCALIZATION_TASKS)


def suite_sizes(preset: str) -> dict:
    """{"sizes": (train, valid, test), "localization_sizes": (...)} of a suite preset."""
    values = load_preset(preset, kind="suite")
    missing = {"sizes", "localization_sizes"} - set(values)
    if missing:
        raise ValueError(f"suite preset {preset!r} lacks {sorted(missing)}")
    return {k: tuple(int(v) for v in values[k]) for k in ("sizes", "localization_sizes")}


def make_mini(out, preset: str = "tiny", seed: int = 0, progress: bool = True, tasks=MINI_TASKS,
              sizes=None, localization_sizes=None, workers: int = 1) -> dict:
    """The mini Nat-HEAR suite (module docstring); returns the manifest.  `tasks` picks a subset; `sizes` /
    `localization_sizes` (train, valid, test) override the preset's clip counts (`sizes` alone: both)."""
    out = Path(out)
    preset_sizes = suite_sizes(preset)
    unknown = set(tasks) - set(MINI_TASKS)
    if unknown:
        raise ValueError(f"unknown mini tasks {sorted(unknown)}; known: {MINI_TASKS}")
    sizes = tuple(sizes or preset_sizes["sizes"])
    loc_sizes = tuple(localization_sizes or (sizes if localization_sizes is None and sizes != preset_sizes["sizes"]
                                             else preset_sizes["localization_sizes"]))
    for name, v in (("sizes", sizes), ("localization sizes", loc_sizes)):
        if len(v) != 3 or any(int(n) != n or n < 1 for n in v):
            raise ValueError(f"{name} must be three clip counts >= 1 (train, valid, test), got {v}")
    split_sizes = dict(zip(("train", "valid", "test"), sizes))
    split_loc_sizes = dict(zip(("train", "valid", "test"), loc_sizes))
    if out.exists() and (out / "manifest.json").exists():
        m = read_json(out / "manifest.json")
        if (m.get("preset"), m.get("seed")) != (preset, seed):
            raise FileExistsError(f"{out} holds a {m.get('preset')} suite with seed {m.get('seed')}; "
                                  "choose a new folder")
        if (m.get("sizes"), m.get("localization_sizes")) != (split_sizes, split_loc_sizes):
            raise FileExistsError(f"{out} holds a suite of other sizes ({m.get('sizes')}, localization "
                                  f"{m.get('localization_sizes')}); choose a new folder")
    t_all = time.perf_counter()
    eng = Espeak()
    synth = make_synth(seed)
    command = f"python -m training.minisuite OUT --preset {preset} --seed {seed}"
    if sizes != preset_sizes["sizes"]:
        command += " --sizes " + " ".join(map(str, sizes))
    if loc_sizes != preset_sizes["localization_sizes"]:
        command += " --localization-sizes " + " ".join(map(str, loc_sizes))
    manifest = {"preset": preset, "seed": seed, "sizes": split_sizes, "localization_sizes": split_loc_sizes,
                "command": command,
                "tasks_dir": "tasks", "dry_dir": "dry", "tasks": {}}
    for task in tasks:
        t0 = time.perf_counter()
        gen, kind = LOCALIZATION_TASKS.get(task, (task, None))
        dry = out / "dry" / task
        want = dict(zip(("train", "valid", "test"), loc_sizes if kind else sizes))
        if (dry / "task_metadata.json").exists():  # resuming: the dry clips must be the ones asked for
            have = {s: len(read_json(dry / f"{s}.json")) for s in want}
            if have != want:
                raise FileExistsError(f"{dry} holds {have} clips, not the {want} asked for; choose a new folder")
        else:
            make_dry_task(dry, task, tuple(want.values()), seed, eng, progress, generator=gen)
        t1 = time.perf_counter()
        if kind is None:
            st = build_task(dry, out / "tasks" / task, seed=seed, synth=synth, progress=progress, workers=workers)
            m = read_json(dry / "task_metadata.json")
            rec = {"kind": "scene", "description": m["description"], "evaluation": m["evaluation"],
                   "duration_s": m["sample_duration"]}
        else:
            st = localization.make_task(dry, out / "tasks" / task, kind=kind, seed=seed, synth=synth,
                                        progress=progress, workers=workers, task_name=task)
            rec = {"kind": f"localization-{kind}", "evaluation": ["doa_mean_deg", "doa_median_deg"],
                   "duration_s": DRY_TASKS[gen][0]}
        manifest["tasks"][task] = {**rec, "source": f"dry/{task}", "generator": gen, "dry_s": round(t1 - t0, 1),
                                   "build_s": round(st["seconds"], 1), "bytes": dir_size(out / "tasks" / task)}
    manifest["seconds"] = round(time.perf_counter() - t_all, 1)
    manifest["bytes_tasks"] = dir_size(out / "tasks")
    manifest["bytes_dry"] = dir_size(out / "dry")
    write_json(out / "manifest.json", manifest, indent=2)
    return manifest


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.minisuite", description=__doc__.split("\n\n")[0])
    p.add_argument("out")
    p.add_argument("--preset", choices=known_presets("suite"), default="tiny",
                   help="clip counts (training/presets/suite/<name>.py)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tasks", nargs="+", choices=MINI_TASKS, default=MINI_TASKS, help="a subset of the suite")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--workers", type=int, default=1, help="spatialise in N processes (same output as 1)")
    p.add_argument("--sizes", type=int, nargs=3, metavar=("TRAIN", "VALID", "TEST"),
                   help="clips per scene task (default: the preset's; alone, also of the localization tasks)")
    p.add_argument("--localization-sizes", type=int, nargs=3, metavar=("TRAIN", "VALID", "TEST"),
                   help="clips per localization task (default: the preset's)")
    a = p.parse_args(argv)
    for opt, v in (("--sizes", a.sizes), ("--localization-sizes", a.localization_sizes)):
        if v is not None and min(v) < 1:
            p.error(f"{opt} must be three clip counts >= 1, got {' '.join(map(str, v))}")
    try:
        man = make_mini(a.out, a.preset, a.seed, progress=not a.quiet, tasks=a.tasks, workers=a.workers,
                        sizes=a.sizes, localization_sizes=a.localization_sizes)
    except (ValueError, FileExistsError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({k: man[k] for k in ("preset", "seconds", "bytes_tasks", "bytes_dry")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
