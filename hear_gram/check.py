"""`hear-gram check WEIGHTS`: will these weights load?  Reads only the safetensors header.

WEIGHTS is a `.safetensors` file, a folder holding `model.safetensors`, or a Hub repo `owner/name[@revision]`.
A Hub file already in the local cache is read there; otherwise `huggingface_hub.get_safetensors_metadata`
fetches the header alone (a few KB, not the weights), plus the repo's small `config.json` if it has one.
The report gives the layout (backbone, wrapper prefix), the variant module that loads it, dtypes, the
parameter count (encoder / pretraining head) and every key or shape mismatch; `check` returns ok = no
mismatch for inference.
"""

import collections
import math
import os

from . import checkpoint, hub
from .model import VARIANTS, variant_for

_DTYPES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64", "I64": "int64"}


def _hub_header(repo_id: str, revision: str):
    """-> (shapes, dtypes, metadata, config.json path or None, where) for a Hub repo."""
    from huggingface_hub import hf_hub_download

    def cached(name):
        try:
            return hf_hub_download(repo_id, name, revision=revision, local_files_only=True)
        except Exception:  # not in the cache
            return None

    config = cached(hub.CONFIG_NAME)
    weights = cached(hub.WEIGHTS_NAME)
    if weights is not None:
        shapes, dtypes, meta = checkpoint.read_header(weights)
        return shapes, dtypes, meta, config, f"{weights} (Hub cache)"
    from huggingface_hub import get_safetensors_metadata

    info = get_safetensors_metadata(repo_id, revision=revision)
    shapes, dtypes, meta = {}, {}, {}
    for f in info.files_metadata.values():
        meta.update(f.metadata or {})
        for k, t in f.tensors.items():
            shapes[k], dtypes[k] = tuple(t.shape), t.dtype
    if config is None:
        try:
            config = hf_hub_download(repo_id, hub.CONFIG_NAME, revision=revision)
        except Exception:  # the repo has none: the shapes suffice
            config = None
    return shapes, dtypes, meta, config, f"{repo_id}{'@' + revision if revision else ''} (header from the Hub)"


def read(spec: str, revision: str = None):
    """-> (shapes, dtypes, metadata, config.json path or None, where) without reading any tensor."""
    spec = os.fspath(spec)
    if os.path.isdir(spec) or os.path.exists(spec):
        w, c = hub.resolve_weights(spec, None)
        shapes, dtypes, meta = checkpoint.read_header(w)
        return shapes, dtypes, meta, c, w
    repo = hub.split_repo_spec(spec)
    if repo is None:
        raise FileNotFoundError(f"{spec!r} is neither a file, a folder, nor a Hub repo id 'owner/name[@revision]'")
    return _hub_header(repo[0], repo[1] or revision)


def check(spec: str, revision: str = None) -> tuple:
    """-> (report lines, ok)."""
    try:
        shapes, dtypes, meta, config_json, where = read(spec, revision)
    except (OSError, checkpoint.CheckpointError) as e:
        return [f"weights: {spec}", f"FAIL: {e}"], False
    except Exception as e:  # the Hub: missing repo, no network, not a safetensors repo ...
        return [f"weights: {spec}", f"FAIL: {type(e).__name__}: {e}"], False
    lines = [f"weights: {where}"]
    counts = collections.Counter(_DTYPES.get(d, d) for d in dtypes.values())
    lines.append("dtype: " + ", ".join(f"{d} ({n} tensors)" for d, n in counts.most_common()))
    try:
        layout = checkpoint.parse_keys(shapes)
    except checkpoint.CheckpointError as e:
        return lines + [f"FAIL: {e}"], False
    mel = f"; front-end tables outside it: {', '.join(layout.mel_copies)}" if layout.mel_copies else ""
    lines.append(f"layout: {layout.describe()}{mel}")
    try:  # what load_model refuses, check refuses: integer or boolean encoder weights
        checkpoint.check_dtypes(where, {k: dtypes[k] for k in list(layout.encoder_keys) + list(layout.mel_copies)})
    except checkpoint.CheckpointError as e:
        return lines + [f"FAIL: {e}"], False
    n = {k: math.prod(s) for k, s in shapes.items()}
    enc = sum(n[k] for k in layout.encoder_keys) + sum(n[k] for k in layout.mel_copies)
    head = sum(n[k] for k in layout.head_keys)
    lines.append(f"parameters (with buffers): {sum(n.values()):,} (encoder and front end {enc:,}; "
                 f"pretraining head {head:,})")
    try:
        base = next(v.config for v in VARIANTS.values() if v.config.encoder == layout.backbone)
        cfg, source = checkpoint.resolve_config(shapes, meta, config_json, base=base)
    except (checkpoint.CheckpointError, ValueError) as e:
        return lines + [f"FAIL: {e}"], False
    variant = variant_for(cfg)
    lines.append(f"variant: {variant or 'none'} ({cfg.patch[0]}x{cfg.patch[1]} patches, {cfg.in_channels} channel(s), "
                 f"dim {cfg.dim}, depth {cfg.depth}; from {source})")
    ours = {layout.keys[k]: s for k, s in shapes.items() if k in layout.keys}
    want_head = checkpoint.head_shapes(cfg)
    got_head = set(layout.head_keys.values()) & set(want_head)
    lines.append("pretraining head: " + ("complete (inference and further training)" if got_head == set(want_head)
                                         else "absent (encoder-only: inference only)" if not got_head
                                         else f"partial ({len(got_head)} of {len(want_head)} keys: inference only)"))
    problems = checkpoint.mismatches(ours, cfg, layout=layout)
    if variant is None:
        problems.append(f"no hear_gram variant has a {cfg.encoder} encoder with {cfg.patch} patches")
    if cfg.in_channels not in (1, 2):
        problems.append(f"{cfg.in_channels} input channels: only mono (1) and binaural (2) models run")
    if problems:
        return lines + [f"mismatch: {p}" for p in problems] + ["FAIL: does not load"], False
    return lines + [f"OK: loads with hear_gram.{variant}.load_model({spec!r})"], True
