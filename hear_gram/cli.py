"""`hear-gram` command line.

    hear-gram convert IN.ckpt OUT.safetensors   # a trusted official Lightning checkpoint -> safetensors
    hear-gram smoke [--variant gram_t_patch]    # embeds a generated binaural clip with local weights
"""

import argparse
import math
import os
import sys
import tempfile


def _convert(args):
    import torch
    from safetensors.torch import save_file

    from .checkpoint import detect_layout

    # weights_only=True: only tensors and plain containers are rebuilt, no code from the file runs.
    obj = torch.load(args.input, map_location="cpu", weights_only=True)
    sd = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        sys.exit(f"{args.input}: no tensor state dict found (expected a Lightning checkpoint or a state dict)")
    layout = detect_layout(sd)
    save_file({k: v.contiguous() for k, v in sd.items()}, args.output)
    print(f"wrote {len(sd)} tensors ({layout} layout) to {args.output}")


def demo_clip(seconds: float = 4.0, sample_rate: int = 32000, itd_s: float = 4e-4):
    """A binaural test clip: a chirp that reaches the left ear `itd_s` earlier and 6 dB louder."""
    import torch

    t = torch.arange(int(seconds * sample_rate)) / sample_rate
    f0, f1 = 200.0, 4000.0
    phase = 2 * math.pi * (f0 * t + (f1 - f0) / (2 * seconds) * t ** 2)
    x = 0.3 * torch.sin(phase) * (0.5 + 0.5 * torch.sin(2 * math.pi * 2 * t).abs())
    shift = int(round(itd_s * sample_rate))
    right = torch.cat([torch.zeros(shift), x[:-shift]]) * 0.5
    return torch.stack([x, right])


def _smoke(args):
    import torch

    from . import runtime
    from .checkpoint import save_model
    from .model import VARIANTS, GramModel

    torch.manual_seed(0)
    cfg = VARIANTS[args.variant].config
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "weights")
        save_model(GramModel(cfg), folder)  # random initial weights, official architecture
        model = runtime.load_runtime(args.variant, folder)
        audio = demo_clip()[None]
        emb, ts = model.get_timestamp_embeddings(audio)
        scene = model.get_scene_embeddings(audio)
    print(f"{args.variant}: timestamp embeddings {tuple(emb.shape)} every {float(ts[0, 1] - ts[0, 0]):.0f} ms "
          f"(first at {float(ts[0, 0]):.0f} ms), scene embedding {tuple(scene.shape)}, finite: "
          f"{bool(torch.isfinite(emb).all())}")


def main(argv=None):
    p = argparse.ArgumentParser(prog="hear-gram", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("convert", help="Lightning .ckpt (trusted) -> .safetensors")
    c.add_argument("input")
    c.add_argument("output")
    c.set_defaults(func=_convert)
    s = sub.add_parser("smoke", help="embed a generated binaural clip with random local weights")
    s.add_argument("--variant", default="gram_t_patch")
    s.set_defaults(func=_smoke)
    args = p.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
