"""The HEAR runtime: audio in, scene and timestamp embeddings out (gram_spec §6).

Audio: float tensor or array at 32 kHz, one of
  (n, samples)        mono;
  (n, 2, samples)     binaural, channel 0 = left (1 channel is accepted as mono);
  (n, samples, 2)     the same, time-major (what heareval hands over for stereo wav files).
Mono audio goes into a binaural model as identical left and right features (the official rule,
gram_spec §1.2); binaural audio into a mono model is averaged first.

Default runtime (`compat=False`): the clip's log-mel (T frames) is covered by 2 s chunks starting at
0, 200, 400, ... frames; the last chunk is moved back so that it ends with the clip (aligned to the
token grid), so no chunk is mostly padding.  Only clips shorter than 2 s are padded, with the value
0.0 the official runtime and training use.  Chunks of all clips run batched (at most `max_chunks`
per forward pass).  Output frames are the token columns whose centre lies inside the clip; each
token-time comes from exactly one chunk, timestamps are token centres in ms, and the scene embedding
is the mean over those output frames (no padding enters it).  The declared sizes equal the returned
sizes.

Official-compatibility runtime (`compat=True`): the official HEAR runtime exactly (padding to a
multiple of 200 frames with 0.0 including a whole extra chunk when T is already a multiple of 200,
mean over all chunks for mean/cls, timestamps i * duration / X).  One defect is not reproduced: the
official code reads the channel count as the clip length for binaural input; here the true length
is used.  See README "Differences from the official implementation".
"""

import contextlib
import math
import warnings

import numpy as np
import torch
from torch import nn

from . import checkpoint, hub
from .features import check_log_eps
from .model import STRATEGIES, VARIANTS, GramConfig, GramEncoder

# Largest accepted |sample|: a bin of the 1024-point Hann STFT has power at most (512 * peak)^2, which the
# float32 power spectrum holds up to a peak of 3.6e16; beyond it the log-mel is inf or NaN and so are the
# embeddings (a DC signal of 1e17 already overflows).  Audio is expected in [-1, 1]; int16- or int32-scaled
# floats are far below the limit.
MAX_AMPLITUDE = 1e16
DEFAULT_MAX_CHUNKS = {"cpu": 8, "cuda": 64}
FRONT_END_BATCH = 4  # chunks per STFT call: the front end's working memory, independent of max_chunks
# dtype of the returned timestamp embeddings (the scene embedding is always float32): fp16 halves the
# raw output (1 h of GRAM-T patch raw: 45,000 x 6144 floats = 1.1 GB in float32)
OUT_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# encoder precision: autocast dtype (None: float32).  int8 = dynamic quantization of every nn.Linear on the CPU
# (an approximation, see README "Speed"); auto = the fastest measured safe mode for the device at each call.
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16, "int8": None, "auto": None}


def cpu_has_native(dtype: torch.dtype) -> bool:
    """Whether this CPU runs `dtype` matmuls natively in oneDNN (AVX512-BF16 / AMX / AVX512-FP16); without
    it autocast emulates them (measured 5.6x slower than fp32 for bf16 on an AVX2 EPYC)."""
    try:
        if dtype == torch.bfloat16:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        return bool(torch.ops.mkldnn._is_mkldnn_fp16_supported())
    except (AttributeError, RuntimeError):
        return False


def quantize_int8(model: nn.Module) -> nn.Module:
    """A dynamically quantized copy of `model` for the CPU: every nn.Linear, and the ViT's packed q/k/v
    projection (given an nn.Linear view of its weights first), gets int8 weights and int8 activations
    quantized per batch (torch.ao dynamic quantization, fbgemm/x86 engine).  The float model is untouched."""
    import copy

    from torch.ao.quantization import quantize_dynamic

    from .vit import SelfAttention

    q = copy.deepcopy(model).float().cpu().eval()
    for m in q.modules():
        if isinstance(m, SelfAttention):
            lin = nn.Linear(m.in_proj_weight.shape[1], m.in_proj_weight.shape[0])
            lin.weight, lin.bias = m.in_proj_weight, m.in_proj_bias
            m.qkv = lin
    with warnings.catch_warnings():  # torch.ao quantized tensors are marked deprecated in favour of torchao
        warnings.simplefilter("ignore")
        return quantize_dynamic(q, {nn.Linear}, dtype=torch.qint8)
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", "none", ""}


def _as_bool(name, v):
    if isinstance(v, bool) or v is None:
        return bool(v)
    if isinstance(v, (int, np.integer)) and v in (0, 1):
        return bool(v)
    if not isinstance(v, str):
        raise ValueError(f"option {name}={v!r} is not a boolean (true/false, 1/0)")
    s = str(v).strip().lower()
    if s in _TRUE or s == "official":
        return True
    if s in _FALSE:
        return False
    raise ValueError(f"option {name}={v!r} is not a boolean")


def _as_int(name, v, allow_none=True):
    if v is None or (isinstance(v, str) and v.strip().lower() in ("", "none", "null")):
        if allow_none:
            return None
        raise ValueError(f"option {name} needs an integer")
    if isinstance(v, bool):  # True is not 1 here: layer=True is a mistake, not a layer
        raise ValueError(f"option {name}={v!r} is not an integer")
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise ValueError(f"option {name}={v!r} is not an integer") from None
    if not math.isfinite(f) or f != int(f):
        raise ValueError(f"option {name}={v!r} is not an integer")
    return int(f)


def _finite_peak(x: torch.Tensor, block: int = 1 << 20):
    """(all finite, max |x|) of a clip in blocks of samples: checking a long clip allocates no clip-sized
    temporary (and a time-major view is never copied whole)."""
    peak = 0.0
    for a in range(0, x.shape[-1], block):
        part = x[..., a:a + block]
        if not bool(torch.isfinite(part).all()):
            return False, math.inf
        peak = max(peak, float(part.amax()), -float(part.amin()))
    return True, peak


class GramRuntime(nn.Module):
    """A loaded GRAM model with the HEAR attributes and methods.

    Attributes: `sample_rate` (32000), `scene_embedding_size`, `timestamp_embedding_size`,
    `strategy`, `layer`, `compat`, `variant`.
    """

    def __init__(self, model: GramEncoder, variant: str, strategy: str = "raw", layer: int = None,
                 compat: bool = False, max_chunks: int = None, precision: str = "fp32", out_dtype: str = "fp32"):
        super().__init__()
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
        depth = model.config.depth
        if layer is not None and not -depth <= layer <= depth:
            raise ValueError(f"layer={layer} is outside [-{depth}, {depth}]")
        if max_chunks is not None and max_chunks < 1:
            raise ValueError("max_chunks must be >= 1")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
        if out_dtype not in OUT_DTYPES:
            raise ValueError(f"out_dtype must be one of {sorted(OUT_DTYPES)}, got {out_dtype!r}")
        if strategy == "cls" and model.config.encoder == "mamba":
            warnings.warn("GRAM-M's causal scan puts CLS first, so its 'cls' output does not depend on the "
                          "audio (gram_spec §3.2); use 'mean' or 'raw'", stacklevel=2)
        self.model = model.eval()
        self.variant, self.strategy, self.layer, self.compat = variant, strategy, layer, compat
        self._max_chunks = max_chunks
        self.precision = precision
        self._cache = {}  # derived models (the int8 copy); a plain dict, so not part of the state dict
        self._warned = False
        self.out_dtype = out_dtype
        c = model.config
        self.sample_rate = int(c.sample_rate)
        gf, _ = c.grid
        size = gf * c.dim if strategy == "raw" else c.dim
        self.scene_embedding_size = self.timestamp_embedding_size = int(size)

    @property
    def config(self) -> GramConfig:
        return self.model.config

    @property
    def max_chunks(self) -> int:
        """Chunks per forward pass: the option, or the device's default, 8 on a CPU (measured: 8 chunks per
        pass ran ~20 % faster than 32 on an AVX2 EPYC, the matmuls stay in cache) and 64 on a GPU."""
        if self._max_chunks is not None:
            return self._max_chunks
        return DEFAULT_MAX_CHUNKS.get(self.device.type, 8)

    @property
    def device(self) -> torch.device:
        return self.model.cls_token.device

    def train(self, mode: bool = True):  # the runtime is inference-only
        return super().train(False)

    # -- input checks -----------------------------------------------------------------------------
    def prepare_audio(self, audio) -> torch.Tensor:
        """Any accepted audio layout -> (n, channels, samples) float32 on the model's device."""
        return self._layout(audio).to(self.device, torch.float32)

    def _layout(self, audio) -> torch.Tensor:
        """Any accepted audio layout -> a checked (n, channels, samples) view of it (no copy: long clips are
        converted chunk by chunk, where and when each chunk is needed)."""
        if isinstance(audio, np.ndarray):
            if not (np.issubdtype(audio.dtype, np.floating)):
                raise TypeError(f"audio of dtype {audio.dtype} is not accepted: pass float audio in [-1, 1] "
                                f"(for int16 PCM: audio.astype(np.float32) / 32768)")
            audio = torch.from_numpy(np.ascontiguousarray(audio))
        if not isinstance(audio, torch.Tensor):
            raise TypeError(f"audio must be a torch.Tensor or numpy array, got {type(audio).__name__}")
        if not audio.is_floating_point():
            raise TypeError(f"audio of dtype {audio.dtype} is not accepted: pass float audio in [-1, 1] "
                            f"(for int16 PCM: audio.float() / 32768)")
        if audio.ndim == 2:
            x = audio[:, None, :]
        elif audio.ndim == 3:
            a, b = audio.shape[1], audio.shape[2]
            if a <= 2 < b:
                x = audio
            elif b <= 2 < a:
                x = audio.transpose(1, 2)
            elif a > 2 and b > 2:
                raise ValueError(f"audio of shape {tuple(audio.shape)} has more than 2 channels: GRAM takes mono "
                                 f"(n, samples) or binaural (n, 2, samples) / (n, samples, 2) audio; for "
                                 f"first-order ambisonics pass channel 0 (W) as mono")
            else:  # both <= 2: whichever is the time axis, the clip is far too short
                raise ValueError(f"audio of shape {tuple(audio.shape)} is too short: clips need at least "
                                 f"{self.model.melspec.min_samples} samples")
        elif audio.ndim == 1:
            raise ValueError(f"audio of shape {tuple(audio.shape)}: expected a batch (n_sounds, n_samples); "
                             f"for a single clip pass audio[None]")
        else:
            raise ValueError(f"audio must be 2-D (n, samples) or 3-D (n, channels, samples), got shape "
                             f"{tuple(audio.shape)}")
        n, _, n_samples = x.shape
        if n and n_samples < self.model.melspec.min_samples:
            raise ValueError(f"clips of {n_samples} samples are too short: the 1024-point STFT needs at least "
                             f"{self.model.melspec.min_samples} samples ({1000 * self.model.melspec.min_samples / self.sample_rate:.1f} ms at {self.sample_rate} Hz)")
        finite, peak = zip(*[_finite_peak(x[i]) for i in range(n)]) if n else ((), ())
        bad = [i for i in range(n) if not finite[i]]
        if bad:
            raise ValueError(f"audio contains NaN or inf (clips {bad[:10]}{' ...' if len(bad) > 10 else ''})")
        if n:
            peak = torch.tensor(peak)
            loud = (peak > MAX_AMPLITUDE).nonzero().flatten().tolist()
            if loud:
                raise ValueError(f"audio peak |x| = {peak.max().item():.3g} (clips {loud[:10]}"
                                 f"{' ...' if len(loud) > 10 else ''}) is above {MAX_AMPLITUDE:.0e}, where the "
                                 f"log-mel power overflows float32: pass float audio in [-1, 1]")
        return x

    def logmel(self, audio) -> torch.Tensor:
        """Audio -> log-mel (n, in_channels, T, 128) with the model's channel policy."""
        return self._logmel(self.prepare_audio(audio))

    def _logmel(self, x: torch.Tensor) -> torch.Tensor:
        want = self.config.in_channels
        if x.shape[1] == want:
            return self.model.melspec(x)
        if want == 1:  # binaural into a mono model: waveform average (gram_spec §1.2)
            return self.model.melspec(x.mean(dim=1, keepdim=True))
        if x.shape[1] == 1:  # mono into a binaural model: identical features for both ears
            return self.model.melspec(x).expand(-1, want, -1, -1)
        raise ValueError(f"{x.shape[1]}-channel audio for a {want}-channel model")

    # -- chunk plan -------------------------------------------------------------------------------
    def _plan(self, n_frames: int, n_samples: int):
        """-> (padded length, chunk starts, n output frames X) for the default runtime."""
        c = self.config
        tok = c.patch[1]
        hop_ms = 1000.0 * c.hop_length / c.sample_rate
        dur_ms = 1000.0 * n_samples / self.sample_rate
        # token g covers frames [g*tok, (g+1)*tok); its centre is at (g*tok + (tok-1)/2) frames.
        x_out = math.floor((dur_ms / hop_ms - (tok - 1) / 2) / tok) + 1
        x_out = max(1, min(x_out, math.ceil(n_frames / tok)))
        need = x_out * tok
        starts = list(range(0, need - c.chunk_frames + 1, c.chunk_frames))
        if not starts or starts[-1] + c.chunk_frames < need:
            starts.append(max(0, need - c.chunk_frames))
        return max(need, c.chunk_frames), starts, x_out

    def _inside(self, ts: torch.Tensor, n_samples: int) -> torch.Tensor:
        """A clip shorter than the first token's centre (35 ms for 16x8 patches) still has one output frame;
        its time is the clip's middle, never a time after the clip's end."""
        dur_ms = 1000.0 * n_samples / self.sample_rate
        return torch.where(ts > dur_ms, torch.full_like(ts, dur_ms / 2), ts)

    def token_centres_ms(self, tokens: torch.Tensor) -> torch.Tensor:
        """Centre (ms) of token-time indices: token g covers frames [g*tok, (g+1)*tok) at 10 ms each."""
        c = self.config
        tok = c.patch[1]
        hop_ms = 1000.0 * c.hop_length / c.sample_rate
        return (tokens.to(torch.float64) * tok + (tok - 1) / 2) * hop_ms

    # -- encoder over chunks ------------------------------------------------------------------------
    def effective_precision(self) -> str:
        """The precision the encoder runs in on the current device: `auto` -> bf16 on a CUDA GPU with bf16
        (fp16 on older GPUs), fp32 on a CPU; bf16/fp16 on a CPU without native support -> fp32 with a warning;
        int8 off the CPU is an error."""
        p, dev = self.precision, self.device.type
        if p == "auto":
            if dev == "cuda":
                return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
            return "fp32"
        if p == "int8" and dev != "cpu":
            raise ValueError(f"precision='int8' is a CPU mode (dynamic quantization); the model is on {dev}: "
                             f"use 'bf16' or 'auto' there")
        if p in ("bf16", "fp16") and dev == "cpu" and not cpu_has_native(PRECISIONS[p]):
            if not self._warned:
                warnings.warn(f"precision={p!r}: this CPU has no native {p} matmuls (oneDNN reports none), so "
                              f"autocast would emulate them, several times slower than fp32 (5.6x measured for bf16 "
                              f"on an AVX2 CPU); running in fp32.  On a CPU, 'int8' is the fast approximate mode",
                              stacklevel=3)
                self._warned = True
            return "fp32"
        return p

    def _encode(self, chunks: torch.Tensor) -> torch.Tensor:
        """(M, C, 200, 128) -> tokens (M, 1 + N, D) float32, at most `max_chunks` per pass; the encoder runs
        under autocast when the precision is bf16/fp16, on a dynamically quantized copy for int8 (the front
        end and normalisation stay float32)."""
        p = self.effective_precision()
        model = self.model
        if p == "int8":
            if self._cache.get("int8") is None:
                self._cache["int8"] = quantize_int8(self.model)
            model = self._cache["int8"]
        dtype = PRECISIONS[p]
        ctx = torch.autocast(self.device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
        with ctx:
            outs = [model.forward_features(chunks[i:i + self.max_chunks], layer=self.layer).float()
                    for i in range(0, chunks.shape[0], self.max_chunks)]
        return torch.cat(outs) if outs else chunks.new_zeros(0, 1 + self.config.n_tokens, self.config.dim)

    def _chunk_logmels(self, x: torch.Tensor, items, n_total: int, offset: int = 0) -> torch.Tensor:
        """Log-mel chunks (len(items), in_channels, chunk_frames, n_mels) float32 on the model's device for
        (clip index, start frame) items of x (n, C, samples), which holds samples [offset, ...) of clips of
        `n_total` samples.  Each chunk's STFT reads only its own 2 s plus the STFT's context (gram_spec §1),
        so memory does not grow with the clip; frames after the clip's end are 0.0 (the official padding)."""
        mel, cf = self.model.melspec, self.config.chunk_frames
        want = self.config.in_channels
        lms = []
        for a in range(0, len(items), FRONT_END_BATCH):  # the float64 STFT of 4 chunks is ~35 MB
            segs = torch.stack([mel.segment(x[i], s, cf, n_total, offset) for i, s in items[a:a + FRONT_END_BATCH]])
            segs = segs.to(self.device, torch.float32)
            if segs.shape[1] != want and want == 1:  # binaural into a mono model: waveform average (§1.2)
                segs = segs.mean(dim=1, keepdim=True)
            elif segs.shape[1] != want and segs.shape[1] != 1:
                raise ValueError(f"{segs.shape[1]}-channel audio for a {want}-channel model")
            lms.append(mel.segment_logmel(segs))
        lm = torch.cat(lms) if len(lms) > 1 else lms[0]
        n_frames = mel.n_frames(n_total) if n_total is not None else math.inf  # None: all inside
        for k, (_, s) in enumerate(items):
            if s + cf > n_frames:
                lm[k, :, max(n_frames - s, 0):] = 0.0
        if lm.shape[1] != want:  # mono into a binaural model: identical features for both ears
            lm = lm.expand(-1, want, -1, -1)
        return lm

    def _chunk_outputs(self, tokens: torch.Tensor, valid: torch.Tensor = None) -> torch.Tensor:
        """Tokens (m, 1 + N, D) -> per-chunk output: raw (m, T', F'*D); mean/cls (m, D).  `valid` (m, T')
        marks the token columns inside the clip for the default runtime's `mean` (None: all)."""
        if self.strategy == "mean" and valid is not None and not self.compat:
            return self.model.pool(tokens, "mean", valid=valid.to(tokens.device))
        return self.model.pool(tokens, self.strategy)

    def _columns(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens (m, 1 + N, D) -> token-column means over frequency (m, T', D) (the `mean` scene's frames)."""
        c = self.config
        return tokens[:, 1:].reshape(tokens.shape[0], c.grid[0], c.grid[1], c.dim).mean(dim=1)

    def chunk_plan(self, n_samples: int):
        """The chunks of a clip of `n_samples` samples: list of (start frame, first output frame, end output
        frame, first token column used) for raw output, the output frame count X and the padded length."""
        c = self.config
        tok, gt = c.patch[1], c.grid[1]
        n_frames = self.model.melspec.n_frames(n_samples)
        if self.compat:
            cf = c.chunk_frames
            pad = cf - n_frames % cf  # in [1, 200]: a whole padded chunk when n_frames is a multiple of 200
            k = (n_frames + pad) // cf
            x_out = k * gt - int(gt * pad / cf)
            return [(j * cf, j * gt, min((j + 1) * gt, x_out), 0) for j in range(k)], x_out
        _, starts, x_out = self._plan(n_frames, n_samples)
        plan, done = [], 0
        for s in starts:  # output frame g comes from the first chunk that covers it
            first = s // tok
            end = min(first + gt, x_out)
            plan.append((s, done, end, done - first))
            done = end
        return plan, x_out

    @torch.no_grad()
    def embed(self, audio):
        """-> (timestamp embeddings (n, X, size), timestamps (n, X) ms, scene embeddings (n, size)).

        Chunk by chunk: at most `max_chunks` 2 s chunks (log-mel, encoder, pooling) are in memory at once,
        so the memory beyond the input and the returned embeddings does not grow with the clip's length."""
        x = self._layout(audio)
        n, n_samples = x.shape[0], x.shape[-1]
        dev = self.device
        if n == 0:
            z = torch.zeros
            return (z(0, 0, self.timestamp_embedding_size, device=dev), z(0, 0, device=dev),
                    z(0, self.scene_embedding_size, device=dev))
        c = self.config
        tok, gt = c.patch[1], c.grid[1]
        plan, x_out = self.chunk_plan(n_samples)
        k = len(plan)
        per_frame = self.strategy == "raw"
        out = torch.empty(n, x_out if per_frame else k, self.timestamp_embedding_size, device=dev,
                          dtype=OUT_DTYPES[self.out_dtype])
        # the scene embedding is accumulated in float64 from the float32 outputs: mean over output frames
        # (raw; token columns for `mean`), over chunks (cls, compat)
        scene_sum = torch.zeros(n, self.scene_embedding_size, dtype=torch.float64, device=dev)
        valid = torch.stack([(s // tok + torch.arange(gt)) < x_out for s, *_ in plan])  # (K, T')
        items = [(i, j) for i in range(n) for j in range(k)]
        for a in range(0, len(items), self.max_chunks):
            group = items[a:a + self.max_chunks]
            tokens = self._encode(self._chunk_logmels(x, [(i, plan[j][0]) for i, j in group], n_samples))
            res = self._chunk_outputs(tokens, valid[[j for _, j in group]])
            cols = self._columns(tokens) if self.strategy == "mean" and not self.compat else None
            for m, (i, j) in enumerate(group):
                _, lo, hi, src = plan[j]
                if per_frame:
                    out[i, lo:hi] = res[m, src:src + hi - lo]
                    scene_sum[i] += res[m, src:src + hi - lo].double().sum(0)
                else:
                    out[i, j] = res[m]
                    scene_sum[i] += (res[m] if cols is None else cols[m, src:src + hi - lo].sum(0)).double()
        if self.compat:
            step = n_samples / self.sample_rate / out.shape[1] * 1000.0
            ts = torch.arange(out.shape[1], dtype=torch.float64) * step
        elif per_frame:
            ts = self._inside(self.token_centres_ms(torch.arange(x_out)), n_samples)
        else:
            ts = self._inside(torch.stack([self.token_centres_ms(s // tok + torch.arange(gt)[valid[j]]).mean()
                                           for j, (s, *_) in enumerate(plan)]), n_samples)
        scene = (scene_sum / (x_out if per_frame or self.strategy == "mean" and not self.compat else k)).float()
        return out, ts.to(dev, torch.float32).expand(n, -1), scene

    def stream(self, channels: int = None):
        """A `hear_gram.stream.EmbeddingStream`: push blocks of audio, get each timestamp embedding as soon as
        its chunk is complete, `flush()` for the tail; equal to `get_timestamp_embeddings` of the whole clip."""
        from .stream import EmbeddingStream

        return EmbeddingStream(self, channels)

    # -- HEAR API ---------------------------------------------------------------------------------
    def get_timestamp_embeddings(self, audio):
        emb, ts, _ = self.embed(audio)
        return emb, ts

    def get_scene_embeddings(self, audio):
        return self.embed(audio)[2]


def hear_module(variant: str):
    """The three HEAR functions of one variant (what `hear_gram.<variant>` exports)."""

    def load_model(model_file_path: str = "", **options):
        return load_runtime(variant, model_file_path, **options)

    def get_scene_embeddings(audio, model):
        return model.get_scene_embeddings(audio)

    def get_timestamp_embeddings(audio, model):
        return model.get_timestamp_embeddings(audio)

    load_model.__doc__ = f"HEAR load_model for {variant}: see hear_gram.runtime.load_runtime."
    return load_model, get_scene_embeddings, get_timestamp_embeddings


OPTIONS = ("strategy", "layer", "compat", "max_chunks", "precision", "out_dtype", "revision", "repo_id", "log_eps",
           "use_mwmae_decoder", "in_channels")


def load_runtime(variant: str, model_file_path: str = "", **options) -> GramRuntime:
    """Build a variant's runtime with weights from `model_file_path` (file, folder, 'owner/name[@rev]',
    or '' for the variant's Hub repo).  Options (strings from heareval's --model-options are parsed):
    strategy ('raw' | 'mean' | 'cls'), layer (int), compat (bool: official runtime semantics),
    max_chunks (chunks per forward pass; default 8 on a CPU, 64 on a GPU), precision ('fp32' | 'bf16' | 'fp16': autocast of the encoder, for
    GPUs and CPUs with native support, else fp32 with a warning; 'int8': dynamically quantized encoder on the
    CPU, an approximation; 'auto': bf16 on CUDA, fp32 on a CPU; parity holds in fp32 only), out_dtype ('fp32' | 'fp16' | 'bf16': dtype of the returned timestamp
    embeddings; the scene embedding stays float32), revision, repo_id, log_eps (override the weights' log offset);
    use_mwmae_decoder / in_channels are accepted for compatibility with the official option strings."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise TypeError(f"unknown option(s) {unknown}; accepted: {list(OPTIONS)}")
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; known: {sorted(VARIANTS)}")
    v = VARIANTS[variant]
    if "use_mwmae_decoder" in options and not _as_bool("use_mwmae_decoder", options["use_mwmae_decoder"]):
        raise ValueError("use_mwmae_decoder=false: only the MW-MAE decoder layout exists (gram_spec §3.4)")
    weights, config_json = hub.resolve_weights(model_file_path, v, revision=options.get("revision"),
                                               repo_id=options.get("repo_id"))
    shapes, _, meta = checkpoint.read_header(weights)
    cfg, _ = checkpoint.resolve_config(shapes, meta, config_json, base=v.config, weights=weights)
    if cfg.in_channels not in (1, 2):
        raise checkpoint.CheckpointError(f"{weights} holds a model with {cfg.in_channels} input channels: hear_gram "
                                         f"runs mono (1) and binaural (2) models; ambisonics is not supported yet")
    if cfg.encoder != v.config.encoder or cfg.patch != v.config.patch:
        kind = {"transformer": "GRAM-T", "mamba": "GRAM-M"}[cfg.encoder]
        match = [name for name, x in VARIANTS.items() if (x.config.encoder, x.config.patch) == (cfg.encoder, cfg.patch)]
        raise checkpoint.CheckpointError(
            f"{weights} holds a {kind} model with {cfg.patch[0]}x{cfg.patch[1]} patches, not {variant}; "
            f"load it with hear_gram.{match[0] if match else '?'}")
    if options.get("in_channels") is not None and _as_int("in_channels", options["in_channels"]) != cfg.in_channels:
        raise ValueError(f"in_channels={options['in_channels']} but the weights are for {cfg.in_channels} channels")
    if options.get("log_eps") is not None:
        cfg = GramConfig(**{**cfg.to_dict(), "log_eps": check_log_eps(options["log_eps"], "option log_eps")})
    model = checkpoint.load_encoder_file(weights, cfg)
    return GramRuntime(model, variant, strategy=str(options.get("strategy") or v.default_strategy),
                       layer=_as_int("layer", options.get("layer")),
                       compat=_as_bool("compat", options.get("compat", False)),
                       max_chunks=_as_int("max_chunks", options.get("max_chunks")),
                       precision=str(options.get("precision") or "fp32"),
                       out_dtype=str(options.get("out_dtype") or "fp32"))
