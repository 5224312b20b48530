"""Tiny HEAR tasks that a working pipeline must solve far above chance (binaural 32 kHz, 1 s clips).

`bands`: two classes of band-limited noise, "low" (150-600 Hz) and "high" (4-8 kHz): any embedding that keeps
the spectrum separates them (top-1 = 1.0 even for random weights); a broken front end, probe or label mapping
lands near 0.5.
`sides`: white noise from the left (+90 deg), the front (0 deg) or the right (-90 deg), rendered with an
interaural level and time difference (far ear 12 dB down, 0.6 ms late): label = the unit vector [x front,
y left, z up] (the Nat-HEAR localization format); a working embedding + DOA probe lands within a few degrees,
guessing gives a mean error of ~60-90 degrees.
"""

import json
import zlib
from pathlib import Path

import numpy as np

SR = 32000
SIDES = {"left": (0.0, 1.0, 0.0), "front": (1.0, 0.0, 0.0), "right": (0.0, -1.0, 0.0)}
BANDS = {"low": (150.0, 600.0), "high": (4000.0, 8000.0)}


def band_noise(rng, lo, hi, n=SR):
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SR)
    spec[(f < lo) | (f > hi)] = 0
    x = np.fft.irfft(spec, n)
    return x / np.abs(x).max()


def binaural(rng, side, n=SR):
    """(n, 2) white noise from `side` (channel 0 = left ear)."""
    x = rng.standard_normal(n + 64)
    x = 0.5 * x / np.abs(x).max()
    near, far = x[64:], 10 ** (-12 / 20) * x[64 - 19:-19]  # 19 samples = 0.6 ms later at the far ear
    if side == "front":
        return np.stack([near, near], 1)
    return np.stack([near, far] if side == "left" else [far, near], 1)


def write_task(root, kind, sizes=(24, 12, 12), seed=0):
    """Write a HEAR task folder (task_metadata.json, labelvocabulary.csv, <split>.json, 32000/<split>/*.wav)."""
    import soundfile as sf

    task = Path(root) / f"toy_{kind}"
    classes = list(BANDS if kind == "bands" else SIDES)
    for s_i, (split, n) in enumerate(zip(("train", "valid", "test"), sizes)):
        (task / str(SR) / split).mkdir(parents=True)
        labels = {}
        for i in range(n):
            rng = np.random.default_rng([seed, zlib.crc32(kind.encode()), s_i, i])
            c = classes[i % len(classes)]
            name = f"{split}_{i:04d}.wav"
            if kind == "bands":
                x = band_noise(rng, *BANDS[c])
                audio, labels[name] = 0.5 * np.stack([x, x], 1), [c]
            else:
                audio, labels[name] = binaural(rng, c), list(SIDES[c])
            sf.write(str(task / str(SR) / split / name), audio, SR, subtype="PCM_16")
        (task / f"{split}.json").write_text(json.dumps(labels))
    vocab = "".join(f"{i},{c}\n" for i, c in enumerate(classes)) if kind == "bands" else ""
    (task / "labelvocabulary.csv").write_text("idx,label\n" + vocab)
    meta = {"task_name": f"toy_{kind}", "version": "v1.0", "embedding_type": "scene", "split_mode": "trainvaltest",
            "sample_duration": 1.0, "splits": ["train", "valid", "test"]}
    if kind == "bands":
        meta.update(prediction_type="multiclass", evaluation=["top1_acc"])
    else:
        meta.update(prediction_type="cartesian-regression", evaluation=["doa_mean_deg", "doa_median_deg"])
    (task / "task_metadata.json").write_text(json.dumps(meta, indent=2))
    return task
