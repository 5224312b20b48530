"""Inspection plot: left/right log-mels of one espeak utterance spatialised at -90, 0 and +90 deg azimuth.

    python -m benchmarks.scenes_inspect [/tmp/scenes_inspect.png]
"""
import sys

import matplotlib
import numpy as np
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from training.scenes import SceneSynth  # noqa: E402


def logmel(x: torch.Tensor) -> torch.Tensor:
    """(2, n) -> (2, 128, frames): the model's own front end (hear_gram.features), ln(mel + 1e-5)."""
    from hear_gram.features import LogMel

    return LogMel(log_eps=1e-5)(x).transpose(-1, -2)


def main(out="/tmp/scenes_inspect.png"):
    synth = SceneSynth("smoke", seed=0, split="test")
    speech = synth.pool["speech"][3][1]
    fig, axes = plt.subplots(3, 2, figsize=(11, 8), sharex=True, sharey=True)
    for row, az in enumerate((-90, 0, 90)):
        y, meta = synth.spatialize(speech, azimuth_deg=az, elevation_deg=0, distance_m=2.0, snr_db=30.0, rng=4)
        m = logmel(y)
        ild = 10 * np.log10(float(y[0].square().sum() / y[1].square().sum()))
        for c, name in enumerate(("left", "right")):
            ax = axes[row, c]
            ax.imshow(m[c].numpy(), origin="lower", aspect="auto", vmin=float(m.max()) - 12, vmax=float(m.max()))
            ax.set_title(f"az {az:+d} deg, {name} ear (ILD {ild:+.1f} dB, RT60 {meta['rt60_s']:.2f} s, "
                         f"{meta['noise_type']} noise at 30 dB)", fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("frame (10 ms)")
    for ax in axes[:, 0]:
        ax.set_ylabel("mel bin")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    print(out)


if __name__ == "__main__":
    main(*sys.argv[1:])
