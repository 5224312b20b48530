"""Model card (the Hub repo's README.md) for an export folder: architecture, front end, training data,
how to load it, and evaluation results when there are any.

    python -m training.model_card EXPORT_DIR [--results report.md]

`training/export.py` writes one without results; `training/demo.py` rewrites it with the mini Nat-HEAR
table once the evaluation has run.
"""

import argparse
import json
import os

DATA_DEFAULT = ("The embedded default corpus of hear_gram: dry sources synthesised offline (espeak-ng speech, "
                "General-MIDI soundfont notes, procedural events) rendered binaurally in image-source shoebox "
                "rooms with MIT KEMAR HRIRs and a diffuse tail, plus procedural or user noise at 5-40 dB SNR")


PAPER_CROPS = 180_000 * 512  # paper §3.4: 100 k + 80 k steps of 32 clips x 16 crops
MAMBA_ONLY = {"d_state", "d_conv", "expand", "headdim"}
TRANSFORMER_ONLY = {"num_heads", "mlp_dim"}


def _describe_data(training: dict) -> str:
    scene = training.get("scene") or {}
    parts = []
    for key, what in (("source_dirs", "audio folders"), ("source_shards", "tar shards"),
                      ("noise_dirs", "noise folders"), ("brir_dirs", "BRIR folders")):
        if scene.get(key):
            parts.append(f"{what}: {', '.join(map(str, scene[key]))}")
    return DATA_DEFAULT + (" — with user corpora (" + "; ".join(parts) + ")" if parts else "")


def what_this_is(c: dict, t: dict, variant: str) -> str:
    """A plain statement of what the weights are: the official architecture and budget, or a small demo."""
    from hear_gram.model import VARIANTS

    official = VARIANTS[variant].config.to_dict() if variant in VARIANTS else {}
    arch = {k: c.get(k) for k in ("dim", "depth", "num_heads", "mlp_dim") if k in official}
    small = any(official.get(k) != v for k, v in arch.items())
    crops = t.get("global_batch_crops", 0) * t.get("step", 0) if isinstance(t.get("step"), int) else 0
    size = ", ".join(f"{k} {v}" for k, v in arch.items())
    if small:
        head = (f"**A small demonstration model, not GRAM.** Same design as the official {variant} "
                f"but a fraction of its size ({size}; the official model: "
                + ", ".join(f"{k} {official[k]}" for k in arch) + ")")
    else:
        head = f"**The {variant} architecture** ({size})"
    budget = (f", pretrained for {t.get('step', '?')} steps x {t.get('global_batch_crops', '?')} crops"
              + (f" ({100 * crops / PAPER_CROPS:.2g} % of the paper's 180 k x 512 crops)" if crops else ""))
    use = (" It exists to show, end to end and on a CPU, that the pipeline trains a model that beats its own "
           f"random initialisation; for embeddings use the official weights (`hear_gram.{variant}.load_model()`)."
           if small or crops < PAPER_CROPS else "")
    return (head + budget + "." + use + " Evidence of learning: the Evaluation section below (held-out "
            "masked-reconstruction loss, with its interaural part, and probe scores of the trained model vs its "
            "random init, with 95 % intervals), when present.")


def render(config: dict, results_md: str = None) -> str:
    c, t = config["config"], config.get("training", {})
    variant = config.get("variant", "gram_t_patch")
    kind = "GRAM-M (Mamba2)" if c["encoder"] == "mamba" else "GRAM-T (ViT)"
    lines = [
        "---", "library_name: hear_gram", "tags: [audio, binaural, spatial-audio, hear, self-supervised]", "---", "",
        f"# {kind}, {c['patch'][0]}x{c['patch'][1]} patches, trained with hear_gram", "",
        f"A GRAM encoder pretrained as a masked autoencoder on naturalistic binaural scenes "
        f"(`python -m training.train`, preset `{t.get('preset', '?')}`, {t.get('step', '?')} steps).", "",
        what_this_is(c, t, variant), "",
        "## Use", "", "```python", f"import hear_gram.{variant} as gram",
        "model = gram.load_model(\"OWNER/REPO\")   # or this folder", "scene = gram.get_scene_embeddings(audio, model)"
        "   # audio: (n, 2, samples) at 32 kHz, channel 0 = left", "```", "",
        "## Architecture and front end", "",
        "| field | value |", "|---|---|",
    ]
    unused = MAMBA_ONLY if c["encoder"] == "transformer" else TRANSFORMER_ONLY
    lines += [f"| {k} | {v} |" for k, v in c.items() if k not in unused]
    lines += ["", f"Log-mel: 128 HTK bands 50-16000 Hz, 1024-point STFT, 10 ms hop, ln(mel + {c['log_eps']:g}) "
              f"(the offset these weights were trained with).", "",
              "## Training data", "", _describe_data(t) + ".", "",
              "| training setting | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in t.items() if k not in ("scene",)]
    lines += ["", "## Evaluation", ""]
    lines.append(results_md.strip() if results_md else "Not evaluated yet (run `python -m training.report`).")
    return "\n".join(lines) + "\n"


def write(folder: str, results_md: str = None) -> str:
    with open(os.path.join(folder, "config.json")) as f:
        config = json.load(f)
    path = os.path.join(folder, "README.md")
    with open(path + ".tmp", "w") as f:
        f.write(render(config, results_md))
    os.replace(path + ".tmp", path)
    return path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folder")
    p.add_argument("--results", help="markdown file with evaluation results")
    a = p.parse_args(argv)
    print(write(a.folder, open(a.results).read() if a.results else None))


if __name__ == "__main__":
    main()
