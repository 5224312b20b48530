"""The official-implementation parity fixtures (tests/fixtures/official): checkpoint rule, loaders, trimming.

The authors' GRAM code was run once on CPU in float32 with a checkpoint whose trainable tensors follow a
seeded rule (below) and whose deterministic tensors (positional tables, mel filterbank and window,
relative-position indices, GRAM-T's mask token) were recorded.  The folder holds:

    keys.json            every key of the official runtime wrapper's state dict per variant: shape, dtype,
                         and where its value comes from (null = the rule, else a name in fixed.safetensors)
    fixed.safetensors    the recorded deterministic tensors, each stored once (identical across variants)
    inputs.safetensors   the input clips and their official log-mel (identical for the four variants)
    <variant>.safetensors  the official outputs; the large ones (raw frame embeddings, decoder prediction,
                         target patches) as fixed random projections of their last axis, `<name>@proj`

Rule, for key k with shape s: x = RandomState(crc32(k) ^ salt & 0x7fffffff).standard_normal(s) as float32;
value = 1 + 0.1 x for norm weights (last module name contains 'norm' or starts with 'ln', parameter
'weight'), else 0.02 x.

Projection: P = X @ R with R = RandomState(seed + D).standard_normal((D, k)) / sqrt(k) in float64 (D = the
last axis), stored as float32.  ‖(ours − ref) R‖ / ‖ref R‖ estimates the full relative error to a few
percent (k x rows >= 3000 numbers), so a 1e-5 tolerance keeps its meaning and any wrong weight, mel, patch
order or chunk plan still shows up as an O(1) error in every projected row.

`HEAR_GRAM_FIXTURES` points the tests at another folder in this format (e.g. an untrimmed one written by
`trim --proj-dim 0`) or at the full recordings themselves (<variant>_keys.json, <variant>_fixed.safetensors,
<variant>_expected.safetensors).

    python tests/official_fixtures.py trim FULL_DIR [--out DIR] [--proj-dim 64]   # from the full recordings
    python tests/official_fixtures.py checkpoint gramm_frame OUT.safetensors [--prefix model.]
"""

import argparse
import hashlib
import json
import os
import zlib

import numpy as np
import torch
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.environ.get("HEAR_GRAM_FIXTURES") or os.path.join(HERE, "fixtures", "official")
VARIANTS = ("gramt_frame", "gramt_time", "gramm_frame", "gramm_time")
# variant in the fixtures -> hear_gram variant
OFFICIAL = {"gramt_frame": "gram_t_patch", "gramt_time": "gram_t_time",
            "gramm_frame": "gram_m_patch", "gramm_time": "gram_m_time"}
INPUTS = ("audio_binaural", "audio_mono", "binaural_logmel", "mono_logmel")
PROJECTED = ("binaural_runtime_raw", "mono_runtime_raw", "chunk_raw", "train_pred", "train_target_patches")
PROJ_SEED = 20260  # R for a last axis of size D comes from RandomState(PROJ_SEED + D)
PROJ_DIM = 64


# ----------------------------------------------------------------------------- the checkpoint rule

def _is_norm_weight(key):
    parts = key.split(".")
    return parts[-1] == "weight" and ("norm" in parts[-2] or parts[-2].startswith("ln"))


def rule(key, shape, salt=0):
    """The value the recorded checkpoint held for a trainable tensor `key` of `shape`."""
    seed = (zlib.crc32(key.encode()) ^ salt) & 0x7FFFFFFF
    x = np.random.RandomState(seed).standard_normal(int(np.prod(shape)) if shape else 1)
    x = x.reshape(shape).astype(np.float32)
    return (1.0 + 0.1 * x) if _is_norm_weight(key) else 0.02 * x


def _need(folder, name):
    path = os.path.join(folder, name)
    if not os.path.exists(path):
        raise FileNotFoundError(f"parity fixture {path} not found (HEAR_GRAM_FIXTURES={folder!r})")
    return path


def _full(folder, variant):
    """True when `folder` holds the full recordings (<variant>_keys.json, _fixed, _expected.safetensors)."""
    return not os.path.exists(os.path.join(folder, "keys.json")) and \
        os.path.exists(os.path.join(folder, f"{variant}_keys.json"))


def state_dict(variant, folder=None):
    """Official-layout state dict of `variant` (runtime-wrapper keys: 'model.*', 'mel_spec.*')."""
    folder = folder or FIXTURES
    if _full(folder, variant):
        with open(os.path.join(folder, f"{variant}_keys.json")) as f:
            meta = json.load(f)
        salt, fixed = meta["salt"], load_file(os.path.join(folder, f"{variant}_fixed.safetensors"))
        rows = [[e["key"], e["shape"], e["dtype"], e["key"] if e["source"] == "fixed" else None]
                for e in meta["keys"]]
    else:
        with open(_need(folder, "keys.json")) as f:
            meta = json.load(f)
        if variant not in meta["variants"]:
            raise KeyError(f"unknown fixture variant {variant!r}; known: {sorted(meta['variants'])}")
        salt, fixed, rows = meta["salt"], load_file(_need(folder, "fixed.safetensors")), meta["variants"][variant]
    out = {}
    for key, shape, dtype, ref in rows:
        if ref is not None:
            t = fixed[ref].clone()  # a tensor of its own per key, as in the recorded model
        else:
            t = torch.from_numpy(np.ascontiguousarray(rule(key, shape, salt)))
        assert list(t.shape) == shape and str(t.dtype) == f"torch.{dtype}", key
        out[key] = t
    return out


# ----------------------------------------------------------------------------- the expected outputs

def projection(dim, k, seed=PROJ_SEED):
    """The fixed (dim, k) float64 projection matrix."""
    return torch.from_numpy(np.random.RandomState(seed + dim).standard_normal((dim, k)) / np.sqrt(k))


def project(x, k=PROJ_DIM, seed=PROJ_SEED):
    """x (..., D) -> (..., k) in float64."""
    return x.double() @ projection(x.shape[-1], k, seed)


class Expected(dict):
    """Inputs and official outputs of one variant: `e[name]` for stored tensors, `e.compare(name, ours)`
    for any output, full or projected."""

    def __init__(self, tensors, proj_dim, proj_seed, shapes):
        super().__init__(tensors)
        self.proj_dim, self.proj_seed, self.shapes = proj_dim, proj_seed, shapes

    def __missing__(self, name):
        if f"{name}@proj" in self:
            raise KeyError(f"{name} is stored as a projection only: use Expected.compare({name!r}, ours)")
        raise KeyError(name)

    def compare(self, name, ours):
        """(relative error, max abs error) of `ours` against the official `name`; for a projected output
        both are measured on the projections."""
        if name in self:
            ref = self[name]
            if ours.shape != ref.shape:
                raise AssertionError(f"{name}: shape {tuple(ours.shape)} != official {tuple(ref.shape)}")
            a, b = ours.double(), ref.double()
        else:
            if list(ours.shape) != self.shapes[name]:
                raise AssertionError(f"{name}: shape {tuple(ours.shape)} != official {tuple(self.shapes[name])}")
            a, b = project(ours, self.proj_dim, self.proj_seed), self[f"{name}@proj"].double()
        return ((a - b).norm() / b.norm()).item(), (a - b).abs().max().item()


def expected(variant, folder=None):
    """Recorded inputs and official outputs of `variant` (see Expected)."""
    folder = folder or FIXTURES
    if _full(folder, variant):
        return Expected(load_file(os.path.join(folder, f"{variant}_expected.safetensors")), 0, PROJ_SEED, {})
    path = _need(folder, f"{variant}.safetensors")
    out = load_file(_need(folder, "inputs.safetensors"))
    out.update(load_file(path))
    out["chunk_logmel"] = out["binaural_logmel"][:, :, :200]  # what the recording fed the model path
    from safetensors import safe_open
    with safe_open(path, "pt") as f:
        meta = json.loads((f.metadata() or {}).get("fixture", "{}"))
    return Expected(out, meta.get("proj_dim", PROJ_DIM), meta.get("proj_seed", PROJ_SEED), meta.get("shapes", {}))


# ----------------------------------------------------------------------------- trimming

def _digest(t):
    return hashlib.sha1(f"{t.dtype}{tuple(t.shape)}".encode() + t.contiguous().numpy().tobytes()).hexdigest()


def trim(full, out, proj_dim=PROJ_DIM):
    """Write the fixture folder `out` from the full recordings in `full` (<variant>_keys.json,
    <variant>_fixed.safetensors, <variant>_expected.safetensors).  proj_dim=0 keeps every output whole."""
    os.makedirs(out, exist_ok=True)
    fixed, names, keys, salts, inputs = {}, {}, {}, set(), None
    for v in VARIANTS:
        with open(os.path.join(full, f"{v}_keys.json")) as f:
            meta = json.load(f)
        salts.add(meta["salt"])
        rec = load_file(os.path.join(full, f"{v}_fixed.safetensors"))
        rows = []
        for entry in meta["keys"]:
            ref = None
            if entry["source"] == "fixed":
                t = rec[entry["key"]]
                d = _digest(t)
                if d not in names:
                    names[d] = f"{v}:{entry['key']}"
                    fixed[names[d]] = t.contiguous()
                ref = names[d]
            rows.append([entry["key"], entry["shape"], entry["dtype"], ref])
        keys[v] = rows
        e = load_file(os.path.join(full, f"{v}_expected.safetensors"))
        assert torch.equal(e["chunk_logmel"], e["binaural_logmel"][:, :, :200]), v
        if inputs is None:
            inputs = {k: e[k].contiguous() for k in INPUTS}
        for k in INPUTS:
            assert torch.equal(e[k], inputs[k]), f"{v}: {k} differs from gramt_frame's; cannot share it"
        outputs, shapes = {}, {}
        for k, t in e.items():
            if k in INPUTS or k == "chunk_logmel":
                continue
            if proj_dim and k in PROJECTED:
                outputs[f"{k}@proj"] = project(t, proj_dim).float().contiguous()
                shapes[k] = list(t.shape)
            else:
                outputs[k] = t.contiguous()
        _save(outputs, os.path.join(out, f"{v}.safetensors"),
              {"fixture": json.dumps({"variant": v, "proj_dim": proj_dim, "proj_seed": PROJ_SEED, "shapes": shapes},
                                  sort_keys=True)})  # one metadata key: byte-identical reruns
    assert len(salts) == 1, salts
    _save(fixed, os.path.join(out, "fixed.safetensors"))
    _save(inputs, os.path.join(out, "inputs.safetensors"))
    tmp = os.path.join(out, "keys.json.tmp")
    with open(tmp, "w") as f:  # one key per line: readable diffs
        f.write('{"salt": %d, "variants": {\n' % salts.pop())
        f.write(",\n".join(f'"{v}": [\n' + ",\n".join(json.dumps(r) for r in rows) + "\n]"
                           for v, rows in keys.items()))
        f.write("\n}}\n")
    os.replace(tmp, os.path.join(out, "keys.json"))


def _save(tensors, path, metadata=None):
    tmp = path + ".tmp"
    save_file(tensors, tmp, metadata=metadata)
    os.replace(tmp, path)


def main(argv=None):
    p = argparse.ArgumentParser(description="GRAM parity fixtures: trim the full recordings, or write a checkpoint.")
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("trim", help="write the fixture folder from the full recordings")
    t.add_argument("full", help="folder with <variant>_keys.json, _fixed.safetensors, _expected.safetensors")
    t.add_argument("--out", default=os.path.join(HERE, "fixtures", "official"))
    t.add_argument("--proj-dim", type=int, default=PROJ_DIM, help="projection size; 0 keeps outputs whole")
    c = sub.add_parser("checkpoint", help="write the recorded official checkpoint of a variant")
    c.add_argument("variant", choices=VARIANTS)
    c.add_argument("out")
    c.add_argument("--prefix", default="model.",
                   help="keep keys under this prefix, with the prefix removed ('' keeps every key as is)")
    a = p.parse_args(argv)
    if a.cmd == "trim":
        trim(a.full, a.out, a.proj_dim)
        print(f"wrote {a.out}")
    else:
        if os.path.exists(a.out):
            raise SystemExit(f"{a.out} exists; not overwriting")
        sd = state_dict(a.variant)
        if a.prefix:
            sd = {k[len(a.prefix):]: v for k, v in sd.items() if k.startswith(a.prefix)}
        _save({k: v.contiguous() for k, v in sd.items()}, a.out)
        print(f"wrote {len(sd)} tensors to {a.out}")


if __name__ == "__main__":
    main()
