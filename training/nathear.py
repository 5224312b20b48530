"""Nat-HEAR: naturalistic (binaural, reverberant, noisy) versions of HEAR tasks.

    python -m training.nathear build SRC OUT [--seed 0] [--snr-db 5 40] [--rooms 64] [--brir-dir D] [--noise-dir D]
                                         [--workers N]

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

The mini suite built offline from the embedded sources is training/minisuite.py.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
import zlib
from pathlib import Path

import numpy as np

from .taskio import (SR, TaskError, check_paths, is_task, read_clip, read_json, read_labels, read_metadata, source_rate,
                     write_json, write_wav)

BUILDER_VERSION = 1


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
    (job["folder"] / name).parent.mkdir(parents=True, exist_ok=True)  # names are confined to the folder (taskio)
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


def read_source(src: Path) -> tuple:
    """(metadata, source sample rate, {split: labels}) of a HEAR task folder, checked before anything is written:
    a malformed or incomplete task_metadata.json or split JSON, a file name that leaves the folder (absolute or
    with '..') and a listed wav that does not exist are TaskErrors naming the file."""
    meta = read_metadata(src)
    rate = source_rate(src)
    labels = {split: read_labels(src, split) for split in meta["splits"]}
    for split, names in labels.items():
        missing = [n for n in sorted(names) if not (src / str(rate) / split / n).is_file()]
        if missing:
            raise TaskError(f"{src / (split + '.json')} lists {len(missing)} file(s) missing from "
                            f"{src / str(rate) / split}: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    return meta, rate, labels


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
    meta, rate, split_names = read_source(src)  # everything the task folder says, checked before any write
    settings = _settings(seed, snr_db, rooms, brir_dirs, noise_dirs, mode, src)
    record = out / "nathear.json"
    if out.exists() and any(out.iterdir()):
        if not record.exists():
            raise FileExistsError(f"{out} exists, is not empty and is not a Nat-HEAR build; choose a new folder")
        if read_json(record)["settings"] != settings:
            raise FileExistsError(f"{out} was built with other settings ({record}); choose a new folder")
    out.mkdir(parents=True, exist_ok=True)
    write_json(record, {"settings": settings, "complete": False}, indent=2)

    n_out = int(round(meta["sample_duration"] * SR)) if meta.get("sample_duration") else None
    synth = synth or make_synth(seed, snr_db, rooms, brir_dirs, noise_dirs)
    t0, stats = time.perf_counter(), {"rendered": 0, "skipped": 0, "files": 0}
    (out / "scenes").mkdir(exist_ok=True)
    split_labels = {}
    for split in meta["splits"]:
        labels = split_names[split]
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
    stats = {}
    for t in tasks:  # one broken task does not stop the others; its error is returned in its place
        try:
            stats[t.name] = build_task(t, out / t.name, synth=synth, progress=progress, **kw)
        except (TaskError, FileExistsError, FileNotFoundError) as e:
            print(f"error: task {t.name}: {e}", file=sys.stderr)
            stats[t.name] = {"error": str(e)}
    return stats


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
    a = p.parse_args(argv)
    try:
        stats = build(a.src, a.out, seed=a.seed, snr_db=a.snr_db, rooms=a.rooms, brir_dirs=a.brir_dir,
                      noise_dirs=a.noise_dir, progress=not a.quiet, workers=a.workers)
        for name, st in stats.items():
            print(f"{name}: failed ({st['error']})" if "error" in st else
                  f"{name}: {st['files']} files, {st['rendered']} rendered, {st['skipped']} already done, "
                  f"{st['seconds']:.1f} s")
    except (ValueError, FileExistsError, FileNotFoundError) as e:  # TaskError is a ValueError
        print(f"error: {e}", file=sys.stderr)
        return 2
    failed = sorted(n for n, st in stats.items() if "error" in st)
    if failed:
        print(f"error: {len(failed)} of {len(stats)} tasks failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
