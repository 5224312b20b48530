"""Streaming timestamp embeddings: blocks of audio in, each embedding out as soon as its chunk is complete.

    import hear_gram.gram_t_patch as gram
    model = gram.load_model()
    s = model.stream()                       # or hear_gram.stream.EmbeddingStream(model)
    for block in blocks:                     # (2, samples) or (samples, 2) at 32 kHz, any size, even 1 sample
        emb, ts = s.push(block)              # (k, size) new embeddings (k may be 0), their timestamps (k,) ms
    emb, ts = s.flush()                      # the tail; s.scene_embedding is then the clip's scene embedding

The frames, timestamps and scene embedding equal `model.embed(whole clip)` of the default runtime (same
chunk plan, same arithmetic; relative error <= 1e-6, tests/test_stream.py).  How: the default runtime
covers a clip with 2 s chunks starting at frames 0, 200, 400, ... and moves only the last one back to
end with the clip.  Chunk [s, s + 200) is therefore final, and its token columns are output frames, once
the audio that its last STFT frame reads has arrived: (s + 199) * 320 + 512 samples.  `push` encodes every
such chunk; `flush` knows the length and encodes what the offline plan still has (the moved-back last
chunk, or the whole clip when it is shorter than 2 s).

Latency: a sample at time t is in the chunk starting at floor(t / 2 s) * 2 s; that chunk is emitted when
its end + 6 ms (half an STFT window minus a hop) has arrived, then encoded.  So the delay from a sample's
arrival to the embedding that covers it is at most 2.006 s + the encoder time of one chunk (measured in
`benchmarks/streaming.py`); the timestamp embeddings near the start of a chunk wait the longest.

Memory: the stream keeps at most ~4.1 s of audio (the next regular chunk, and the last 2 s that the
moved-back last chunk may need at `flush`) plus the last block and the chunks being encoded.  `compat=True` cannot
stream: its timestamps (i * duration / X) need the clip's total length.
"""

import numpy as np
import torch


class EmbeddingStream:
    """Timestamp embeddings of one recording, pushed block by block (see the module docstring)."""

    def __init__(self, model, channels: int = None):
        if model.compat:
            raise ValueError("streaming needs the default runtime: compat=True timestamps (i * duration / X) "
                             "depend on the clip's total length")
        channels = model.config.in_channels if channels is None else int(channels)
        if channels not in (1, 2):
            raise ValueError(f"channels={channels}: GRAM takes mono (1) or binaural (2) audio")
        self.model, self.channels = model, channels
        mel, c = model.model.melspec, model.config
        self._hop, self._half, self._cf, self._tok = mel.hop_length, mel.n_fft // 2, c.chunk_frames, c.patch[1]
        self._blocks = []  # pushed, not yet joined to the buffer
        self._buf = torch.zeros(channels, 0)  # samples [self._buf_start, self.n_samples) not yet dropped
        self._buf_start = 0
        self.n_samples = 0  # samples received
        self._next = 0  # start frame of the next regular chunk
        self._n_out = 0  # output frames (raw) or chunks (mean/cls) emitted
        self._sum = None  # float64 sum for the scene embedding
        self.scene_embedding = None  # (size,) after flush()
        self.finished = False

    # -- input ------------------------------------------------------------------------------------
    def _as_block(self, block) -> torch.Tensor:
        if isinstance(block, np.ndarray):
            if not np.issubdtype(block.dtype, np.floating):
                raise TypeError(f"block of dtype {block.dtype} is not accepted: pass float audio in [-1, 1]")
            block = torch.from_numpy(np.ascontiguousarray(block))
        if not isinstance(block, torch.Tensor):
            raise TypeError(f"block must be a torch.Tensor or numpy array, got {type(block).__name__}")
        if not block.is_floating_point():
            raise TypeError(f"block of dtype {block.dtype} is not accepted: pass float audio in [-1, 1]")
        c = self.channels
        if block.ndim == 1 and c == 1:
            block = block[None]
        elif block.ndim == 2 and block.shape[0] == c:
            pass
        elif block.ndim == 2 and block.shape[1] == c:
            block = block.T
        else:
            raise ValueError(f"block of shape {tuple(block.shape)} does not fit a {c}-channel stream: pass "
                             f"({c}, samples) or (samples, {c})" + (" or (samples,)" if c == 1 else ""))
        block = block.detach().to("cpu", torch.float32)
        if not torch.isfinite(block).all():
            raise ValueError("block contains NaN or inf (nothing of it was used)")
        return block

    def _join(self):
        if self._blocks:
            self._buf = torch.cat([self._buf, *self._blocks], dim=1)
            self._blocks = []

    # -- output -----------------------------------------------------------------------------------
    def _encode(self, starts, n_total=None):
        """Encode chunks at `starts` (frames) from the buffer -> (outputs, tokens) per group, in order."""
        rt = self.model
        for a in range(0, len(starts), rt.max_chunks):
            group = starts[a:a + rt.max_chunks]
            lm = rt._chunk_logmels(self._buf[None], [(0, s) for s in group], n_total, offset=self._buf_start)
            yield group, rt._encode(lm)

    def _emit_raw(self, out, ts, res, lo, hi, src):
        frames = res[src:src + hi - lo]
        out.append(frames)
        ts.append(self.model.token_centres_ms(torch.arange(lo, hi)))
        self._sum = frames.double().sum(0) + (0 if self._sum is None else self._sum)
        self._n_out = hi

    def _result(self, out, ts):
        rt = self.model
        if out:
            return torch.cat(out), torch.cat(ts).to(rt.device, torch.float32)
        size = rt.timestamp_embedding_size
        return torch.zeros(0, size, device=rt.device), torch.zeros(0, device=rt.device)

    @torch.no_grad()
    def push(self, block):
        """Add a block of audio -> (embeddings (k, size), timestamps (k,) ms) completed by it (k may be 0)."""
        if self.finished:
            raise RuntimeError("the stream was flushed: start a new one with model.stream()")
        block = self._as_block(block)
        if block.shape[1] == 0:
            return self._result([], [])
        self._blocks.append(block)
        self.n_samples += block.shape[1]
        ready = []
        s = self._next
        while (s + self._cf - 1) * self._hop + self._half <= self.n_samples:
            ready.append(s)
            s += self._cf
        if not ready:
            return self._result([], [])
        self._join()
        rt, gt = self.model, self.model.config.grid[1]
        out, ts = [], []
        for group, tokens in self._encode(ready):
            if rt.strategy == "raw":
                res = rt._chunk_outputs(tokens)
                for m, s in enumerate(group):
                    self._emit_raw(out, ts, res[m], s // self._tok, s // self._tok + gt, 0)
            else:
                cols = rt._columns(tokens) if rt.strategy == "mean" else None
                res = rt._chunk_outputs(tokens, torch.ones(len(group), gt, dtype=torch.bool))
                for m, s in enumerate(group):
                    out.append(res[m:m + 1])
                    ts.append(rt.token_centres_ms(s // self._tok + torch.arange(gt)).mean()[None])
                    v = (cols[m].double().sum(0) if cols is not None else res[m].double())
                    self._sum = v if self._sum is None else self._sum + v
                    self._n_out += 1
        self._next = ready[-1] + self._cf
        self._trim()
        return self._result(out, ts)

    def _trim(self):
        """Drop audio that no chunk can read any more: before the next regular chunk and before the last
        chunk of the offline plan for the audio so far (it only moves later as audio arrives)."""
        rt = self.model
        n_frames = rt.model.melspec.n_frames(self.n_samples)
        last = rt._plan(n_frames, self.n_samples)[1][-1] if self.n_samples >= rt.model.melspec.min_samples else 0
        keep = max(0, min(self._next, last) * self._hop - 2 * self._half)
        if keep > self._buf_start:
            self._buf = self._buf[:, keep - self._buf_start:].clone()
            self._buf_start = keep

    @torch.no_grad()
    def flush(self):
        """End of the recording -> the remaining (embeddings (k, size), timestamps (k,) ms); sets
        `scene_embedding`.  The stream is finished afterwards."""
        if self.finished:
            raise RuntimeError("the stream was already flushed")
        rt = self.model
        n = self.n_samples
        if n < rt.model.melspec.min_samples:
            raise ValueError(f"the stream holds {n} samples: the 1024-point STFT needs at least "
                             f"{rt.model.melspec.min_samples}")
        self._join()
        self.finished = True
        plan, x_out = rt.chunk_plan(n)
        # not yet emitted: chunks from the next regular start on, and the moved-back last chunk
        todo = [p for p in plan if p[0] >= self._next or p[0] % self._cf]
        gt = rt.config.grid[1]
        out, ts = [], []
        for group, tokens in self._encode([p[0] for p in todo], n_total=n):
            rows = todo[:len(group)]
            todo = todo[len(group):]
            if rt.strategy == "raw":
                res = rt._chunk_outputs(tokens)
                for m, (s, lo, hi, src) in enumerate(rows):
                    self._emit_raw(out, ts, res[m], lo, hi, src)
            else:
                valid = torch.stack([(s // self._tok + torch.arange(gt)) < x_out for s, *_ in rows])
                res = rt._chunk_outputs(tokens, valid)
                cols = rt._columns(tokens) if rt.strategy == "mean" else None
                for m, (s, lo, hi, src) in enumerate(rows):
                    out.append(res[m:m + 1])
                    ts.append(rt.token_centres_ms(s // self._tok + torch.arange(gt)[valid[m]]).mean()[None])
                    v = cols[m, src:src + hi - lo].double().sum(0) if cols is not None else res[m].double()
                    self._sum = v if self._sum is None else self._sum + v
                    self._n_out += 1
        count = x_out if rt.strategy in ("raw", "mean") else self._n_out
        self.scene_embedding = (self._sum / count).float()
        self._buf = torch.zeros(self.channels, 0)
        ts = [rt._inside(t, n) for t in ts]  # a clip shorter than the first token centre: its middle
        return self._result(out, ts)
