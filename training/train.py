"""Masked pretraining of GRAM-T / GRAM-M on naturalistic binaural scenes (paper §3.2-3.3, gram_spec §5, §7).

    python -m training.train --preset=smoke                               # minutes on a 2-core CPU
    python -m training.train --preset=smoke --out_dir=runs/smoke --resume # continue from runs/smoke/ckpt.pt
    torchrun --standalone --nproc_per_node=8 -m training.train --preset=paper --out_dir=runs/gram_t
    python -m training.export runs/gram_t exports/gram_t                  # -> model.safetensors + config.json

One plain loop (nanoGPT layout): defaults -> preset file (training/presets/<name>.py) -> `--key=value`
overrides (training/config.py: type-checked; unknown keys are errors; `--model.<GramConfig field>=` and
`--scene.<SceneConfig field>=` reach the two dataclasses; `--scene_preset` names a training/presets/scene/ file)
-> `train()`: setup (device, DDP from the torchrun environment, resume check) -> model and data -> optimiser
-> loop.

Per step: `clips` fresh 10 s binaural scenes per rank -> log-mel (eps `model.log_eps`, 1e-5 in training as the
official code, §9.1) -> `crops_per_clip` random 2 s crops each + 80 % random masks (training/data.py) ->
masked-MSE loss (training.pretrain_model.PretrainModel.forward, §5.3) -> AdamW(betas (0.9, 0.95), wd 0.01, no parameter
groups), global grad-norm clip 5, lr linear warm-up then cosine to `min_lr` (§7.4); bf16 autocast on CUDA,
float32 on CPU.  A non-finite loss or gradient norm stops the run before the optimizer step; the last
checkpoint on disk (always a good one) is kept.  Rank 0 alone logs and writes checkpoints.

Checkpoint `out_dir/ckpt.pt` (written to a temporary file, then renamed): resolved config, GramConfig, model
state of the unwrapped module (official key names, no `module.`/`_orig_mod.` prefixes), optimizer, step and,
per rank, the RNG and data-stream states, so `--resume` continues exactly (same losses as an uninterrupted
run in the same process; in a new process too unless the espeak-ng speech generator of the embedded corpus
is not bit-stable on the machine, see training/scenes.py).
"""

import contextlib
import glob
import json
import math
import os
import pickle
import random
import shutil
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from hear_gram.model import VARIANTS, GramConfig
from hear_gram.outputs import OutputError, atomic_path, stale_temporaries, write_text
from training.config import field_defaults, parse_value, resolve, split_argv
from training.data import CropStream
from training.monitor import open_writer, reconstruction_figure
from training.pretrain_model import PretrainModel, loss_parts
from training.scenes import SceneConfig

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
    scene_backend="auto",  # SceneSynth backend: auto (numpy on CPU, torch = on the device elsewhere) | numpy | torch
    data_workers=0,  # per rank: numpy backend: scene-synthesis processes (0 = in the loop; other streams);
    #                  torch backend: processes decoding user corpora (training/streaming.py)
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
    overwrite=False,  # start afresh in an out_dir that holds a run (its ckpt.pt, log.jsonl, config.json, tb/, images/)
    stop_at_step=-1,  # end this invocation at this step (schedule still spans max_steps); -1 = max_steps
    debug_nan_step=-1,  # test hook: poison the input of this step with NaN
)
# Keys that may differ between a checkpoint and the run that resumes it (everything else changes the run).
INVOCATION = {"resume", "overwrite", "stop_at_step", "debug_nan_step"}  # never inherited from a checkpoint's config
RESUME_FREE = {"preset", "out_dir", "device", "compile", "threads", "backend", "max_steps", "log_every",
               "ckpt_every", "image_every", "tensorboard", "progress", "resume", "overwrite", "stop_at_step",
               "debug_nan_step"}
# What a run writes into out_dir: --overwrite removes exactly these (anything else there is the user's).
RUN_FILES = (CKPT_NAME, "log.jsonl", "config.json", "tb", "images")
CKPT_KEYS = ("config", "model_config", "model", "optimizer", "step", "world_size", "rng")


class NonFiniteLoss(FloatingPointError):
    pass


class RunError(ValueError):
    """A run that must not start (a bad setting, an occupied out_dir, an unreadable checkpoint) or a checkpoint
    that could not be written; the message names the option, the value or the file."""


# ----------------------------------------------------------------------------- configuration
def _groups() -> dict:
    """`--model.<field>` / `--scene.<field>` reach GramConfig / SceneConfig fields, type-checked."""
    from training.scenes import SceneConfig

    return {"model": field_defaults(GramConfig), "scene": field_defaults(SceneConfig)}


def resolve_config(argv=()) -> dict:
    """defaults -> preset -> command-line overrides (training/config.py).  `--resume` without `--preset` starts
    from the config stored in out_dir's checkpoint instead of a preset."""
    given = dict(split_argv(argv))
    base = None
    if "preset" not in given and parse_value(given.get("resume", "False")) is True:
        saved = read_checkpoint(os.path.join(given.get("out_dir", DEFAULTS["out_dir"]), CKPT_NAME))["config"]
        base = {k: v for k, v in saved.items() if k not in INVOCATION}
    return resolve(DEFAULTS, argv, _groups(), base=base)


def model_config(cfg: dict) -> GramConfig:
    if cfg["variant"] not in VARIANTS:
        raise ValueError(f"unknown variant {cfg['variant']!r}; known: {sorted(VARIANTS)}")
    return GramConfig.from_dict({**VARIANTS[cfg["variant"]].config.to_dict(), **cfg["model"]})


def check_config(cfg: dict) -> GramConfig:
    """Every setting's type and range, before anything runs or touches out_dir; -> the model's GramConfig.
    Errors name the option and its value (RunError)."""
    def need(ok, key, what):
        if not ok:
            raise RunError(f"--{key}={cfg[key]!r}: {what}")

    def is_int(v):
        return isinstance(v, int) and not isinstance(v, bool)

    def is_num(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    for key in ("clips", "crops_per_clip", "max_steps", "log_every", "ckpt_every"):
        need(is_int(cfg[key]) and cfg[key] >= 1, key, "must be an integer >= 1")
    for key in ("warmup_steps", "image_every", "data_workers", "threads", "seed"):
        need(is_int(cfg[key]) and cfg[key] >= 0, key, "must be an integer >= 0")
    need(is_int(cfg["stop_at_step"]) and (cfg["stop_at_step"] == -1 or cfg["stop_at_step"] >= 1), "stop_at_step",
         "must be -1 (run to max_steps) or a step >= 1")
    need(is_num(cfg["lr"]) and cfg["lr"] > 0, "lr", "must be a finite number > 0")
    need(is_num(cfg["min_lr"]) and 0 <= cfg["min_lr"] <= cfg["lr"], "min_lr", "must be a finite number in [0, lr]")
    need(is_num(cfg["weight_decay"]) and cfg["weight_decay"] >= 0, "weight_decay", "must be a finite number >= 0")
    need(is_num(cfg["grad_clip"]) and cfg["grad_clip"] > 0, "grad_clip", "must be a finite number > 0")
    need(isinstance(cfg["betas"], tuple) and len(cfg["betas"]) == 2 and all(is_num(b) and 0 <= b < 1 for b in
                                                                            cfg["betas"]),
         "betas", "must be two numbers in [0, 1), e.g. (0.9, 0.95)")
    need(cfg["dtype"] in ("auto", "float32", "bfloat16"), "dtype", "must be auto, float32 or bfloat16")
    need(cfg["backend"] in ("auto", "nccl", "gloo"), "backend", "must be auto, nccl or gloo")
    need(cfg["scene_backend"] in ("auto", "numpy", "torch"), "scene_backend", "must be auto, numpy or torch")
    streams = bool(cfg["scene"].get("source_dirs") or cfg["scene"].get("source_shards"))
    need(not (cfg["scene_backend"] == "torch" and cfg["data_workers"] and not streams), "data_workers",
         "must be 0 with --scene_backend=torch without user corpora (the scenes render on the training device; "
         "with --scene.source_dirs/source_shards, data_workers decode the clips)")
    if cfg["device"] != "auto":
        try:
            dev = torch.device(cfg["device"])
        except RuntimeError:
            dev = None
        need(dev is not None, "device", "is not a device name (auto, cpu, cuda, cuda:N)")
        need(dev.type != "cuda" or torch.cuda.is_available(), "device", "CUDA is not available on this machine")
    need(not (cfg["resume"] and cfg["overwrite"]), "overwrite", "cannot be combined with --resume")
    need(cfg["variant"] in VARIANTS, "variant", f"is not a variant; known: {sorted(VARIANTS)}")
    try:
        mcfg = model_config(cfg)
    except (TypeError, ValueError) as e:
        raise RunError(f"--model={cfg['model']!r}: {e}") from None
    need(cfg["input_frames"] >= mcfg.chunk_frames, "input_frames", f"must be >= chunk_frames={mcfg.chunk_frames} "
                                                                   f"(the 2 s crops are cut from it)")
    return mcfg


def check_out_dir(cfg: dict) -> list:
    """out_dir may be new, empty, hold the run `--resume` continues, or (with --overwrite) hold a run to
    replace; -> the run files --overwrite will remove once the new run is set up.  Nothing is touched here."""
    out = cfg["out_dir"]
    if os.path.exists(out) and not os.path.isdir(out):
        raise RunError(f"--out_dir={out!r} is a file, not a folder")
    run = [n for n in RUN_FILES if os.path.lexists(os.path.join(out, n))]
    if cfg["resume"]:
        return []
    if run and not cfg["overwrite"]:
        raise RunError(f"--out_dir={out!r} holds a run ({', '.join(run)}): pass --resume to continue it or "
                       f"--overwrite to replace it")
    parent = out if os.path.isdir(out) else os.path.dirname(os.path.abspath(out))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise RunError(f"--out_dir={out!r}: {parent} is not writable")
    return run


def prepare_out_dir(out: str, replace: list) -> None:
    """Rank 0, once the run is set up: create out_dir, remove the replaced run's files (--overwrite) and the
    temporary files of a killed checkpoint write (reported on stderr)."""
    os.makedirs(out, exist_ok=True)
    for name in replace:
        p = os.path.join(out, name)
        shutil.rmtree(p) if os.path.isdir(p) and not os.path.islink(p) else os.remove(p)
    if replace:
        print(f"--overwrite: removed the previous run's {', '.join(replace)} from {out}", file=sys.stderr)
    stale = stale_checkpoint_temporaries(out)
    for p in stale:
        os.remove(p)
    if stale:
        print(f"removed {len(stale)} temporary checkpoint file(s) left by a killed write: "
              f"{', '.join(os.path.basename(p) for p in stale)}", file=sys.stderr)


def get_lr(step: int, lr: float, warmup: int, max_steps: int, min_lr: float = 0.0) -> float:
    """Linear warm-up from 0, then half a cosine to min_lr (transformers' get_cosine_schedule_with_warmup,
    gram_spec §7.4); `step` = optimizer steps already taken."""
    if step < warmup:
        return lr * step / warmup
    progress = min(1.0, (step - warmup) / max(1, max_steps - warmup))
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


# ----------------------------------------------------------------------------- checkpoints and RNG
def read_checkpoint(path: str) -> dict:
    """A training checkpoint, or a RunError saying what is wrong with the file (missing, empty, truncated,
    not a checkpoint, or lacking an entry such as the optimizer state)."""
    if not os.path.exists(path):
        raise RunError(f"no training checkpoint at {path}")
    if os.path.getsize(path) == 0:
        raise RunError(f"{path} is empty (0 bytes): not a training checkpoint")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)  # tensors and plain containers only
    except (EOFError, RuntimeError, OSError, pickle.UnpicklingError, ValueError) as e:
        raise RunError(f"{path} is not a readable training checkpoint ({type(e).__name__}: "
                       f"{str(e).splitlines()[0] if str(e) else 'truncated'})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CKPT_FORMAT:
        raise RunError(f"{path} is not a hear_gram training checkpoint (holds a {type(ckpt).__name__}"
                       f"{'' if not isinstance(ckpt, dict) else ' without format ' + repr(CKPT_FORMAT)})")
    missing = [k for k in CKPT_KEYS if k not in ckpt]
    if missing:
        raise RunError(f"{path} is an incomplete training checkpoint: it lacks {missing}")
    return ckpt


def atomic_save(obj, path: str) -> None:
    """torch.save through a temporary file renamed over `path`: a crash mid-write never leaves a truncated
    checkpoint, and a failed write (full disk) removes its temporary file and keeps the previous checkpoint."""
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: write errors are real OSErrors
            torch.save(obj, f)
    except OutputError as e:
        raise RunError(f"{e}; the previous checkpoint is kept") from e


def stale_checkpoint_temporaries(out_dir: str) -> list:
    """Temporary checkpoint files a killed write left in out_dir (this version's and the older ckpt.pt.tmp<pid>)."""
    path = os.path.join(out_dir, CKPT_NAME)
    return sorted(set(stale_temporaries(path)) | set(glob.glob(glob.escape(path) + ".tmp*")))


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


# ----------------------------------------------------------------------------- helpers of train()
@dataclass
class Placement:
    """Where this process runs: device and, under torchrun, its rank in the process group."""
    device: torch.device
    ddp: bool = False
    rank: int = 0
    local_rank: int = 0
    world: int = 1

    @property
    def master(self) -> bool:
        return self.rank == 0


def place(cfg: dict) -> Placement:
    """Device, CPU threads and (torchrun sets RANK / LOCAL_RANK / WORLD_SIZE) the DDP process group."""
    ddp = int(os.environ.get("RANK", -1)) != -1
    rank, local_rank, world = (int(os.environ[k]) for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE")) if ddp else (0, 0, 1)
    name = cfg["device"]
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if ddp and name == "cuda":
        name = f"cuda:{local_rank}"
    device = torch.device(name)
    if device.type == "cuda":
        if device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True  # as the official run
    if ddp:
        dist.init_process_group(cfg["backend"] if cfg["backend"] != "auto" else
                                ("nccl" if device.type == "cuda" else "gloo"))
    if device.type == "cpu":
        local = int(os.environ.get("LOCAL_WORLD_SIZE", world if ddp else 1))
        torch.set_num_threads(cfg["threads"] or max(1, (os.cpu_count() or 1) // local))
    return Placement(device, ddp, rank, local_rank, world)


def autocast_for(cfg: dict, device: torch.device):
    """bfloat16 autocast on CUDA by default (the official bf16-mixed), float32 (no autocast) on the CPU."""
    dtype = {"auto": torch.bfloat16 if device.type == "cuda" else torch.float32, "float32": torch.float32,
             "bfloat16": torch.bfloat16}[cfg["dtype"]]
    return torch.autocast(device.type, dtype=dtype) if dtype != torch.float32 else contextlib.nullcontext()


def checkpoint_to_resume(cfg: dict, path: str):
    """The checkpoint `--resume` continues (None without --resume); it must describe the same run."""
    if not cfg["resume"]:
        return None
    ckpt = read_checkpoint(path)
    saved = {**DEFAULTS, **ckpt["config"]}  # keys added since the checkpoint was written: their defaults
    diff = sorted(k for k in DEFAULTS if k not in RESUME_FREE and saved[k] != cfg[k])
    if diff:
        raise RunError(f"cannot resume {path}: settings differ from the checkpoint's: "
                       + ", ".join(f"{k}={cfg[k]!r} (checkpoint {saved[k]!r})" for k in diff))
    return ckpt


def build_model(mcfg: GramConfig, seed: int, device: torch.device) -> PretrainModel:
    """The model, identically initialised on every rank (seeded)."""
    torch.manual_seed(seed)
    return PretrainModel(mcfg).to(device)


def build_optimizer(cfg: dict, model: torch.nn.Module, device: torch.device):
    """(trainable parameters, AdamW): no parameter groups (gram_spec §7.4); fused on CUDA."""
    params = [p for p in model.parameters() if p.requires_grad]
    return params, torch.optim.AdamW(params, lr=cfg["lr"], betas=cfg["betas"], weight_decay=cfg["weight_decay"],
                                     **({"fused": True} if device.type == "cuda" else {}))


def restore(ckpt: dict, model, optimizer, stream: CropStream, where: Placement) -> int:
    """Load weights, optimizer and (same world size) this rank's RNG and data position; returns the step."""
    saved = ckpt["rng"][0]["data"].get("backend")  # the resolved scene backend (auto picks by device)
    if saved is not None and saved != stream.synth.backend:
        raise RunError(f"cannot resume {ckpt['config']['out_dir']}: its scenes came from the {saved!r} scene backend "
                       f"and this run's is {stream.synth.backend!r} (scene_backend=auto picks by device): pass "
                       f"--scene_backend={saved}")
    model.load_official_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    if len(ckpt["rng"]) == where.world:
        set_rng_state(ckpt["rng"][where.rank], stream)
    elif where.master:
        print(f"resuming {where.world} ranks from a {len(ckpt['rng'])}-rank checkpoint: data streams are reseeded",
              file=sys.stderr)
    return ckpt["step"]


def save_checkpoint(path: str, cfg: dict, mcfg: GramConfig, model, optimizer, step: int, stream: CropStream,
                    where: Placement) -> None:
    """Every rank contributes its RNG and data position; rank 0 writes (temporary file, then rename)."""
    states = [None] * where.world
    if where.ddp:
        dist.all_gather_object(states, rng_state(stream))
    else:
        states[0] = rng_state(stream)
    if where.master:
        atomic_save({"format": CKPT_FORMAT, "version": 1, "config": cfg, "model_config": mcfg.to_dict(),
                     "model": model.official_state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                     "world_size": where.world, "rng": states}, path)


def step_stats(loss: torch.Tensor, grad_norm: torch.Tensor, where: Placement) -> tuple:
    """(loss, grad norm) as floats, averaged over ranks, so every rank takes the same stop decision."""
    stats = torch.stack([loss.detach().float(), grad_norm.detach().float()])
    if where.ddp:
        dist.all_reduce(stats)
        stats /= where.world
    return tuple(stats.tolist())


class RunLog:
    """Rank 0's outputs: config.json, log.jsonl, the progress bar, TensorBoard scalars, reconstruction PNGs."""

    def __init__(self, cfg: dict, mcfg: GramConfig, where: Placement, step: int, end: int):
        self.cfg, self.mcfg, self.on, self.out_dir = cfg, mcfg, where.master, cfg["out_dir"]
        self.writer = self.pbar = None
        if not self.on:
            return
        write_text(os.path.join(self.out_dir, "config.json"),
                   json.dumps({"train": cfg, "model": mcfg.to_dict(), "world_size": where.world}, indent=2))
        self.writer = open_writer(self.out_dir, step, cfg["tensorboard"])
        if cfg["progress"]:
            from tqdm import tqdm

            self.pbar = tqdm(total=end, initial=step, desc="train", dynamic_ncols=True)

    def step(self, step: int, end: int, loss: float, lr: float, gnorm: float, rate: float, dt: float, pred, target,
             mask) -> None:
        if not self.on:
            return
        cfg, w = self.cfg, self.writer
        if w is not None:
            for k, v in (("loss", loss), ("lr", lr), ("grad_norm", gnorm), ("crops_per_s", rate)):
                w.add_scalar(f"train/{k}", v, step)
        if step % cfg["log_every"] == 0 or step == 1 or step == end:
            line = dict(step=step, loss=round(loss, 6), lr=lr, grad_norm=round(gnorm, 4), crops_per_s=round(rate, 2),
                        step_s=round(dt, 4))
            msg = f"step {step}: loss {loss:.4f} lr {lr:.2e} |g| {gnorm:.3f} {rate:.1f} crops/s"
            if self.mcfg.in_channels == 2:  # the interaural part of the loss (training.recon), rank 0's crops
                with torch.no_grad():
                    ia = loss_parts(pred.detach(), target, mask, 2)["interaural"].mean().item()
                line["loss_interaural"] = round(ia, 6)
                msg += f" (interaural {ia:.4f})"
                if w is not None:
                    w.add_scalar("train/loss_interaural", ia, step)
            with open(os.path.join(self.out_dir, "log.jsonl"), "a") as f:
                f.write(json.dumps(line) + "\n")
            (self.pbar.write if self.pbar is not None else print)(msg)
        if cfg["image_every"] and step % cfg["image_every"] == 0:
            self.image(step, loss, pred, target, mask)
        if self.pbar is not None:
            self.pbar.update(1)
            self.pbar.set_postfix(loss=f"{loss:.4f}")

    def image(self, step, loss, pred, target, mask) -> None:
        fig = reconstruction_figure(pred[0].detach(), target[0].detach(), mask[0], self.mcfg,
                                    f"step {step}, loss {loss:.4f}")
        os.makedirs(os.path.join(self.out_dir, "images"), exist_ok=True)
        fig.savefig(os.path.join(self.out_dir, "images", f"step_{step:07d}.png"), dpi=80)
        if self.writer is not None:
            self.writer.add_figure("reconstruction", fig, step)  # closes the figure
        else:
            import matplotlib.pyplot as plt

            plt.close(fig)

    def close(self) -> None:
        if self.pbar is not None:
            self.pbar.close()
        if self.writer is not None:
            self.writer.close()


# ----------------------------------------------------------------------------- the run
def train(cfg: dict) -> dict:
    """Run (or resume) one training job; returns {"step", "losses" (this invocation), "out_dir"}."""
    # -- setup: every setting and out_dir checked first, then device and process group, the checkpoint to resume
    mcfg = check_config(cfg)
    replace = check_out_dir(cfg)
    where = place(cfg)
    device, ckpt_path = where.device, os.path.join(cfg["out_dir"], CKPT_NAME)
    stream = log = None
    try:
        ckpt = checkpoint_to_resume(cfg, ckpt_path)
        # -- model and data
        raw_model = build_model(mcfg, cfg["seed"], device)
        stream = CropStream(SceneConfig.preset(cfg["scene_preset"], cfg["scene"]), mcfg, cfg["clips"],
                            cfg["crops_per_clip"], cfg["input_frames"], seed=cfg["seed"], rank=where.rank,
                            device=device, workers=cfg["data_workers"], backend=cfg["scene_backend"])
        # -- optimiser (and the resumed state)
        params, optimizer = build_optimizer(cfg, raw_model, device)
        step = restore(ckpt, raw_model, optimizer, stream, where) if ckpt is not None else 0
        model = torch.compile(raw_model) if cfg["compile"] else raw_model
        if where.ddp:
            model = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None)
        autocast = autocast_for(cfg, device)
        # -- loop
        end = cfg["max_steps"] if cfg["stop_at_step"] < 0 else min(cfg["stop_at_step"], cfg["max_steps"])
        if where.master:  # the run is set up: only now is out_dir touched
            prepare_out_dir(cfg["out_dir"], replace)
        log = RunLog(cfg, mcfg, where, step, end)
        losses, last_saved = [], step if ckpt is not None else None
        while step < end:
            t0 = time.perf_counter()
            lr = get_lr(step, cfg["lr"], cfg["warmup_steps"], cfg["max_steps"], cfg["min_lr"])
            for group in optimizer.param_groups:
                group["lr"] = lr
            x, mask = stream.next_batch(raw_model.encoder.melspec)  # (B*K, C, 200, 128), (B*K, N)
            if step == cfg["debug_nan_step"]:
                x = x * float("nan")
            with autocast:
                loss, pred, target = model(x, mask)
            loss.backward()
            loss_v, gnorm_v = step_stats(loss, torch.nn.utils.clip_grad_norm_(params, cfg["grad_clip"]), where)
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
            log.step(step, end, loss_v, lr, gnorm_v, stream.crops * where.world / dt, dt, pred, target, mask)
            if step % cfg["ckpt_every"] == 0 or step == end:
                save_checkpoint(ckpt_path, cfg, mcfg, raw_model, optimizer, step, stream, where)
                last_saved = step
        return {"step": step, "losses": losses, "out_dir": cfg["out_dir"]}
    finally:
        if log is not None:
            log.close()
        if stream is not None:
            stream.close()
        if where.ddp:
            dist.destroy_process_group()


def main(argv=None) -> int:
    try:
        cfg = resolve_config(sys.argv[1:] if argv is None else argv)
    except (TypeError, ValueError) as e:  # training/config.py: unknown key, wrong type, unknown preset
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        result = train(cfg)
    except (NonFiniteLoss, RunError, OutputError) as e:
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
