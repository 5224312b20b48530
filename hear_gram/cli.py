"""`hear-gram` command line.

    hear-gram embed PATHS... --model gram_t_patch [--weights FILE|FOLDER|REPO] --out emb.npz
    hear-gram convert IN.ckpt OUT.safetensors   # a trusted official Lightning checkpoint -> safetensors
    hear-gram smoke [--variant gram_t_patch]    # embeds a generated binaural clip with local weights
    hear-gram check WEIGHTS                     # file, folder or owner/name[@rev]: header only; exit 0 = loads

`embed` reads wav/flac/ogg files or folders of them (mono or binaural, any sample rate: resampled to
32 kHz) and writes one .npz: `files` (the paths embedded), `scene` (n, D) and, with `--kind
timestamp|both`, `timestamp_embeddings_<i>` (X_i, D) and `timestamps_<i>` (X_i,) ms for file i.  A
file that cannot be embedded is reported on stderr and skipped; the exit status is then 1.  `--out` is
checked before any work (its folder exists and is writable, it is not a directory nor an input, and it
exists only with `--overwrite`) and written atomically.  `--stream` reads each file in blocks
(`--block-seconds`, resampled on the fly) and writes its timestamp embeddings as they come, for files
larger than memory (same .npz); `--out-dtype float16` halves the timestamp embeddings.
"""

import argparse
import math
import os
import sys
import tempfile


def _cuda():
    import torch

    return torch.cuda.is_available()


def _convert(args):
    import torch
    from safetensors.torch import save_file

    from .checkpoint import detect_layout
    from .outputs import OutputError, atomic_path, check_output

    if not os.path.isfile(args.input):
        _fail(f"input not found: {args.input}")
    try:
        check_output(args.output, overwrite=args.overwrite, inputs=[args.input], option="OUT")
    except OutputError as e:
        _fail(str(e))
    # weights_only=True: only tensors and plain containers are rebuilt, no code from the file runs.
    obj = torch.load(args.input, map_location="cpu", weights_only=True)
    sd = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        sys.exit(f"{args.input}: no tensor state dict found (expected a Lightning checkpoint or a state dict)")
    layout = detect_layout(sd)
    try:
        with atomic_path(args.output) as tmp:
            save_file({k: v.contiguous() for k, v in sd.items()}, tmp)
    except OutputError as e:
        _fail(str(e))
    print(f"wrote {len(sd)} tensors ({layout}) to {args.output}")


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
    from .model import VARIANTS, GramEncoder

    torch.manual_seed(0)
    cfg = VARIANTS[args.variant].config
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "weights")
        save_model(GramEncoder(cfg), folder)  # random initial weights, official architecture
        model = runtime.load_runtime(args.variant, folder)
        audio = demo_clip()[None]
        emb, ts = model.get_timestamp_embeddings(audio)
        scene = model.get_scene_embeddings(audio)
    print(f"{args.variant}: timestamp embeddings {tuple(emb.shape)} every {float(ts[0, 1] - ts[0, 0]):.0f} ms "
          f"(first at {float(ts[0, 0]):.0f} ms), scene embedding {tuple(scene.shape)}, finite: "
          f"{bool(torch.isfinite(emb).all())}")


def _audio_files(paths):
    from .audio import AUDIO_EXTENSIONS

    for p in paths:
        if os.path.isdir(p):
            for root, _, names in sorted(os.walk(p)):
                for n in sorted(names):
                    if n.lower().endswith(AUDIO_EXTENSIONS):
                        yield os.path.join(root, n)
        else:
            yield p


def _fail(msg):
    sys.exit(f"hear-gram: error: {msg}")


def _device(name: str):
    """--device -> torch.device, or a named error when this machine has no such device."""
    import torch

    try:
        dev = torch.device(name)
    except RuntimeError as e:
        _fail(f"--device {name!r} is not a device name ({e})")
    if dev.type == "cuda" and not torch.cuda.is_available():
        _fail(f"--device {name}: CUDA is not available on this machine (use --device cpu)")
    try:
        torch.empty(1, device=dev)
    except (RuntimeError, AssertionError) as e:  # a missing backend or an index past the device count
        _fail(f"--device {name} cannot be used on this machine ({str(e).splitlines()[0]})")
    return dev


def _embed(args):
    import numpy as np

    from .audio import read_audio
    from .checkpoint import CheckpointError
    from .model import VARIANTS
    from .outputs import OutputError, atomic_path, check_output
    from .runtime import load_runtime

    # everything a user named is checked before the model loads and any file is embedded
    missing = [p for p in args.paths if not os.path.exists(p)]
    if missing:
        _fail(f"input not found: {', '.join(missing)}")
    files = list(_audio_files(args.paths))
    if not files:
        _fail("no audio files found in " + " ".join(args.paths))
    try:
        check_output(args.out, overwrite=args.overwrite, inputs=files, option="--out")
    except OutputError as e:
        _fail(str(e))
    if args.model not in VARIANTS:
        _fail(f"--model {args.model!r} is not a variant; known: {', '.join(sorted(VARIANTS))}")
    device = _device(args.device)
    options = {"strategy": args.strategy} if args.strategy else {}
    if args.out_dtype != "float32":
        options["out_dtype"] = {"float16": "fp16"}[args.out_dtype]
    if args.stream and args.compat:
        _fail("--stream needs the default runtime: --compat timestamps depend on the whole clip's length")
    try:
        model = load_runtime(args.model, args.weights or "", compat=args.compat, **options).to(device)
    except (CheckpointError, OSError, ValueError) as e:
        _fail(f"cannot load {args.model} weights{' from ' + args.weights if args.weights else ''}: {e}")
    if args.stream:
        return _embed_stream(args, model, files)
    try:
        from tqdm import tqdm
    except ImportError:
        tqdm = None
    out, done, failed = {}, [], []
    scenes = []
    for path in (tqdm(files, unit="file", desc="embedding") if tqdm else files):
        try:
            audio = read_audio(path, model.sample_rate).to(model.device)[None]
            emb, ts, scene = model.embed(audio)
        except Exception as e:  # one bad file must not stop the batch
            failed.append(path)
            print(f"skip {path}: {e}", file=sys.stderr)
            continue
        i = len(done)
        done.append(path)
        scenes.append(scene[0].cpu().numpy())
        if args.kind in ("timestamp", "both"):
            out[f"timestamp_embeddings_{i}"] = emb[0].cpu().numpy()
            out[f"timestamps_{i}"] = ts[0].cpu().numpy()
    if args.kind in ("scene", "both"):
        out["scene"] = _scene_array(scenes, model)
    out["files"] = np.array(done, dtype=str)
    try:
        with atomic_path(args.out, suffix=".npz") as tmp:  # the .npz suffix stops numpy appending one
            np.savez(tmp, **out)
    except OutputError as e:
        _fail(str(e))
    _summary(args, done, files, failed)


def _scene_array(scenes, model):
    """The stacked scene embeddings; an empty (0, size) array when no file was embedded."""
    import numpy as np

    return np.stack(scenes) if scenes else np.zeros((0, model.scene_embedding_size), np.float32)


def _summary(args, done, files, failed, how=""):
    """The closing line of `embed`; exit status 1 when any file was skipped."""
    print(f"embedded {len(done)} of {len(files)} files with {args.model}{how} -> {args.out}"
          + (f"; {len(failed)} skipped (see above)" if failed else ""))
    if failed:
        sys.exit(1)


def _embed_stream(args, model, files):
    """`embed --stream`: each file is read in blocks (soundfile), resampled on the fly, pushed through a
    `model.stream()`; its timestamp embeddings go to a temporary .npy beside --out as they come and are then
    copied into the .npz, so neither the audio nor the embeddings of a file are ever held whole."""
    import io
    import zipfile

    import numpy as np

    from .audio import audio_blocks
    from .outputs import OutputError, atomic_path

    want_ts = args.kind in ("timestamp", "both")
    dtype = np.dtype(args.out_dtype)
    folder = os.path.dirname(os.path.abspath(args.out))
    done, failed, scenes = [], [], []

    def put(zf, name, arr):
        buf = io.BytesIO()
        np.save(buf, arr)
        zf.writestr(name + ".npy", buf.getvalue())

    try:
        with atomic_path(args.out, suffix=".npz") as tmp, \
                zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for path in files:
                part = None
                try:
                    n, channels, blocks = audio_blocks(path, model.sample_rate, args.block_seconds)
                    plan, x_out = model.chunk_plan(n)
                    rows = x_out if model.strategy == "raw" else len(plan)
                    stream = model.stream(channels=channels)
                    fd, part = tempfile.mkstemp(suffix=".npy", prefix=".hear-gram-", dir=folder)
                    times, written = [], 0
                    with os.fdopen(fd, "wb") as f:
                        if want_ts:
                            np.lib.format.write_array_header_2_0(f, {
                                "descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                                "shape": (rows, model.timestamp_embedding_size)})
                        def write(emb, ts):
                            if want_ts:
                                f.write(emb.float().cpu().numpy().astype(dtype).tobytes())
                            times.append(ts.cpu().numpy())
                            return len(emb)

                        for block in blocks:
                            written += write(*stream.push(block))
                        written += write(*stream.flush())
                    if written != rows:
                        raise RuntimeError(f"internal: {written} embeddings for a plan of {rows}")
                    i = len(done)
                    if want_ts:
                        zf.write(part, f"timestamp_embeddings_{i}.npy")
                        put(zf, f"timestamps_{i}", np.concatenate(times).astype(np.float32))
                    done.append(path)
                    scenes.append(stream.scene_embedding.cpu().numpy())
                except Exception as e:  # one bad file must not stop the batch
                    failed.append(path)
                    print(f"skip {path}: {e}", file=sys.stderr)
                finally:
                    if part and os.path.exists(part):
                        os.unlink(part)
            if args.kind in ("scene", "both"):
                put(zf, "scene", _scene_array(scenes, model))
            put(zf, "files", np.array(done, dtype=str))
    except OutputError as e:
        _fail(str(e))
    _summary(args, done, files, failed, " (streamed)")


def _check(args):
    from .check import check

    lines, ok = check(args.weights, revision=args.revision)
    print("\n".join(lines))
    sys.exit(0 if ok else 1)


def main(argv=None):
    p = argparse.ArgumentParser(prog="hear-gram", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("embed", help="embed audio files or folders into an .npz")
    e.add_argument("paths", nargs="+")
    e.add_argument("--model", default="gram_t_patch", help="variant (default gram_t_patch)")
    e.add_argument("--weights", default="", help="file, folder or 'owner/repo[@revision]' (default: the Hub)")
    e.add_argument("--out", required=True, help="output .npz (never one of the inputs)")
    e.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    e.add_argument("--kind", choices=["scene", "timestamp", "both"], default="scene")
    e.add_argument("--strategy", choices=["raw", "mean", "cls"], default=None)
    e.add_argument("--compat", action="store_true", help="official runtime semantics")
    e.add_argument("--device", default="cuda" if _cuda() else "cpu")
    e.add_argument("--stream", action="store_true",
                   help="read each file in blocks and write its embeddings as they come: files larger than memory")
    e.add_argument("--block-seconds", type=float, default=16.0, help="--stream: seconds read per block (16)")
    e.add_argument("--out-dtype", choices=["float32", "float16"], default="float32",
                   help="dtype of the timestamp embeddings written (float16 halves the file)")
    e.set_defaults(func=_embed)
    c = sub.add_parser("convert", help="Lightning .ckpt (trusted) -> .safetensors")
    c.add_argument("input")
    c.add_argument("output")
    c.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    c.set_defaults(func=_convert)
    s = sub.add_parser("smoke", help="embed a generated binaural clip with random local weights")
    s.add_argument("--variant", default="gram_t_patch")
    s.set_defaults(func=_smoke)
    k = sub.add_parser("check", help="will these weights load? (reads only the safetensors header)")
    k.add_argument("weights", help="a .safetensors file, a folder holding model.safetensors, or owner/name[@revision]")
    k.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit) for owner/name")
    k.set_defaults(func=_check)
    args = p.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
