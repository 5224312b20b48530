"""Masked pretraining of GRAM-T / GRAM-M on naturalistic binaural scenes (paper §3.2-3.3, gram_spec §5, §7).

    python training/train.py --preset=smoke                               # minutes on a 2-core CPU
    python training/train.py --preset=smoke --out_dir=runs/smoke --resume # continue from runs/smoke/ckpt.pt
    torchrun --standalone --nproc_per_node=8 training/train.py --preset=paper --out_dir=runs/gram_t
    python training/export.py runs/gram_t exports/gram_t                  # -> model.safetensors + config.json

One plain loop (nanoGPT layout): defaults -> preset file (training/presets/<name>.py) -> `--key=value`
overrides (type-checked; unknown keys are errors; `--model.<GramConfig field>=` and `--scene.<SceneConfig
field>=` reach the two dataclasses) -> DDP from the torchrun environment -> model, data, optimizer -> loop.

Per step: `clips` fresh 10 s binaural scenes per rank -> log-mel (eps `model.log_eps`, 1e-5 in training as the
official code, §9.1) -> `crops_per_clip` random 2 s crops each + 80 % random masks (training/data.py) ->
masked-MSE loss (hear_gram.model.GramModel.forward, §5.3) -> AdamW(betas (0.9, 0.95), wd 0.01, no parameter
groups), global grad-norm clip 5, lr linear warm-up then cosine to `min_lr` (§7.4); bf16 autocast on CUDA,
float32 on CPU.  A non-finite loss or gradient norm stops the run before the optimizer step; the last
checkpoint on disk (always a good one) is kept.  Rank 0 alone logs and writes checkpoints.

Checkpoint `out_dir/ckpt.pt` (written to a temporary file, then renamed): resolved config, GramConfig, model
state of the unwrapped module (official key names, no `module.`/`_orig_mod.` prefixes), optimizer, step and,
per rank, the RNG and data-stream states, so `--resume` continues exactly (same losses as an uninterrupted
run in the same process; in a new process too unless the espeak-ng speech generator of the embedded corpus
is not bit-stable on the machine, see training/scenes.py).
"""

import ast
import contextlib
import json
import math
import os
import random
import sys
import time

import numpy as np
import torch
import torch.distributed as dist

if __package__ in (None, ""):  # `python training/train.py` / torchrun: training/ runs from a checkout
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hear_gram.model import VARIANTS, GramConfig, GramModel  # noqa: E402
from training.data import CropStream, scene_config  # noqa: E402
from training.monitor import open_writer, reconstruction_figure  # noqa: E402

PRESETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "presets")
CKPT_NAME = "ckpt.pt"
CKPT_FORMAT = "hear_gram.train"

# ----------------------------------------------------------------------------- defaults (the paper's run)
DEFAULTS = dict(
    preset="",
    out_dir="runs/gram",
    seed=0,
    device="auto",  # auto (cuda if available) | cpu | cuda | cuda:N
    dtype="auto",  # auto: bfloat16 autocast on CUDA (official bf16-mixed), float32 on CPU | float32 | bfloat16
    compile=False,
    threads=0,  # CPU threads per process; 0 = all cores shared by the processes of this node
    backend="auto",  # DDP: nccl on CUDA, gloo on CPU
    # model: a variant's architecture plus GramConfig overrides
    variant="gram_t_patch",
    model={"log_eps": 1e-5},  # official training log offset (gram_spec §7.3, §9.1); exported with the weights
    # data (gram_spec §7.3): clips per rank and step, 2 s crops per clip, log-mel frames before cropping
    scene_preset="default",
    scene={},  # SceneConfig overrides, e.g. --scene.source_dirs="('/data/audioset',)"
    clips=32,
    crops_per_clip=16,
    input_frames=1024,
    data_workers=0,  # background scene-synthesis processes per rank (0 = in the loop; changes the draw streams)
    # optimisation (gram_spec §7.4)
    max_steps=500_000,
    lr=2e-4,
    min_lr=0.0,
    warmup_steps=10_000,
    betas=(0.9, 0.95),
    weight_decay=0.01,
    grad_clip=5.0,
    # logging and checkpoints
    log_every=10,
    ckpt_every=1000,
    image_every=1000,  # PNG of input / reconstruction (0 = never)
    tensorboard=True,
    progress=True,
    resume=False,
    stop_at_step=-1,  # end this invocation at this step (schedule still spans max_steps); -1 = max_steps
    debug_nan_step=-1,  # test hook: poison the input of this step with NaN
)
# Keys that may differ between a checkpoint and the run that resumes it (everything else changes the run).
INVOCATION = {"resume", "stop_at_step", "debug_nan_step"}  # never inherited from a checkpoint's config
RESUME_FREE = {"preset", "out_dir", "device", "compile", "threads", "backend", "max_steps", "log_every",
               "ckpt_every", "image_every", "tensorboard", "progress", "resume", "stop_at_step", "debug_nan_step"}


class NonFiniteLoss(FloatingPointError):
    pass


# ----------------------------------------------------------------------------- configuration
def _parse_value(text):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a bare string such as --device=cpu


def _check_type(key, value, default):
    if default is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(default, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    elif isinstance(default, tuple) and isinstance(value, (tuple, list)):
        return tuple(value)
    elif isinstance(default, int) and isinstance(value, int) and not isinstance(value, bool):
        return value
    elif isinstance(default, str) and isinstance(value, str):
        return value
    raise TypeError(f"{key}={value!r}: expected {type(default).__name__} like the default {default!r}")


def _field_defaults(cls) -> dict:
    import dataclasses

    return {f.name: f.default for f in dataclasses.fields(cls)}


def _set(cfg: dict, key: str, value) -> None:
    """Type-checked assignment of one key (`name` or `model.<field>` / `scene.<field>`)."""
    from training.scenes import SceneConfig

    if "." in key:
        group, field = key.split(".", 1)
        known = {"model": _field_defaults(GramConfig), "scene": _field_defaults(SceneConfig)}.get(group)
        if known is None or field not in known:
            raise ValueError(f"unknown config key {key!r}" + ("" if known is None else
                                                              f"; {group} fields: {sorted(known)}"))
        cfg[group] = {**cfg[group], field: _check_type(key, value, known[field])}
    elif key in ("model", "scene"):
        for k, v in dict(value).items():
            _set(cfg, f"{key}.{k}", v)
    elif key not in DEFAULTS:
        raise ValueError(f"unknown config key {key!r}; known: {sorted(DEFAULTS)}")
    else:
        cfg[key] = _check_type(key, value, DEFAULTS[key])


def load_preset(name: str) -> dict:
    """Plain assignments from training/presets/<name>.py (or a path); `base = "<preset>"` extends another."""
    path = name if name.endswith(".py") else os.path.join(PRESETS, f"{name}.py")
    if not os.path.exists(path):
        known = sorted(f[:-3] for f in os.listdir(PRESETS) if f.endswith(".py") and not f.startswith("_"))
        raise ValueError(f"unknown preset {name!r}; known: {known}")
    scope = {}
    with open(path) as f:
        exec(compile(f.read(), path, "exec"), {}, scope)
    values = {k: v for k, v in scope.items() if not k.startswith("_")}
    base = values.pop("base", None)
    out = load_preset(base) if base else {}
    for group in ("model", "scene"):  # nested dicts extend the base preset's
        if group in values:
            values[group] = {**out.get(group, {}), **values[group]}
    return {**out, **values}


def _split_argv(argv) -> list:
    """['--a=1', '--b', '2', '--flag'] -> [('a', '1'), ('b', '2'), ('flag', 'True')]."""
    pairs, i = [], 0
    while i < len(argv):
        tok = argv[i]
        if not tok.startswith("--"):
            raise ValueError(f"expected --key=value, got {tok!r}")
        if "=" in tok:
            k, v = tok[2:].split("=", 1)
        elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            k, v = tok[2:], argv[i + 1]
            i += 1
        else:
            k, v = tok[2:], "True"  # bare boolean flag
        pairs.append((k.replace("-", "_") if "." not in k else k, v))
        i += 1
    return pairs


def resolve_config(argv=()) -> dict:
    """defaults -> preset -> command-line overrides.  `--resume` without `--preset` starts from the config
    stored in out_dir's checkpoint instead of a preset."""
    pairs = _split_argv(list(argv))
    given = dict(pairs)
    cfg = {k: (dict(v) if isinstance(v, dict) else v) for k, v in DEFAULTS.items()}
    if "preset" in given:
        for k, v in load_preset(given["preset"]).items():
            _set(cfg, k, v)
    elif _parse_value(given.get("resume", "False")) is True:
        out_dir = given.get("out_dir", cfg["out_dir"])
        saved = read_checkpoint(os.path.join(out_dir, CKPT_NAME))["config"]
        for k, v in saved.items():
            if k not in INVOCATION:
                _set(cfg, k, v)
    for k, v in pairs:
        _set(cfg, k, _parse_value(v))
    return cfg


def model_config(cfg: dict) -> GramConfig:
    if cfg["variant"] not in VARIANTS:
        raise ValueError(f"unknown variant {cfg['variant']!r}; known: {sorted(VARIANTS)}")
    return GramConfig.from_dict({**VARIANTS[cfg["variant"]].config.to_dict(), **cfg["model"]})


def get_lr(step: int, lr: float, warmup: int, max_steps: int, min_lr: float = 0.0) -> float:
    """Linear warm-up from 0, then half a cosine to min_lr (transformers' get_cosine_schedule_with_warmup,
    gram_spec §7.4); `step` = optimizer steps already taken."""
    if step < warmup:
        return lr * step / warmup
    progress = min(1.0, (step - warmup) / max(1, max_steps - warmup))
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


# ----------------------------------------------------------------------------- checkpoints and RNG
def read_checkpoint(path: str) -> dict:
    if not os.path.exists(path):
        raise FileNotFoundError(f"no training checkpoint at {path}")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)  # tensors and plain containers only
    if ckpt.get("format") != CKPT_FORMAT:
        raise ValueError(f"{path} is not a hear_gram training checkpoint")
    return ckpt


def atomic_save(obj, path: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    torch.save(obj, tmp)
    os.replace(tmp, path)  # a crash mid-write never leaves a truncated checkpoint


def rng_state(stream: CropStream) -> dict:
    np_state = np.random.get_state(legacy=False)
    np_state["state"]["key"] = np_state["state"]["key"].tolist()
    return {"torch": torch.get_rng_state(), "numpy": np_state, "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state() if torch.cuda.is_available() else None, "data": stream.state_dict()}


def set_rng_state(state: dict, stream: CropStream) -> None:
    torch.set_rng_state(state["torch"])
    np_state = dict(state["numpy"], state=dict(state["numpy"]["state"]))
    np_state["state"]["key"] = np.asarray(np_state["state"]["key"], dtype=np.uint32)
    np.random.set_state(np_state)
    random.setstate(tuple(x if not isinstance(x, list) else tuple(x) for x in state["python"]))
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
    stream.load_state_dict(state["data"])


# ----------------------------------------------------------------------------- the run
def train(cfg: dict) -> dict:
    """Run (or resume) one training job; returns {"step", "losses" (this invocation), "out_dir"}."""
    # -- distributed setup: torchrun sets RANK / LOCAL_RANK / WORLD_SIZE
    ddp = int(os.environ.get("RANK", -1)) != -1
    rank, local_rank, world = (int(os.environ[k]) for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE")) if ddp else (0, 0, 1)
    dev_name = cfg["device"]
    if dev_name == "auto":
        dev_name = "cuda" if torch.cuda.is_available() else "cpu"
    if ddp and dev_name == "cuda":
        dev_name = f"cuda:{local_rank}"
    device = torch.device(dev_name)
    if device.type == "cuda":
        if device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True  # as the official run
    if ddp:
        backend = cfg["backend"] if cfg["backend"] != "auto" else ("nccl" if device.type == "cuda" else "gloo")
        dist.init_process_group(backend)
    master = rank == 0
    if device.type == "cpu":
        local = int(os.environ.get("LOCAL_WORLD_SIZE", world if ddp else 1))
        torch.set_num_threads(cfg["threads"] or max(1, (os.cpu_count() or 1) // local))
    dtype = {"auto": torch.bfloat16 if device.type == "cuda" else torch.float32, "float32": torch.float32,
             "bfloat16": torch.bfloat16}[cfg["dtype"]]
    autocast = (torch.autocast(device.type, dtype=dtype) if dtype != torch.float32 else contextlib.nullcontext())
    out_dir, ckpt_path = cfg["out_dir"], os.path.join(cfg["out_dir"], CKPT_NAME)
    stream = None
    try:
        # -- resume: the checkpoint must describe the same run
        ckpt = read_checkpoint(ckpt_path) if cfg["resume"] else None
        if ckpt is not None:
            diff = sorted(k for k in DEFAULTS if k not in RESUME_FREE and ckpt["config"].get(k) != cfg[k])
            if diff:
                raise ValueError(f"cannot resume {ckpt_path}: settings differ from the checkpoint's: "
                                 + ", ".join(f"{k}={cfg[k]!r} (checkpoint {ckpt['config'].get(k)!r})" for k in diff))
        # -- model, data, optimizer
        mcfg = model_config(cfg)
        torch.manual_seed(cfg["seed"])  # identical initialisation on every rank
        raw_model = GramModel(mcfg).to(device)
        if mcfg.encoder == "mamba":  # kept for the official key set, never used in forward (gram_spec §3.2)
            raw_model.encoder_norm.requires_grad_(False)
        stream = CropStream(scene_config(cfg["scene_preset"], cfg["scene"]), mcfg, cfg["clips"],
                            cfg["crops_per_clip"], cfg["input_frames"], seed=cfg["seed"], rank=rank, device=device,
                            workers=cfg["data_workers"])
        params = [p for p in raw_model.parameters() if p.requires_grad]  # no parameter groups (§7.4)
        optimizer = torch.optim.AdamW(params, lr=cfg["lr"], betas=cfg["betas"], weight_decay=cfg["weight_decay"],
                                      **({"fused": True} if device.type == "cuda" else {}))
        step = 0
        if ckpt is not None:
            raw_model.load_state_dict(ckpt["model"], strict=True)
            optimizer.load_state_dict(ckpt["optimizer"])
            step = ckpt["step"]
            if len(ckpt["rng"]) == world:
                set_rng_state(ckpt["rng"][rank], stream)
            elif master:
                print(f"resuming {world} ranks from a {len(ckpt['rng'])}-rank checkpoint: data streams are reseeded",
                      file=sys.stderr)
        model = torch.compile(raw_model) if cfg["compile"] else raw_model
        if ddp:
            model = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None)

        if master:
            os.makedirs(out_dir, exist_ok=True)
            with open(os.path.join(out_dir, "config.json"), "w") as f:
                json.dump({"train": cfg, "model": mcfg.to_dict(), "world_size": world}, f, indent=2)
        writer = open_writer(out_dir, step, master and cfg["tensorboard"])
        end = cfg["max_steps"] if cfg["stop_at_step"] < 0 else min(cfg["stop_at_step"], cfg["max_steps"])
        pbar = None
        if master and cfg["progress"]:
            from tqdm import tqdm

            pbar = tqdm(total=end, initial=step, desc="train", dynamic_ncols=True)
        crops = stream.crops * world
        losses, last_saved = [], step if ckpt is not None else None

        def save(step):
            states = [None] * world
            if ddp:
                dist.all_gather_object(states, rng_state(stream))
            else:
                states[0] = rng_state(stream)
            if master:
                atomic_save({"format": CKPT_FORMAT, "version": 1, "config": cfg, "model_config": mcfg.to_dict(),
                             "model": raw_model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                             "world_size": world, "rng": states}, ckpt_path)

        # -- the loop
        while step < end:
            t0 = time.perf_counter()
            lr = get_lr(step, cfg["lr"], cfg["warmup_steps"], cfg["max_steps"], cfg["min_lr"])
            for group in optimizer.param_groups:
                group["lr"] = lr
            x, mask = stream.next_batch(raw_model.melspec)  # (B*K, C, 200, 128), (B*K, N)
            if step == cfg["debug_nan_step"]:
                x = x * float("nan")
            with autocast:
                loss, pred, target = model(x, mask)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg["grad_clip"])
            stats = torch.stack([loss.detach().float(), grad_norm.detach().float()])
            if ddp:  # every rank sees the same numbers, so every rank stops together
                dist.all_reduce(stats)
                stats /= world
            loss_v, gnorm_v = stats.tolist()
            if not (math.isfinite(loss_v) and math.isfinite(gnorm_v)):
                last = "none written yet" if last_saved is None else f"step {last_saved}"
                raise NonFiniteLoss(f"non-finite loss {loss_v} / grad norm {gnorm_v} at step {step}: stopping before "
                                    f"the optimizer step; last good checkpoint: {ckpt_path} ({last})")
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            if device.type == "cuda":
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            losses.append(loss_v)
            if master:
                rate = crops / dt
                if writer is not None:
                    for k, v in (("loss", loss_v), ("lr", lr), ("grad_norm", gnorm_v), ("crops_per_s", rate)):
                        writer.add_scalar(f"train/{k}", v, step)
                if step % cfg["log_every"] == 0 or step == 1 or step == end:
                    line = dict(step=step, loss=round(loss_v, 6), lr=lr, grad_norm=round(gnorm_v, 4),
                                crops_per_s=round(rate, 2), step_s=round(dt, 4))
                    with open(os.path.join(out_dir, "log.jsonl"), "a") as f:
                        f.write(json.dumps(line) + "\n")
                    msg = f"step {step}: loss {loss_v:.4f} lr {lr:.2e} |g| {gnorm_v:.3f} {rate:.1f} crops/s"
                    (pbar.write if pbar is not None else print)(msg)
                if cfg["image_every"] and step % cfg["image_every"] == 0:
                    fig = reconstruction_figure(pred[0].detach(), target[0].detach(), mask[0], mcfg,
                                                f"step {step}, loss {loss_v:.4f}")
                    os.makedirs(os.path.join(out_dir, "images"), exist_ok=True)
                    fig.savefig(os.path.join(out_dir, "images", f"step_{step:07d}.png"), dpi=80)
                    if writer is not None:
                        writer.add_figure("reconstruction", fig, step)  # closes the figure
                    else:
                        import matplotlib.pyplot as plt

                        plt.close(fig)
                if pbar is not None:
                    pbar.update(1)
                    pbar.set_postfix(loss=f"{loss_v:.4f}")
            if step % cfg["ckpt_every"] == 0 or step == end:
                save(step)
                last_saved = step
        if pbar is not None:
            pbar.close()
        if writer is not None:
            writer.close()
        return {"step": step, "losses": losses, "out_dir": out_dir}
    finally:
        if stream is not None:
            stream.close()
        if ddp:
            dist.destroy_process_group()


def main(argv=None) -> int:
    cfg = resolve_config(sys.argv[1:] if argv is None else argv)
    try:
        result = train(cfg)
    except NonFiniteLoss as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", 0)) == 0:
        ls = result["losses"]
        if ls:
            print(f"done: step {result['step']}, loss {ls[0]:.4f} -> {ls[-1]:.4f}; checkpoint "
                  f"{os.path.join(result['out_dir'], CKPT_NAME)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
