"""Training checkpoint -> hear_gram weights folder (`model.safetensors` + `config.json`), optionally pushed to the Hub.

    python -m training.export runs/gram_t exports/gram_t                       # a run folder or its ckpt.pt
    python -m training.export runs/gram_t exports/gram_t --push-to-hub me/gram-t-mine [--private]
    # then: hear_gram.gram_t_patch.load_model("exports/gram_t")  or  load_model("me/gram-t-mine")

The weights are the whole training model (encoder and pretraining head) under the official GRAM key names,
no wrapper prefix (`PretrainModel.official_state_dict`, written by `hear_gram.checkpoint.save_model`), so they
load strictly; inference reads only the encoder's tensors.  `config.json`
carries the architecture, patching and front-end settings, including the log-mel offset the weights were
trained with (`log_eps`, 1e-5 in the training presets, gram_spec §9.1), which the runtime then uses.  The
export is verified by loading it back through `hear_gram.runtime.load_runtime` and comparing embeddings.

`--push-to-hub` uploads the folder with `huggingface_hub.HfApi().upload_folder`; the token comes from the
environment (`HF_TOKEN`) or the huggingface_hub login cache, never from the command line.  Files added to the
folder before the upload (e.g. a model card `README.md`) are uploaded with it.
"""

import argparse
import os
import sys

import torch

from hear_gram.checkpoint import save_model
from training import model_card
from hear_gram.model import GramConfig, variant_for
from hear_gram.runtime import GramRuntime, load_runtime
from hear_gram.outputs import OutputError
from training.pretrain_model import PretrainModel
from training.train import CKPT_NAME, RunError, read_checkpoint

EXPORTED = ("model.safetensors", "config.json")


def variant_of(cfg: GramConfig) -> str:
    """The hear_gram variant module that loads this architecture (encoder kind and patch shape)."""
    name = variant_for(cfg)
    if name is not None:
        return name
    raise ValueError(f"no hear_gram variant has encoder={cfg.encoder!r} and patch={cfg.patch}")


def load_training_model(path: str) -> tuple:
    """A run folder or its ckpt.pt -> (PretrainModel in eval mode, checkpoint dict)."""
    ckpt_path = os.path.join(path, CKPT_NAME) if os.path.isdir(path) else path
    ckpt = read_checkpoint(ckpt_path)
    model = PretrainModel(GramConfig.from_dict(ckpt["model_config"]))
    model.load_official_state_dict(ckpt["model"])
    return model.eval(), ckpt


def training_summary(ckpt: dict) -> dict:
    """What config.json records about the run besides the architecture (`training` entry)."""
    c = ckpt["config"]
    keys = ("variant", "preset", "seed", "scene_preset", "scene", "clips", "crops_per_clip", "input_frames", "lr",
            "min_lr", "warmup_steps", "max_steps", "betas", "weight_decay", "grad_clip", "dtype")
    out = {k: (list(c[k]) if isinstance(c[k], tuple) else c[k]) for k in keys if k in c}
    out.update(step=ckpt["step"], world_size=ckpt["world_size"],
               global_batch_crops=c["clips"] * c["crops_per_clip"] * ckpt["world_size"],
               data="naturalistic binaural scenes from training/scenes.py (embedded corpus unless user corpora "
                    "are listed in `scene`)")
    return out


@torch.no_grad()
def round_trip_error(model: PretrainModel, folder: str, seconds: float = 3.0, seed: int = 0) -> float:
    """Max |embedding difference| between the training model and the exported folder loaded by hear_gram
    (timestamp and scene embeddings of a random binaural clip)."""
    variant = variant_of(model.config)
    g = torch.Generator().manual_seed(seed)
    audio = 0.1 * torch.randn(2, 2, int(seconds * model.config.sample_rate), generator=g)
    ref = GramRuntime(model.encoder, variant).eval()
    loaded = load_runtime(variant, folder).eval()
    errs = []
    for a, b in zip(ref.embed(audio), loaded.embed(audio)):
        errs.append((a - b).abs().max().item())
    return max(errs)


def check_export_dir(path: str, out_dir: str, overwrite: bool = False) -> None:
    """Before any work: out_dir is not the run folder (its config.json would be replaced), not a file, and holds no
    export unless `overwrite`."""
    run = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise OutputError(f"export folder {out_dir} is a file")
    if os.path.isdir(out_dir) and os.path.samefile(run, out_dir):
        raise OutputError(f"export folder {out_dir} is the run folder of {path} (its config.json would be replaced); "
                          f"choose another folder")
    held = [f for f in EXPORTED if os.path.lexists(os.path.join(out_dir, f))]
    if held and not overwrite:
        raise OutputError(f"export folder {out_dir} holds an export ({', '.join(held)}); pass --overwrite to replace it")
    parent = out_dir if os.path.isdir(out_dir) else os.path.dirname(os.path.abspath(out_dir))
    if os.path.isdir(parent) and not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"export folder {out_dir}: {parent} is not writable")


def export(path: str, out_dir: str, verify: bool = True, overwrite: bool = False) -> dict:
    """Write the export folder; returns {"folder", "variant", "step", "max_abs_err" (None without verify)}.
    An existing export in out_dir is replaced only with `overwrite` (checked before the checkpoint is read)."""
    check_export_dir(path, out_dir, overwrite)
    model, ckpt = load_training_model(path)
    variant = variant_of(model.config)
    save_model(model, out_dir, extra_config={"variant": variant, "training": training_summary(ckpt)})
    if not os.path.exists(os.path.join(out_dir, "README.md")):  # keep a card that already has results
        model_card.write(out_dir)
    err = round_trip_error(model, out_dir) if verify else None
    return {"folder": out_dir, "variant": variant, "step": ckpt["step"], "max_abs_err": err}


def push_to_hub(folder: str, repo_id: str, private: bool = False, revision: str = None) -> str:
    """Create `repo_id` if needed and upload the export folder (token from HF_TOKEN / the login cache)."""
    from huggingface_hub import HfApi

    missing = [f for f in EXPORTED if not os.path.exists(os.path.join(folder, f))]
    if missing:
        raise FileNotFoundError(f"{folder} is not an export folder: missing {missing}")
    api = HfApi(token=os.environ.get("HF_TOKEN"))
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    info = api.upload_folder(repo_id=repo_id, folder_path=folder, repo_type="model", revision=revision,
                             commit_message="Upload hear_gram weights (training/export.py)")
    return str(getattr(info, "commit_url", info))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", help="training run folder (holding ckpt.pt) or a ckpt.pt file")
    ap.add_argument("out_dir", help="export folder: model.safetensors + config.json")
    ap.add_argument("--push-to-hub", metavar="REPO", help="also upload the folder to this Hub model repo")
    ap.add_argument("--private", action="store_true", help="create the Hub repo as private")
    ap.add_argument("--revision", help="Hub branch to upload to (default: main)")
    ap.add_argument("--no-verify", action="store_true", help="skip the reload-and-compare check")
    ap.add_argument("--overwrite", action="store_true", help="replace the export already in out_dir")
    args = ap.parse_args(argv)
    try:
        info = export(args.checkpoint, args.out_dir, verify=not args.no_verify, overwrite=args.overwrite)
    except (OutputError, RunError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"exported step {info['step']} ({info['variant']}) to {info['folder']}"
          + ("" if info["max_abs_err"] is None else f"; reload max |embedding diff| = {info['max_abs_err']:.3g}"))
    print(f"load with: hear_gram.{info['variant']}.load_model({info['folder']!r})")
    if args.push_to_hub:
        url = push_to_hub(args.out_dir, args.push_to_hub, private=args.private, revision=args.revision)
        print(f"pushed to {args.push_to_hub}: {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
