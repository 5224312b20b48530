"""Reading GRAM weights: wrapper prefix, an explicit official -> encoder rename table, strict loading
(gram_spec §3.3-3.4, Appendix C).  Weights are never unpickled: only safetensors files are read.

Official files hold the Lightning module's state dict (GRAM-T `GRAMT` / GRAM-M `GRAMM`), possibly under
one wrapper prefix (`model.` in the HEAR runtime wrapper, `encoder.model.` in a Hub wrapper).  Reading
one is a pure dict -> dict conversion (timm's `checkpoint_filter_fn` idea):

1. the prefix is whatever precedes the one key ending in `cls_token`; every other key must carry it,
   except copies of the front-end tables (`...melspec.spectrogram.window`, `...melspec.mel_scale.fb`)
   that wrappers keep under their own name;
2. the backbone is `transformer` when `encoder.layers.*` keys exist, `mamba` when `encoder_v.*` do;
3. keys are renamed by the backbone's ordered (official, ours) table `RENAMES` (first match wins);
4. the pretraining-only keys (`HEAD_PREFIXES`: MW-MAE decoder, mask token, decoder positions, GRAM-M's
   unused `encoder_norm`) are split off: inference drops them, after checking each one present against
   the explicit table `head_shapes(config)`; training (`training/pretrain_model.py`) requires all of them.

The front-end tables are optional (the official export of one commit lacks them, §3.3); when present
they must equal the recipe's.  Every other encoder key is required; a missing, unexpected or wrongly
shaped key is an error that names the keys.  Our own exports are written with the official (prefix-free)
names, so they are read by the same path.
"""

import json
import os
from dataclasses import dataclass

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .model import GramConfig, GramEncoder, front_end
from .outputs import atomic_path, write_text

FORMAT = "hear_gram"
MEL_KEYS = ("melspec.spectrogram.window", "melspec.mel_scale.fb")
OPTIONAL_KEYS = frozenset(MEL_KEYS)  # encoder keys a file may lack

# Official key -> our key, per backbone.  A rule (old, new) applies to a key equal to `old` or, when
# `old` ends with "." or "_", starting with it; the first applicable rule wins, unmatched keys stay.
RENAMES = {
    "transformer": (
        ("encoder.layers.encoder_layer_", "backbone.layers."),
        ("encoder.pos_embedding", "pos_embed"),
        ("encoder.", "backbone."),
        ("patch_embed.proj.", "patch_embed."),
    ),
    "mamba": (
        ("encoder_pos_embed", "pos_embed"),
        ("encoder_v.", "backbone."),
        ("patch_embed.proj.", "patch_embed."),
        ("decoder_v.", "decoder_blocks."),
    ),
}
# Pretraining-only keys (our names): dropped for inference, required for training (gram_spec §4).
HEAD_PREFIXES = ("mask_token", "decoder_pos_embed", "decoder_embed.", "decoder_blocks.", "decoder_norm.",
                 "spec_pred.", "encoder_norm.")


class CheckpointError(ValueError):
    """A weights file that does not match the model it is loaded into."""


def _short(keys, n=8):
    keys = sorted(keys)
    more = f" ... (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def _rename(key: str, rules) -> str:
    for old, new in rules:
        if key == old or (old[-1] in "._" and key.startswith(old)):
            return new + key[len(old):]
    return key


def is_head_key(key: str) -> bool:
    return any(key == p or (p.endswith(".") and key.startswith(p)) for p in HEAD_PREFIXES)


@dataclass(frozen=True)
class Layout:
    """How a file's keys map to ours: `prefix` (stripped), `backbone`, `keys` (file key -> our key, for
    every key under the prefix) and `mel_copies` (front-end tables stored outside the prefix)."""

    prefix: str
    backbone: str
    keys: dict
    mel_copies: tuple

    @property
    def encoder_keys(self) -> dict:
        return {k: v for k, v in self.keys.items() if not is_head_key(v)}

    @property
    def head_keys(self) -> dict:
        return {k: v for k, v in self.keys.items() if is_head_key(v)}

    def describe(self) -> str:
        return f"{self.backbone} (GRAM-{'T' if self.backbone == 'transformer' else 'M'}), prefix {self.prefix!r}"


def parse_keys(keys) -> Layout:
    """Detect the wrapper prefix and backbone of a GRAM state dict's keys and map them to ours."""
    keys = list(keys)
    cls = [k for k in keys if k == "cls_token" or k.endswith(".cls_token")]
    if len(cls) != 1:
        what = "no key ends in 'cls_token'" if not cls else f"several keys end in 'cls_token' ({_short(cls)})"
        raise CheckpointError(f"not a GRAM checkpoint: {what} (first keys: {_short(keys)})")
    prefix = cls[0][: -len("cls_token")]
    outside = [k for k in keys if not k.startswith(prefix)]
    stray = [k for k in outside if not k.endswith(MEL_KEYS)]
    if stray:
        raise CheckpointError(f"keys outside the wrapper prefix {prefix!r} ({len(stray)}): {_short(stray)}")
    inner = [k[len(prefix):] for k in keys if k.startswith(prefix)]
    if any(k.startswith("encoder_v.") for k in inner):
        backbone = "mamba"
    elif any(k.startswith("encoder.layers.") for k in inner):
        backbone = "transformer"
    else:
        raise CheckpointError(f"checkpoint under prefix {prefix!r} has neither GRAM-T encoder keys "
                              f"('encoder.layers.*') nor GRAM-M ones ('encoder_v.*')")
    mapping = {prefix + k: _rename(k, RENAMES[backbone]) for k in inner}
    seen = {}
    for src, dst in mapping.items():
        if dst in seen:
            raise CheckpointError(f"{seen[dst]!r} and {src!r} both map to {dst!r}")
        seen[dst] = src
    return Layout(prefix, backbone, mapping, tuple(sorted(outside)))


def detect_layout(keys) -> str:
    """A one-line description of a state dict's layout (backbone and prefix)."""
    return parse_keys(keys).describe()


def from_official(state_dict: dict) -> tuple:
    """Official (any prefix) -> (encoder state dict, head state dict, layout), our key names; mel copies
    outside the prefix are returned under the encoder's `melspec.*` names when the prefix lacks them."""
    layout = parse_keys(state_dict)
    enc, head = {}, {}
    for src, dst in layout.keys.items():
        (head if is_head_key(dst) else enc)[dst] = state_dict[src]
    for src in layout.mel_copies:
        dst = next(m for m in MEL_KEYS if src.endswith(m))
        if dst in enc and not torch.equal(enc[dst], state_dict[src]):
            raise CheckpointError(f"{src!r} differs from {layout.prefix + dst!r}")
        enc.setdefault(dst, state_dict[src])
    return enc, head, layout


def to_official(state_dict: dict, backbone: str) -> dict:
    """Our key names (encoder and head) -> the official Lightning-module names (no prefix)."""
    rules = [(new, old) for old, new in RENAMES[backbone]]
    return {_rename(k, rules): v for k, v in state_dict.items()}


def head_shapes(c: GramConfig) -> dict:
    """The pretraining-only keys of a config, our names -> shapes (the MW-MAE decoder, gram_spec §4;
    `training/pretrain_model.py` builds exactly these, a test asserts it)."""
    dd, hid, p = c.decoder_dim, 4 * c.decoder_dim, c.patch_dim
    s = {"mask_token": (1, 1, dd), "decoder_pos_embed": (1, c.n_tokens, dd), "decoder_embed.weight": (dd, c.dim),
         "decoder_embed.bias": (dd,), "decoder_norm.weight": (dd,), "decoder_norm.bias": (dd,),
         "spec_pred.0.weight": (p, dd), "spec_pred.0.bias": (p,)}
    for i in range(c.decoder_depth):
        b = f"decoder_blocks.{i}."
        s.update({b + "norm1.weight": (dd,), b + "norm1.bias": (dd,), b + "wmha.qkv.weight": (3 * dd, dd),
                  b + "wmha.qkv.bias": (3 * dd,), b + "wmha.proj.weight": (dd, dd), b + "wmha.proj.bias": (dd,),
                  b + "norm2.weight": (dd,), b + "norm2.bias": (dd,), b + "mlp.fc1.weight": (hid, dd),
                  b + "mlp.fc1.bias": (hid,), b + "mlp.fc2.weight": (dd, hid), b + "mlp.fc2.bias": (dd,)})
        for h, w in enumerate(c.decoder_windows):
            if w:
                s[f"{b}wmha.attn_heads.{h}.relative_position_bias_table"] = (2 * w - 1, 1)
                s[f"{b}wmha.attn_heads.{h}.relative_position_index"] = (w, w)
    if c.encoder == "mamba":  # present in official GRAM-M checkpoints, unused in forward (gram_spec §3.2)
        s.update({"encoder_norm.weight": (c.dim,), "encoder_norm.bias": (c.dim,)})
    return s


def encoder_shapes(c: GramConfig) -> dict:
    """Our encoder's keys -> shapes, from a parameter-free (meta-device) build."""
    with torch.device("meta"):
        enc = GramEncoder(c)
    return {k: tuple(v.shape) for k, v in enc.state_dict().items()}


def mismatches(shapes: dict, c: GramConfig, require_head: bool = False, layout: Layout = None) -> list:
    """Problems of a state dict (our names -> shapes, encoder and head keys) against config `c`:
    missing / unexpected / wrongly shaped keys, one line per kind ([] = loads).  With `layout`, keys
    are named as in the file (official names under its prefix)."""
    if layout is None:
        name = str
    else:
        back = {v: k for k, v in layout.keys.items()}
        rules = [(new, old) for old, new in RENAMES[layout.backbone]]
        name = lambda k: back.get(k) or layout.prefix + _rename(k, rules)  # noqa: E731
    want = encoder_shapes(c)
    head_want = head_shapes(c)
    enc = {k: v for k, v in shapes.items() if not is_head_key(k)}
    head = {k: v for k, v in shapes.items() if is_head_key(k)}
    out = []
    missing = set(want) - set(enc) - OPTIONAL_KEYS
    if require_head:
        missing |= set(head_want) - set(head)
    unexpected = (set(enc) - set(want)) | (set(head) - set(head_want))
    if missing:
        out.append(f"missing keys ({len(missing)}): {_short(map(name, missing))}")
    if unexpected:
        out.append(f"unexpected keys ({len(unexpected)}): {_short(map(name, unexpected))}")
    both = {**want, **head_want}
    bad = [f"{name(k)}: checkpoint {tuple(v)} vs model {both[k]}" for k, v in sorted(shapes.items())
           if k in both and tuple(v) != both[k]]
    if bad:
        out.append("shape mismatch: " + "; ".join(bad[:8]) + (f" (+{len(bad) - 8} more)" if len(bad) > 8 else ""))
    return out


def encoder_state(config: GramConfig, enc_sd: dict) -> dict:
    """Our encoder keys -> tensors with the front-end tables filled in from the recipe when absent
    (and checked against it when present)."""
    recipe = {"melspec." + k: v for k, v in front_end(config).state_dict().items()}
    enc_sd = dict(enc_sd)
    for k in set(MEL_KEYS) & set(enc_sd):
        dt = enc_sd[k].dtype
        # a float16/bfloat16 file holds the tables rounded: compare at its precision, then use the float32 recipe
        if not torch.allclose(enc_sd[k].float(), recipe[k].to(dt).float(), rtol=1e-6, atol=1e-7):
            raise CheckpointError(f"{k} differs from the log-mel recipe of gram_spec §1.1")
        if dt != torch.float32:
            del enc_sd[k]
    return {**recipe, **enc_sd}


def load_encoder(config: GramConfig, state_dict: dict) -> GramEncoder:
    """A `GramEncoder(config)` holding the weights of `state_dict` (any official layout or our export;
    pretraining-only keys are checked and dropped).  The parameters are the file's tensors (float32)."""
    enc_sd, head_sd, layout = from_official(state_dict)
    problems = mismatches({k: tuple(v.shape) for k, v in {**enc_sd, **head_sd}.items()}, config, layout=layout)
    if problems:
        raise CheckpointError("checkpoint does not match the model: " + "; ".join(problems))
    with torch.device("meta"):  # no values drawn, no memory: the file's tensors are assigned
        encoder = GramEncoder(config)
    full = encoder_state(config, enc_sd)
    encoder.load_state_dict({k: full[k].to(v.dtype) for k, v in encoder.state_dict().items()}, strict=True,
                            assign=True)
    return encoder.eval()


def infer_config(state_dict: dict, base: GramConfig = None, num_heads: int = None) -> GramConfig:
    """Architecture from tensor shapes (Appendix C step 3); other fields (log_eps, head counts, the
    decoder when the file has none) from `base`.  `state_dict` values may be tensors or shapes.  The
    encoder's head count is not in the shapes: it is `num_heads` when given (a config says it), else the
    base's (12 for the official variants; documented in the README), and an error when that does not divide
    the width."""
    base = base or GramConfig()
    layout = parse_keys(state_dict)
    sd = {layout.keys[k]: tuple(getattr(v, "shape", v)) for k, v in state_dict.items() if k in layout.keys}
    w = sd.get("patch_embed.weight")
    if w is None or len(w) != 4:
        raise CheckpointError("checkpoint has no 4-D patch embedding ('patch_embed.proj.weight')")
    dim, in_ch, fs, ts = w
    mamba = layout.backbone == "mamba"
    depth = len({k.split(".")[2] for k in sd if k.startswith("backbone.layers.")})
    fields = dict(encoder=layout.backbone, patch=(fs, ts), in_channels=in_ch, dim=dim, depth=depth)
    if not mamba and num_heads is not None:
        fields["num_heads"] = num_heads
    elif not mamba and dim % base.num_heads:
        raise CheckpointError(f"the weights hold a {dim}-wide transformer encoder and no config: its attention head "
                              f"count cannot be read from the tensors, and the variant's {base.num_heads} heads do not "
                              f"divide {dim}; put hear_gram's config.json beside the weights (hear_gram.checkpoint."
                              f"save_model writes one)")
    if not mamba:
        fields["mlp_dim"] = sd["backbone.layers.0.mlp.0.weight"][0]
    # the decoder, when the file has it; head counts are not in the shapes: they come from `base`
    if "decoder_embed.weight" in sd:
        fields["decoder_dim"] = sd["decoder_embed.weight"][0]
    dec_depth = len({k.split(".")[1] for k in sd if k.startswith("decoder_blocks.")})
    if dec_depth:
        windows = []
        for h in range(base.decoder_heads):
            t = sd.get(f"decoder_blocks.0.wmha.attn_heads.{h}.relative_position_bias_table")
            windows.append(0 if t is None else (t[0] + 1) // 2)
        fields.update(decoder_windows=tuple(windows), decoder_depth=dec_depth)
    return GramConfig(**{**base.to_dict(), **fields})


# -- files ----------------------------------------------------------------------------------------
def _check_path(path: str) -> str:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"weights file not found: {path}")
    if not path.endswith(".safetensors"):
        raise CheckpointError(f"{path}: only .safetensors weights are read (pickled .ckpt/.pt files are never "
                              f"loaded); convert a trusted Lightning checkpoint with "
                              f"`python -m hear_gram.cli convert IN.ckpt OUT.safetensors`")
    return path


def read_header(path: str) -> tuple:
    """-> ({key: shape}, {key: dtype name}, metadata) from the safetensors header only."""
    path = _check_path(path)
    try:
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
            shapes, dtypes = {}, {}
            for k in f.keys():
                s = f.get_slice(k)
                shapes[k], dtypes[k] = tuple(s.get_shape()), s.get_dtype()
        return shapes, dtypes, meta
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: corrupt or unreadable safetensors file ({e})") from e


def read_safetensors(path: str) -> tuple:
    """-> (state dict, metadata dict).  Clear errors for missing, pickled or corrupt files."""
    path = _check_path(path)
    try:
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
            return {k: f.get_tensor(k) for k in f.keys()}, meta
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: corrupt or unreadable safetensors file ({e})") from e


def read_tensors(path: str, keys) -> dict:
    """`keys` of a safetensors file, copied into memory the tensors own: a model never depends on the file
    staying unchanged (no SIGBUS when it is truncated later), and the pages of tensors not asked for are
    never touched.  The file is validated by `read_header` first.  It is reopened per tensor so that the
    memory map of the tensors already copied is released (one map for all would double the peak RSS)."""
    read_header(path)
    out = {}
    for k in keys:
        with safe_open(path, framework="pt") as f:
            out[k] = f.get_tensor(k).clone()
    return out


FLOAT_DTYPES = ("F32", "F16", "BF16", "F64")  # safetensors dtype names a weights file may use


def check_dtypes(path: str, dtypes: dict) -> None:
    """The encoder's weights must be floating point: an integer or boolean tensor is not a trained weight to cast
    to float.  float16 / bfloat16 / float64 files load, cast to float32.  (The pretraining head holds integer
    index buffers; it is never loaded for inference.)"""
    bad = sorted(f"{k} ({d})" for k, d in dtypes.items() if d not in FLOAT_DTYPES)
    if bad:
        raise CheckpointError(f"{path}: weights must be floating point ({', '.join(FLOAT_DTYPES)}); "
                              f"{len(bad)} tensor(s) are not: {_short(bad)}")


def load_encoder_file(path: str, config: GramConfig) -> GramEncoder:
    """`load_encoder` reading only the encoder's tensors (and the front-end copies) from `path`; the
    pretraining head is checked from the header and never read."""
    shapes, dtypes, _ = read_header(path)
    layout = parse_keys(shapes)
    check_dtypes(path, {k: dtypes[k] for k in list(layout.encoder_keys) + list(layout.mel_copies)})
    head = {k: shapes[k] for k in layout.head_keys}
    sd = read_tensors(path, list(layout.encoder_keys) + list(layout.mel_copies))
    # the head's shapes are checked by load_encoder through zero-size stand-ins of the right shape
    sd.update({k: torch.empty(s, device="meta") for k, s in head.items()})
    return load_encoder(config, sd)


def official_state_dict(model) -> dict:
    """A GramEncoder's or a pretraining model's weights under the official key names."""
    if hasattr(model, "official_state_dict"):
        return model.official_state_dict()
    return to_official(model.state_dict(), model.config.encoder)


def save_model(model, folder: str, extra_config: dict = None) -> tuple:
    """Write `model.safetensors` (official key names, no prefix) + `config.json` into `folder`,
    atomically per file.  `model`: a `GramEncoder` (an encoder-only file) or training's pretraining
    model (the full official set)."""
    os.makedirs(folder, exist_ok=True)
    cfg = {"format": FORMAT, "format_version": 1, "config": model.config.to_dict(), **(extra_config or {})}
    sd = {k: v.detach().cpu().contiguous() for k, v in official_state_dict(model).items()}
    w_path, c_path = os.path.join(folder, "model.safetensors"), os.path.join(folder, "config.json")
    with atomic_path(w_path) as tmp:  # also gives the file the usual 0644-style mode (safetensors makes 0600)
        save_file(sd, tmp, metadata={"format": FORMAT, "config": json.dumps(model.config.to_dict())})
    write_text(c_path, json.dumps(cfg, indent=2))
    return w_path, c_path


def _config(d, where: str) -> GramConfig:
    if not isinstance(d, dict):
        raise CheckpointError(f"{where}: the config is a {type(d).__name__}, not an object of GramConfig fields")
    try:
        return GramConfig.from_dict(d)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{where}: {e}") from None


def config_from_files(weights_meta: dict, config_json: str = None, weights: str = "the weights") -> GramConfig:
    """Our config, from the safetensors metadata (the file's own, embedded by save_model) and/or `config.json`
    beside the weights; None for official files (which carry neither).  When both exist they must agree: the
    file's own config is never silently overridden.  A malformed config.json, a missing 'config' object, wrong
    types or values are CheckpointErrors naming the file."""
    embedded = beside = None
    if weights_meta.get("format") == FORMAT and "config" in weights_meta:
        try:
            d = json.loads(weights_meta["config"])
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{weights}: malformed config in the safetensors metadata ({e})") from None
        embedded = _config(d, f"{weights} (embedded config)")
    if config_json and os.path.exists(config_json):
        try:
            with open(config_json, encoding="utf-8") as f:
                d = json.load(f)
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{config_json}: malformed JSON ({e.msg} at line {e.lineno} column {e.colno})") \
                from None
        except UnicodeDecodeError as e:
            raise CheckpointError(f"{config_json}: not a text file ({e.reason})") from None
        if not isinstance(d, dict):
            raise CheckpointError(f"{config_json}: expected a JSON object, got {type(d).__name__}")
        if d.get("format") == FORMAT:
            if "config" not in d:
                raise CheckpointError(f"{config_json}: no 'config' entry (a {FORMAT!r} config.json holds the "
                                      f"GramConfig fields under 'config')")
            beside = _config(d["config"], config_json)
    if embedded is not None and beside is not None and embedded != beside:
        a, b = embedded.to_dict(), beside.to_dict()
        diff = [k for k in a if a[k] != b[k]]
        raise CheckpointError(f"{config_json} says {', '.join(f'{k}={b[k]!r}' for k in diff)} but {weights} embeds "
                              f"{', '.join(f'{k}={a[k]!r}' for k in diff)}: fix or remove config.json (the "
                              f"weights' own config is never overridden)")
    return embedded or beside


# -- transformers-style Hub repos -----------------------------------------------------------------
# config.json field of the authors' transformers remote code -> GramConfig field (issue 15; read as data,
# transformers is never imported and no remote code runs).
HF_FIELDS = {"patch_size": "patch", "decoder_window_sizes": "decoder_windows", "encoder_hidden_dim": "dim",
             "encoder_num_layers": "depth", "encoder_num_heads": "num_heads", "decoder_embedding_dim": "decoder_dim",
             "num_mel_bins": "n_mels", "input_length": "chunk_frames", "in_channels": "in_channels",
             "num_channels": "in_channels"}
# fields the weights' shapes determine (a config.json that disagrees is an error); the others fill in
SHAPE_FIELDS = ("patch", "in_channels", "dim", "depth", "decoder_dim", "decoder_windows")


def is_transformers_config(d) -> bool:
    return isinstance(d, dict) and d.get("format") != FORMAT and any(
        k in d for k in ("model_type", "architectures", "auto_map"))


def transformers_fields(d: dict, source: str = "config.json") -> dict:
    """GramConfig fields from a transformers `config.json` (model_type `gramt-*`); clear errors for other
    model types and for the ambisonics model (FOA input is not supported)."""
    mt = str(d.get("model_type", ""))
    if not mt.startswith("gramt"):
        raise CheckpointError(f"{source}: model_type {mt!r} is not a GRAM model (expected 'gramt-*')")
    if "ambisonic" in mt:
        raise CheckpointError(f"{source}: model_type {mt!r} is the first-order-ambisonics GRAM (4-channel FOA input "
                              f"features), which hear_gram does not support yet; use a binaural or mono model")
    out = {}
    for k, f in HF_FIELDS.items():
        if k in d and d[k] is not None:
            out[f] = tuple(int(x) for x in d[k]) if isinstance(d[k], (list, tuple)) else int(d[k])
    strides = (d.get("frequency_stride"), d.get("time_stride"))
    if "patch" in out and any(s is not None and int(s) != p for s, p in zip(strides, out["patch"])):
        raise CheckpointError(f"{source}: strides {strides} differ from patch_size {out['patch']}: overlapping "
                              f"patches are not supported")
    out.setdefault("in_channels", 1 if "mono" in mt else 2)
    return out


def resolve_config(shapes: dict, weights_meta: dict, config_json: str = None, base: GramConfig = None,
                   weights: str = "the weights") -> tuple:
    """-> (GramConfig, where it came from).  hear_gram's own config.json / metadata first; else the weights'
    shapes, completed (and cross-checked) by a transformers config.json when the repo has one.  Errors name
    `weights` or the config file."""
    own = config_from_files(weights_meta, config_json, weights)  # a malformed config.json is an error here
    if own is not None:
        return own, "hear_gram config"
    d = None
    if config_json and os.path.exists(config_json):
        with open(config_json) as f:
            d = json.load(f)
    hf = transformers_fields(d, config_json) if is_transformers_config(d) else {}
    try:
        cfg = infer_config(shapes, base=base, num_heads=hf.get("num_heads"))
    except (CheckpointError, ValueError) as e:
        raise CheckpointError(f"{weights}: {e}") from None
    if not hf:
        return cfg, "tensor shapes"
    ours = set(parse_keys(shapes).keys.values())
    has = {"decoder_dim": "decoder_embed.weight" in ours,
           "decoder_windows": any(k.startswith("decoder_blocks.") for k in ours)}
    fixed = [f for f in SHAPE_FIELDS if has.get(f, True)]
    bad = [f"{f}: config.json {hf[f]} vs weights {getattr(cfg, f)}" for f in fixed
           if f in hf and hf[f] != getattr(cfg, f)]
    if bad:
        raise CheckpointError(f"{config_json} does not describe the weights: " + "; ".join(bad))
    try:
        cfg = GramConfig(**{**cfg.to_dict(), **{f: v for f, v in hf.items() if f not in fixed}})
    except ValueError as e:
        raise CheckpointError(f"{config_json}: {e}") from None
    return cfg, f"transformers config (model_type {d.get('model_type')!r}) + tensor shapes"
