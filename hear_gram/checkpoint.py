"""Reading GRAM weights: layout detection, an explicit key mapping, strict loading (gram_spec §3.3-3.4,
Appendix C).

Accepted layouts of a `.safetensors` state dict (detected by sentinel keys, never guessed from
partial matches):

| layout    | example key                                      | mapping                                  |
|-----------|--------------------------------------------------|------------------------------------------|
| `bare`    | `cls_token`, `encoder.layers.encoder_layer_0...` | as is (official Lightning module; also our own export) |
| `runtime` | `model.cls_token`, `mel_spec.melspec.mel_scale.fb` | strip `model.`; `mel_spec.melspec.*` -> `melspec.*` |
| `hub`     | `encoder.model.cls_token`                        | strip `encoder.model.`; `encoder.mel_spec.melspec.*` -> `melspec.*` |

The front-end buffers `melspec.spectrogram.window` and `melspec.mel_scale.fb` are optional (the
official export of one commit lacks them, §3.3); when present they must equal the recipe's tables.
Every other key of the model is required; a missing, unexpected or wrongly shaped key is an error
that names the keys.  Weights are never unpickled: only safetensors files are read.
"""

import json
import os

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .model import GramConfig, GramModel
from .outputs import atomic_path, write_text

OPTIONAL_KEYS = frozenset({"melspec.spectrogram.window", "melspec.mel_scale.fb"})
FORMAT = "hear_gram"

# (sentinel key, prefix to strip, renames applied after stripping) — order matters: most specific first.
_LAYOUTS = (
    ("hub", "encoder.model.cls_token", "encoder.model.", {"encoder.mel_spec.melspec.": "melspec."}),
    ("runtime", "model.cls_token", "model.", {"mel_spec.melspec.": "melspec."}),
    ("bare", "cls_token", "", {}),
)


class CheckpointError(ValueError):
    """A weights file that does not match the model it is loaded into."""


def _short(keys, n=8):
    keys = sorted(keys)
    more = f" ... (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def detect_layout(keys) -> str:
    keys = set(keys)
    for name, sentinel, _, _ in _LAYOUTS:
        if sentinel in keys:
            return name
    raise CheckpointError(f"not a GRAM checkpoint: none of the keys 'cls_token', 'model.cls_token', "
                          f"'encoder.model.cls_token' is present (first keys: {_short(keys)})")


def to_model_keys(state_dict: dict) -> dict:
    """Map any accepted layout to the model's own key names (the `bare` layout)."""
    layout = detect_layout(state_dict.keys())
    _, _, prefix, renames = next(x for x in _LAYOUTS if x[0] == layout)
    out = {}
    for k, v in state_dict.items():
        for old, new in renames.items():
            if k.startswith(old):
                k = new + k[len(old):]
                break
        else:
            if not k.startswith(prefix):
                raise CheckpointError(f"key {k!r} does not belong to the {layout!r} layout (prefix {prefix!r})")
            k = k[len(prefix):]
        if k in out:
            # runtime layout stores the mel buffers twice (model.melspec.* and mel_spec.melspec.*)
            if not torch.equal(out[k], v):
                raise CheckpointError(f"two different tensors map to {k!r}")
            continue
        out[k] = v
    return out


def infer_config(state_dict: dict, base: GramConfig = None) -> GramConfig:
    """Architecture from tensor shapes (Appendix C step 3); other fields (log_eps, ...) from `base`."""
    base = base or GramConfig()
    sd = to_model_keys(state_dict)
    w = sd.get("patch_embed.proj.weight")
    if w is None or w.ndim != 4:
        raise CheckpointError("checkpoint has no 4-D 'patch_embed.proj.weight'")
    dim, in_ch, fs, ts = w.shape
    mamba = any(k.startswith("encoder_v.") for k in sd)
    prefix = "decoder_v" if mamba else "decoder_blocks"
    layers = "encoder_v.layers." if mamba else "encoder.layers."
    depth = len({k.split(".")[2] for k in sd if k.startswith(layers)})
    dec_depth = len({k.split(".")[1] for k in sd if k.startswith(prefix + ".")})
    dec_dim = sd["decoder_embed.weight"].shape[0]
    windows = []  # head counts and widths are not in the shapes: they come from `base`
    for h in range(base.decoder_heads):
        t = sd.get(f"{prefix}.0.wmha.attn_heads.{h}.relative_position_bias_table")
        windows.append(0 if t is None else (t.shape[0] + 1) // 2)
    fields = dict(encoder="mamba" if mamba else "transformer", patch=(fs, ts), in_channels=in_ch, dim=dim,
                  depth=depth, decoder_dim=dec_dim, decoder_depth=dec_depth, decoder_windows=tuple(windows))
    if not mamba:
        fields["mlp_dim"] = sd["encoder.layers.encoder_layer_0.mlp.0.weight"].shape[0]
    return GramConfig(**{**base.to_dict(), **fields})


def load_into(model: GramModel, state_dict: dict) -> None:
    """Strictly load `state_dict` (any accepted layout) into `model`; errors name the offending keys."""
    sd = to_model_keys(state_dict)
    own = model.state_dict()
    missing = set(own) - set(sd) - OPTIONAL_KEYS
    unexpected = set(sd) - set(own)
    if missing or unexpected:
        msg = []
        if missing:
            msg.append(f"missing keys ({len(missing)}): {_short(missing)}")
        if unexpected:
            msg.append(f"unexpected keys ({len(unexpected)}): {_short(unexpected)}")
        raise CheckpointError("checkpoint does not match the model: " + "; ".join(msg))
    bad = [f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}" for k, v in sd.items()
           if tuple(v.shape) != tuple(own[k].shape)]
    if bad:
        raise CheckpointError("shape mismatch: " + "; ".join(bad[:8]))
    for k in OPTIONAL_KEYS & set(sd):
        if not torch.allclose(sd[k].float(), own[k].float(), rtol=1e-6, atol=1e-7):
            raise CheckpointError(f"{k} differs from the log-mel recipe of gram_spec §1.1")
    full = {k: sd.get(k, own[k]).to(own[k].dtype) for k in own}
    model.load_state_dict(full, strict=True)


def read_safetensors(path: str) -> tuple:
    """-> (state dict, metadata dict).  Clear errors for missing, pickled or corrupt files."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"weights file not found: {path}")
    if not path.endswith(".safetensors"):
        raise CheckpointError(f"{path}: only .safetensors weights are read (pickled .ckpt/.pt files are never "
                              f"loaded); convert a trusted Lightning checkpoint with "
                              f"`python -m hear_gram.cli convert IN.ckpt OUT.safetensors`")
    try:
        from safetensors import safe_open

        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
        return load_file(path), meta
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: corrupt or unreadable safetensors file ({e})") from e


def save_model(model: GramModel, folder: str, extra_config: dict = None) -> tuple:
    """Write `model.safetensors` (bare layout) + `config.json` into `folder`, atomically per file."""
    os.makedirs(folder, exist_ok=True)
    cfg = {"format": FORMAT, "format_version": 1, "config": model.config.to_dict(), **(extra_config or {})}
    sd = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    w_path, c_path = os.path.join(folder, "model.safetensors"), os.path.join(folder, "config.json")
    with atomic_path(w_path) as tmp:  # also gives the file the usual 0644-style mode (safetensors makes 0600)
        save_file(sd, tmp, metadata={"format": FORMAT, "config": json.dumps(model.config.to_dict())})
    write_text(c_path, json.dumps(cfg, indent=2))
    return w_path, c_path


def config_from_files(weights_meta: dict, config_json: str = None) -> GramConfig:
    """Our config, from `config.json` beside the weights or from the safetensors metadata; None for
    official files (which carry neither)."""
    if config_json and os.path.exists(config_json):
        with open(config_json) as f:
            d = json.load(f)
        if d.get("format") == FORMAT:
            return GramConfig.from_dict(d["config"])
    if weights_meta.get("format") == FORMAT and "config" in weights_meta:
        return GramConfig.from_dict(json.loads(weights_meta["config"]))
    return None
