"""HEAR task folders on disk: the one module that reads and writes them.

A task folder holds `task_metadata.json`, `<split>.json` ({file name: label}), `labelvocabulary.csv` (classification)
and the audio in `<rate>/<split>/<file name>`; heareval's embedding output holds `<split>.embeddings.npy` (a raw
float32 memmap), `<split>.embedding-dimensions.json` and `<split>.target-labels.pkl`.

Writers are atomic (temporary name + rename), so an interrupted build never leaves a truncated file under its
final name.  Audio is 32 kHz (`SR`, the pipeline rate of training.sources).
"""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np

from hear_gram.outputs import atomic_path, write_text

from .sources import FS as SR
from .sources import resample

RATES = (16000, 22050, 32000, 44100, 48000)


def is_task(path) -> bool:
    return (Path(path) / "task_metadata.json").is_file()


class TaskError(ValueError):
    """A task folder that cannot be read as a HEAR task; the message names the file."""


def read_json(path):
    """JSON file -> object; a missing or malformed file is a TaskError naming it."""
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise TaskError(f"{path} not found") from None
    except json.JSONDecodeError as e:
        raise TaskError(f"{path}: malformed JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    except UnicodeDecodeError as e:
        raise TaskError(f"{path}: not a text file ({e.reason})") from None


def confined_name(name, where) -> str:
    """A file or split name from a task's JSON, which must stay inside its folder: a relative path without
    '..' (a task folder is downloaded data: it never decides where we read or write)."""
    p = Path(name) if isinstance(name, str) else None
    if p is None or not name or p.is_absolute() or ".." in p.parts or "\\" in name or name != p.as_posix():
        raise TaskError(f"{where}: name {name!r} is not a plain relative path inside the task folder (absolute "
                        f"names, '..' and empty names are refused)")
    return name


def read_metadata(task) -> dict:
    """task_metadata.json, checked: a dict with a 'splits' list of plain names and an optional positive
    'sample_duration'."""
    path = Path(task) / "task_metadata.json"
    meta = read_json(path)
    if not isinstance(meta, dict):
        raise TaskError(f"{path}: expected a JSON object, got {type(meta).__name__}")
    splits = meta.get("splits")
    if not isinstance(splits, list) or not splits:
        raise TaskError(f"{path} has no 'splits' list (got {splits!r})")
    for s in splits:
        if "/" in confined_name(s, f"{path} 'splits'"):
            raise TaskError(f"{path} 'splits': split name {s!r} contains a '/'")
    d = meta.get("sample_duration")
    if d is not None and (isinstance(d, bool) or not isinstance(d, (int, float)) or not 0 < d < float("inf")):
        raise TaskError(f"{path}: sample_duration={d!r} must be a positive number of seconds or null")
    return meta


def read_labels(task, split: str) -> dict:
    """{file name: label} of `<split>.json`, every name confined to the task folder."""
    path = Path(task) / f"{split}.json"
    labels = read_json(path)
    if not isinstance(labels, dict):
        raise TaskError(f"{path}: expected a JSON object {{file name: label}}, got {type(labels).__name__}")
    for name in labels:
        confined_name(name, path)
    return labels


def write_json(path, obj, indent=None) -> None:
    """Atomic JSON write (temporary file + rename; the temporary file is removed on failure)."""
    write_text(path, json.dumps(obj, indent=indent))


def read_vocabulary(task) -> list[str]:
    """Labels of labelvocabulary.csv in index order."""
    lines = (Path(task) / "labelvocabulary.csv").read_text().splitlines()[1:]
    return [line.split(",", 1)[1] for line in lines if line]


def write_vocabulary(task, labels) -> None:
    write_text(Path(task) / "labelvocabulary.csv", "idx,label\n" + "".join(f"{i},{v}\n" for i, v in enumerate(labels)))


def source_rate(task: Path) -> int:
    """The 32000 folder when present, else the highest sample rate folder present."""
    rates = sorted(int(p.name) for p in Path(task).iterdir() if p.is_dir() and p.name.isdigit())
    if not rates:
        raise FileNotFoundError(f"{task}: no sample-rate folder (expected one of {RATES})")
    return SR if SR in rates else rates[-1]


def read_clip(path: Path, n_out: int | None) -> tuple[np.ndarray, int]:
    """Mono float32 clip at 32 kHz (resampled if needed), cut or zero-padded to n_out samples when given."""
    import soundfile as sf

    try:
        x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, TypeError) as e:  # soundfile's LibsndfileError is a RuntimeError
        raise TaskError(f"cannot read {path}: {e}") from None
    x = resample(x.mean(axis=1), sr, SR)
    if n_out is not None:
        x = x[:n_out] if len(x) >= n_out else np.pad(x, (0, n_out - len(x)))
    return np.ascontiguousarray(x, np.float32), sr


def write_wav(path: Path, audio: np.ndarray) -> None:
    """(channels, n) or (n,) float -> 16-bit PCM wav at 32 kHz, written under a temporary name and renamed."""
    import soundfile as sf

    with atomic_path(path, suffix=".wav") as tmp:  # removed again if the write fails (full disk)
        sf.write(tmp, np.asarray(audio, np.float32).T, SR, subtype="PCM_16", format="WAV")


def check_paths(src: Path, out: Path) -> None:
    """Refuse any OUT that would write into (or replace) the source."""
    s, o = Path(src).resolve(), Path(out).resolve()
    if s == o or s in o.parents or o in s.parents:
        raise ValueError(f"refusing to write {out} : it is the source {src}, inside it, or above it")


def dir_size(path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def read_split(task, split: str):
    """(names, audio (N, C, n) float32 or a list of (C, n) when lengths differ, labels) of one 32 kHz split."""
    import soundfile as sf

    task = Path(task)
    labels = read_labels(task, split)
    names = sorted(labels)
    clips = []
    for n in names:
        path = task / str(SR) / split / n
        x, sr = sf.read(str(path), dtype="float32", always_2d=True)
        if sr != SR:
            raise ValueError(f"{path}: sample rate {sr} Hz, expected {SR} (a 32 kHz task folder)")
        clips.append(x.T)
    same = len({c.shape for c in clips}) == 1
    return names, (np.stack(clips) if same and clips else clips), [labels[n] for n in names]


def read_heareval_split(emb_task_dir, split: str):
    """(X (N, D), labels) from heareval's embedding output: `<split>.embeddings.npy` is a raw float32 memmap of
    the shape in `<split>.embedding-dimensions.json`, labels in `<split>.target-labels.pkl` (same order)."""
    d = Path(emb_task_dir)
    shape = tuple(read_json(d / f"{split}.embedding-dimensions.json"))
    x = np.array(np.memmap(d / f"{split}.embeddings.npy", dtype=np.float32, mode="r", shape=shape))
    with open(d / f"{split}.target-labels.pkl", "rb") as f:
        labels = pickle.load(f)
    return x, labels


__all__ = ["RATES", "SR", "TaskError", "check_paths", "confined_name", "read_labels", "read_metadata", "dir_size", "is_task", "read_clip", "read_heareval_split", "read_json",
           "read_split", "read_vocabulary", "source_rate", "write_json", "write_vocabulary", "write_wav"]
