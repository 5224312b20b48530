"""Run visibility for training/train.py: TensorBoard writer (optional dependency) and the reconstruction PNG.

`reconstruction_figure(pred, target, mask, config, title)` takes one crop's prediction and target patches
(N, C * fs * ts) and its mask (N,) bool, and draws channel 0 (left ear) as (mel bin x frame) images: the
masked input, the reconstruction (visible patches from the input), the target.
"""

import os
import sys

import torch

from hear_gram.model import GramConfig
from hear_gram.patching import unpatchify


def reconstruction_figure(pred, target, mask, mcfg: GramConfig, title: str):
    """Channel 0 of one crop: masked input, reconstruction (visible patches from the input), target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def img(p):  # (N, P) patches -> (F, T) of channel 0
        return unpatchify(p[None].float().cpu(), mcfg.patch, mcfg.grid, mcfg.in_channels)[0, 0].numpy()

    m = mask[:, None].cpu()
    target, pred = target.float().cpu(), pred.float().cpu()
    panels = [("input (masked)", img(target.masked_fill(m, float("nan")))),
              ("reconstruction", img(torch.where(m, pred, target))), ("target", img(target))]
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 7), constrained_layout=True)
    for ax, (name, a) in zip(axes, panels):
        ax.imshow(a, origin="lower", aspect="auto", vmin=-3, vmax=3, cmap="magma", interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.set_ylabel("mel bin")
    axes[-1].set_xlabel("frame (10 ms)")
    fig.suptitle(title, fontsize=10)
    return fig


def open_writer(out_dir: str, step: int, enabled: bool):
    if not enabled:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        print("tensorboard is not installed (pip install tensorboard): no TensorBoard logs", file=sys.stderr)
        return None
    return SummaryWriter(os.path.join(out_dir, "tb"), purge_step=step or None)
