"""Naturalistic binaural scenes: dry source ⊛ BRIR + noise ⊛ BRIR(s) at an SNR (paper §3.1/§3.3, gram_spec §7).

Public API (stable; the pretraining loop and the Nat-HEAR builder use only this):

    from training.scenes import SceneConfig, SceneSynth

    cfg = SceneConfig.preset("smoke")             # or "default"; SceneConfig(...) / dataclasses.replace(cfg, ...)
    synth = SceneSynth(cfg, seed=0, device="cpu", split="train")
    audio, meta = synth.sample(batch_size)        # audio: (B, 2, 320000) float32 torch tensor on `device`,
                                                  # 10 s at 32 kHz, channel 0 = left ear; meta: list of B dicts

    # Nat-HEAR: spatialise a GIVEN mono clip in a held-out room (split="test" uses a disjoint seed namespace
    # and, for user BRIR folders, disjoint houses/rooms).
    test = SceneSynth(cfg, seed=0, split="test")
    audio, meta = test.spatialize(clip,            # (n,) float array / tensor at 32 kHz (any length)
                                  azimuth_deg=None, elevation_deg=None, distance_m=None,  # None = random
                                  snr_db=None,      # None = U[cfg.snr_db]; float('inf') = no noise
                                  rng=None,         # int / np.random.Generator for this clip (reproducible)
                                  normalize=True)   # RMS-normalise the dry clip to cfg.target_dbfs first
    # audio: (2, n) float32 tensor (same length as the clip); meta: one dict as below.

    synth.stats   # {"skipped_files": int, "sources": {kind: count}, "brirs": int, "bank_build_s": float, ...}

Metadata dict (every scene): "azimuth_deg", "elevation_deg", "distance_m" of the target relative to the head,
"direction" (unit vector [x front, y left, z up] in head coordinates), "room_id", "room_dims_m", "rt60_s"
(Eyring RT60 of the room), "listener_pos_m", "head_yaw_deg", "snr_db", "noise_type", "noise_mode"
("localized" | "diffuse" | "none"), "n_noise", "noise_azimuths_deg", "source_kind", "source_ids", "split",
"brir_source" ("ism" | path of a user BRIR), "gain" (scene gain applied to stay below full scale).

Conventions: azimuth counter-clockwise from the front, +90 = LEFT ear, -90 = right ear (SOFA / MIT KEMAR);
elevation up; the KEMAR set covers elevation -40..+90 deg, so source elevations are drawn from
cfg.elevation_deg (default -40..+90). The dry source is RMS-normalised to -14 dBFS (spec §7.2); noise is cut
to 10 s with 200 ms linear fades and also set to -14 dBFS before mixing; the SNR gain b is one scalar for both
ears: b = sqrt(sum S^2 / sum N^2 * 10^(-snr/10)), energies summed over both ears where the noise is active.
The same noise clip passes through every noise BRIR (the official recipe), so N = (sum_i BRIR_i) ⊛ n.
"""
