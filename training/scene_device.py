"""The torch backend of SceneSynth.sample: scene material resident on the training device, host draws only.

`DeviceMaterial` holds, as tensors on the device: the BRIR bank (float16, (S, 2, L) target and summed-noise
sets), the embedded dry-source pool as one flat float32 tensor (every clip RMS-normalised to the target level)
and the spectral weights of white / pink / brown noise.  Per batch:

host (`draw`, numpy, vectorised over the batch; a ScenePlan of small integer/float arrays):
    BRIR set per scene, SNR, noise type, the source track (kind, up to `max_items_per_track` clips, their
    offsets and gaps), babble talkers (utterance ids and offsets), and one 63-bit seed for the device's
    white normals.  Everything comes from the synthesizer's numpy Generator, so a seed (and that generator's
    state, for --resume) fixes the batch; the device generator is re-seeded from the plan every batch.
device (`render`, torch, batched):
    track and babble assembly by one gather + index_add over the flat pool, procedural noise (white normals
    -> rfft -> 1/f^a weights -> irfft; speech-less babble: syllable envelopes), 200 ms fades, the gather of
    the BRIR sets, one FFT convolution of all 2B rows, SNR mixing and the peak clamp (mixing.mix_torch).

The scene distribution is the numpy backend's (same draws of kinds, counts, ranges), but not the same random
stream: the two backends make different scenes from one seed.  Noise is not RMS-normalised here: the SNR
gain rescales it entirely, so its level never reaches the mix.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .mixing import fft_convolve_torch, mix_torch
from .noise import FADE_S, spectral_weights, syllable_taps

EXPONENTS = {"white": 0.0, "pink": 1.0, "brown": 2.0, "babble": 1.0}  # babble without speech: pink talkers
SYLLABLE = 800  # samples per on/off syllable flag of speech-less babble (25 ms)
TALKERS = 8  # most babble talkers: each noise is summed from its own TALKERS rows (no overlapping index_add,
#              whose atomic float adds would make CUDA results run-dependent)


@dataclass
class ScenePlan:
    """Host draws of one batch (see the module docstring); arrays are numpy, sizes in samples."""
    set_index: np.ndarray  # (B,) BRIR set per scene
    snr_db: np.ndarray  # (B,)
    noise_type: list  # (B,) names
    source_kind: list  # (B,)
    source_items: list  # (B,) lists of pool item indices within the kind
    seg_src: np.ndarray  # (K,) start in the flat pool of each placed track segment
    seg_dst: np.ndarray  # (K,) start in the flat (B * n) track buffer
    seg_len: np.ndarray  # (K,)
    bab_src: np.ndarray  # (K2,) start in the flat pool of each babble utterance
    bab_dst: np.ndarray  # (K2,) start in the flat (B * TALKERS * n) talker buffer
    bab_len: np.ndarray  # (K2,)
    proc_slot: np.ndarray  # (P,) talker-buffer row (b * TALKERS + talker) of each procedural normal row
    proc_exp: np.ndarray  # (P,) index into the white/pink/brown weight table
    env_rows: np.ndarray  # (E,) procedural rows that are speech-less babble talkers
    env_flags: np.ndarray  # (E, n // SYLLABLE + 1) bool syllable flags of those rows
    seed: int
    user_rows: np.ndarray = None  # (U,) scenes whose source is a streamed user clip (row b of the clip batch)
    user_dst: np.ndarray = None  # (U,) start of each clip in the flat row buffer
    user_len: np.ndarray = None  # (U,)


class DeviceMaterial:
    """Bank, pool and noise tables of one SceneSynth on `device`, and the draws/rendering of batches."""

    def __init__(self, synth, device):
        cfg = synth.cfg
        self.device, self.n, self.cfg = torch.device(device), cfg.n_samples, cfg
        self.target = synth.bank.target.to(self.device)  # float16 (S, 2, L)
        self.noise = synth.bank.noise.to(self.device)
        self.n_sets = len(synth.bank)
        # the pool: one flat tensor; per kind the clip starts and lengths (host side, for the draws)
        self.kinds = sorted(synth.pool)
        clips, starts, lens, pos = [], {}, {}, 0
        for k in self.kinds:
            xs = [synth._pool_clip(k, j, self.n) for j in range(len(synth.pool[k]))]
            lens[k] = np.array([len(x) for x in xs], np.int64)
            starts[k] = pos + np.concatenate([[0], np.cumsum(lens[k])[:-1]]).astype(np.int64)
            pos += int(lens[k].sum())
            clips += xs
        self.starts, self.lens = starts, lens
        self.speech = None
        if "speech" in synth.pool:  # babble talkers: utterances at -14 dBFS (the noise level does not matter)
            self.speech = (starts["speech"], lens["speech"])
        self.pool = torch.from_numpy(np.concatenate(clips).astype(np.float32) if clips else
                                     np.zeros(1, np.float32)).to(self.device)
        w = np.stack([spectral_weights(self.n, e) for e in (0.0, 1.0, 2.0)]).astype(np.float32)
        self.weights = torch.from_numpy(w).to(self.device)  # (3, n // 2 + 1)
        fade = np.ones(self.n, np.float32)
        m = min(int(FADE_S * cfg.sample_rate), self.n // 2)
        if m:
            ramp = np.linspace(0.0, 1.0, m, dtype=np.float32)
            fade[:m], fade[-m:] = ramp, ramp[::-1]
        self.fade = torch.from_numpy(fade).to(self.device)
        self.gen = torch.Generator(self.device)
        cw = np.cumsum(np.asarray(cfg.noise_weights, float))
        self.noise_cdf, self.noise_types = cw / cw[-1], tuple(cfg.noise_types)

    # ------------------------------------------------------------ host: draws only
    def draw(self, rng: np.random.Generator, B: int, user=None) -> ScenePlan:
        """user: (lengths (B,), names) of a batch of streamed user clips (training/streaming.py), or None; each
        scene takes its clip with probability p_user_source (always without an embedded pool) when it is not
        empty, else an embedded track."""
        cfg, n, fs = self.cfg, self.n, self.cfg.sample_rate
        set_index = rng.integers(self.n_sets, size=B)
        snr = rng.uniform(cfg.snr_db[0], cfg.snr_db[1], size=B)
        ntype = np.minimum(np.searchsorted(self.noise_cdf, rng.random(B), side="right"), len(self.noise_cdf) - 1)
        # source tracks: kind, item count, items, first offset, gaps (vectorised over the batch)
        M = cfg.max_items_per_track
        kind = rng.integers(max(1, len(self.kinds)), size=B)
        count = rng.integers(1, M + 1, size=B)
        u_item, u_first = rng.random((B, M)), rng.random(B)
        gaps = rng.integers(fs // 10, fs, size=(B, M))
        n_of_kind = np.array([len(self.lens[k]) for k in self.kinds], np.int64)
        if n_of_kind.size:
            item = np.minimum((u_item * n_of_kind[kind][:, None]).astype(np.int64), n_of_kind[kind][:, None] - 1)
            lens = np.stack([self.lens[self.kinds[k]][item[b]] for b, k in enumerate(kind)])  # (B, M)
            srcs = np.stack([self.starts[self.kinds[k]][item[b]] for b, k in enumerate(kind)])
        else:  # no embedded pool: user clips only
            item, lens, srcs = (np.zeros((B, M), np.int64) for _ in range(3))
        first = (u_first * np.maximum(1, n - lens[:, 0] + 1)).astype(np.int64)
        pos = first[:, None] + np.concatenate([np.zeros((B, 1), np.int64), np.cumsum(lens + gaps, 1)[:, :-1]], 1)
        keep = (np.arange(M)[None] < count[:, None]) & (pos < n)
        user_rows = user_dst = user_len = None
        if user is not None:
            lengths = np.asarray(user[0], np.int64)
            take = (rng.random(B) < cfg.p_user_source) if n_of_kind.size else np.ones(B, bool)
            take &= lengths > 0
            if not n_of_kind.size and not take.all():
                raise RuntimeError("user corpora yielded no readable clip")
            off = (rng.random(B) * (n - lengths + 1)).astype(np.int64)
            user_rows = np.flatnonzero(take)
            user_dst, user_len = user_rows * n + off[user_rows], lengths[user_rows]
            keep[take] = False
        seg_len = np.minimum(lens, n - pos)[keep]
        seg_src = srcs[keep]
        seg_dst = (np.arange(B)[:, None] * n + pos)[keep]
        items = [item[b][keep[b]].tolist() for b in range(B)]
        kinds = [self.kinds[k] if self.kinds else "" for k in kind]
        if user_rows is not None:
            for b in user_rows:
                kinds[b], items[b] = user[1][b].split(":", 1)[0], [user[1][b].split(":", 1)[1]]
        # noise: babble from speech (utterance segments, one talker-buffer row per talker), or procedural rows
        proc_slot, proc_exp, env, env_rows = [], [], [], []
        names = [self.noise_types[t] for t in ntype]
        speech_babble = [b for b, name in enumerate(names) if name == "babble" and self.speech is not None]
        bab = self._babble(rng, np.asarray(speech_babble, np.int64)) if speech_babble else \
            (np.zeros(0, np.int64),) * 3
        for b, name in enumerate(names):
            if name == "babble" and self.speech is not None:
                continue
            if name == "babble":
                t = int(rng.integers(4, TALKERS + 1))
                env_rows += range(len(proc_slot), len(proc_slot) + t)
                proc_slot += range(b * TALKERS, b * TALKERS + t)
                proc_exp += [1] * t
                env.append(rng.random((t, n // SYLLABLE + 1)) < 0.6)
            else:
                proc_slot.append(b * TALKERS)
                proc_exp.append(int(EXPONENTS[name]))
        return ScenePlan(set_index, snr, names, kinds, items, seg_src, seg_dst, seg_len, *bab,
                         np.asarray(proc_slot, np.int64), np.asarray(proc_exp, np.int64),
                         np.asarray(env_rows, np.int64),
                         np.concatenate(env) if env else np.zeros((0, n // SYLLABLE + 1), bool),
                         int(rng.integers(2 ** 63)), user_rows, user_dst, user_len)

    def _babble(self, rng, rows: np.ndarray):
        """Segments of babble for the noises of scenes `rows`: per scene 4-8 talkers, each a chain of random
        utterances with 0-250 ms gaps from an offset in [-n/2, n/4), clipped to the clip, each talker in its own
        row b * TALKERS + k of the talker buffer (a talker's utterances do not overlap). Vectorised over all
        talkers of the batch: a few chunks of utterance draws, not a loop per talker."""
        n, fs = self.n, self.cfg.sample_rate
        starts, lens = self.speech
        talkers = rng.integers(4, TALKERS + 1, size=len(rows))
        row = np.repeat(rows * TALKERS, talkers) + np.concatenate([np.arange(t) for t in talkers])
        pos0 = rng.integers(-n // 2, n // 4, size=len(row))
        src, dst, ln = [], [], []
        chunk = max(4, int(1.5 * n / max(1.0, lens.mean())) + 2)
        while len(pos0):
            u = rng.integers(len(lens), size=(len(pos0), chunk))
            g = rng.integers(0, fs // 4, size=(len(pos0), chunk))
            L = lens[u]
            step = np.cumsum(L + g, 1)
            p = pos0[:, None] + np.concatenate([np.zeros((len(pos0), 1), np.int64), step[:, :-1]], 1)
            a, b = np.maximum(p, 0), np.minimum(p + L, n)
            m = (p < n) & (b > a)
            src.append((starts[u] + (a - p))[m]), dst.append((row[:, None] * n + a)[m]), ln.append((b - a)[m])
            pos0 = pos0 + step[:, -1]
            more = pos0 < n  # talkers that have not reached the end yet draw another chunk
            pos0, row = pos0[more], row[more]
        return np.concatenate(src), np.concatenate(dst), np.concatenate(ln)

    # ------------------------------------------------------------ device: everything numeric
    def render(self, plan: ScenePlan, return_parts: bool = False, user_clips: torch.Tensor | None = None):
        """(audio (B, 2, n), parts or None, gains (B,) tensor) on the device; user_clips: the (B, n) batch of
        streamed clips the plan was drawn for."""
        dev, n, B = self.device, self.n, len(plan.set_index)
        x = self.dry(plan, user_clips)
        h = torch.cat([self.target[torch.from_numpy(plan.set_index).to(dev)],
                       self.noise[torch.from_numpy(plan.set_index).to(dev)]]).float()
        y = fft_convolve_torch(x, h, n)  # (2B, 2, n)
        snr = torch.from_numpy(plan.snr_db).to(dev, torch.float32)
        return mix_torch(y[:B], y[B:], snr, self.cfg.peak, None, return_parts)

    def dry(self, plan: ScenePlan, user_clips: torch.Tensor | None = None) -> torch.Tensor:
        """(2B, n) mono rows before the BRIRs: B source tracks, then B noises (faded). Every sample of the
        buffers receives at most one value, so the result does not depend on the order of the device's adds."""
        dev, n, B = self.device, self.n, len(plan.set_index)
        track = torch.zeros(B * n, device=dev)
        _place(track, self.pool, plan.seg_src, plan.seg_dst, plan.seg_len)  # items of a track do not overlap
        if plan.user_rows is not None and len(plan.user_rows):  # streamed clips: row b of the batch, at its offset
            _place(track, user_clips.to(dev, non_blocking=True).reshape(-1), plan.user_rows * n, plan.user_dst,
                   plan.user_len)
        talk = torch.zeros(B * TALKERS * n, device=dev)
        _place(talk, self.pool, plan.bab_src, plan.bab_dst, plan.bab_len)
        talk = talk.view(B * TALKERS, n)
        # procedural noise: white normals shaped by 1/f^a, envelopes for speech-less babble talkers
        if len(plan.proc_slot):
            self.gen.manual_seed(plan.seed)
            z = torch.randn((len(plan.proc_slot), n), generator=self.gen, device=dev)
            exp = torch.from_numpy(plan.proc_exp).to(dev)
            y = torch.fft.irfft(torch.fft.rfft(z) * self.weights[exp], n)
            if len(plan.env_rows):
                rows = torch.from_numpy(plan.env_rows).to(dev)
                y[rows] *= syllable_envelope(torch.from_numpy(plan.env_flags).to(dev), n)
            talk.index_copy_(0, torch.from_numpy(plan.proc_slot).to(dev), y)
        noise = talk.view(B, TALKERS, n).sum(1) * self.fade
        return torch.cat([track.view(B, n), noise])


def _place(x: torch.Tensor, source: torch.Tensor, src: np.ndarray, dst: np.ndarray, length: np.ndarray) -> None:
    """x[dst_k : dst_k + length_k] += source[src_k : src_k + length_k] for every segment k, as one gather and one
    index_add over the flat tensors (overlapping segments add: babble talkers)."""
    total = int(length.sum())
    if not total:
        return
    dev = x.device
    ln = torch.from_numpy(length).to(dev, non_blocking=True)
    excl = torch.from_numpy(np.cumsum(length) - length).to(dev, non_blocking=True)
    ramp = torch.arange(total, device=dev)
    s = ramp + torch.repeat_interleave(torch.from_numpy(src).to(dev, non_blocking=True) - excl, ln, output_size=total)
    d = ramp + torch.repeat_interleave(torch.from_numpy(dst).to(dev, non_blocking=True) - excl, ln, output_size=total)
    x.index_add_(0, d, source[s])


def syllable_envelope(on: torch.Tensor, n: int, block: int = SYLLABLE) -> torch.Tensor:
    """noise.syllable_envelope in torch: rows of block flags (rows, >= ceil(n / block)) held for `block`
    samples each, smoothed by a Hann window of 2 block / block ("same" alignment), via its polyphase form
    (three taps per sample); flag rows of all ones give a constant envelope of 1 inside the clip."""
    nb = -(-n // block)
    v = on[:, :nb].to(torch.float32)
    g = torch.from_numpy(syllable_taps(block)).to(on.device, torch.float32)
    full = torch.zeros((len(on), nb + 2, block), device=on.device)
    for j in range(3):
        full[:, j: j + nb] += v[:, :, None] * g[j]
    off = (2 * block - 1) // 2
    return full.reshape(len(on), -1)[:, off: off + n]
