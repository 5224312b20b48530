"""Probing (training/probe.py), report intervals (training/report.py), held-out reconstruction (training/recon.py)."""

import numpy as np
import pytest
import torch

from training import probe, recon, report


def test_binaural_cues_see_level_and_time_differences():
    """A noise burst louder and earlier in the left ear: ILD > 0 in every band, GCC-PHAT peak at the lag."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(32000).astype(np.float32)
    lag = 10  # samples: the right ear hears it 10 samples later
    left, right = x[lag:], 0.5 * x[:-lag]
    f = probe.binaural_embedder()(torch.from_numpy(np.stack([left, right]))[None])
    assert f.shape == (1, 24 + 48 + 96 + 45) and torch.isfinite(f).all()
    ild = f[0, :24]
    assert torch.allclose(ild, torch.full_like(ild, 20 * np.log10(2)), atol=0.5)  # 6 dB in every band
    gcc = f[0, -45:]
    assert int(gcc.argmax()) - 22 == -lag  # lags -22..22; r(tau) = sum l[n + tau] r[n]: left leads -> -lag


def test_levels_pool_power_and_see_the_level_difference():
    """Levels are ln(mean mel power) over time (a loud half dominates; the mean of the log-mel would sit
    between the halves), and the ILD of a source 6 dB louder on the left is +ln 4 in every band."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(64000).astype(np.float32)
    x[32000:] *= 1e-3  # second half 60 dB quieter
    audio = torch.from_numpy(np.stack([x, 0.5 * x]))[None]
    f = probe.level_embedder()(audio)
    assert f.shape == (1, 3 * 128) and torch.isfinite(f).all()
    from hear_gram.features import LogMel
    lm = LogMel()(audio)  # (1, 2, T, 128)
    loud = lm[0, 0, 5:95].double().exp().mean(0).log()  # ln mean power of frames well inside the loud half
    level = f[0, :128]
    assert ((level - (loud - np.log(2))).abs() < 0.25).all()  # half the frames carry ~all the power
    assert ((level - lm[0, 0].mean(0)) > 2).all()  # the mean of the log-mel is far lower
    assert torch.allclose(f[0, 256:], torch.full((128,), float(np.log(4))), atol=1e-3)
    mono = probe.level_embedder()(audio[:, :1])
    assert mono.shape == (1, 128) and torch.allclose(mono[0], level)
    plain = probe.level_embedder("mean", ild=False)(audio)
    assert torch.allclose(plain, lm.mean(2).flatten(1), atol=1e-5)
    with pytest.raises(ValueError, match="pooling must be 'power' or 'mean', got 'max'"):
        probe.level_embedder("max")


def test_ridge_path_matches_the_normal_equations():
    rng = np.random.default_rng(1)
    x, y = torch.tensor(rng.standard_normal((40, 6))), torch.tensor(rng.standard_normal((40, 2)))
    (a, predict), = list(probe.ridge_path(x, y, [3.0]))
    xc, yc = x - x.mean(0), y - y.mean(0)
    w = torch.linalg.solve(xc.T @ xc + 3.0 * torch.eye(6, dtype=x.dtype), xc.T @ yc)
    assert torch.allclose(predict(x).double(), xc @ w + y.mean(0), atol=1e-4)


def test_probe_selects_on_valid_and_learns_a_linear_rule():
    rng = np.random.default_rng(2)
    xs = [rng.standard_normal((n, 8)).astype(np.float32) for n in (200, 50, 50)]
    ys = [(x[:, 0] > 0).astype(int) for x in xs]  # label = sign of feature 0
    data = {s: (x, [[str(v)] for v in y]) for s, x, y in zip(("train", "valid", "test"), xs, ys)}
    r = probe.classify(data, ["0", "1"])
    assert r["top1_acc"] >= 0.9 and len(r["per_clip"]) == 50 and r["hparams"]["probe"] in ("ridge", "mlp")


def test_report_intervals_are_paired_and_contain_the_value():
    rng = np.random.default_rng(3)
    a = rng.uniform(0, 60, 100)
    res = {"loc": {"prediction_type": "cartesian-regression", "A": {"per_clip": a.tolist()},
                   "B": {"per_clip": (a + 5).tolist()}}}  # B is A plus exactly 5 degrees on every clip
    ci = report.intervals(res, compare=("A", "B"))["loc"]
    for row in ci.values():
        for col in ("A", "B"):
            assert row[col][1] <= row[col][0] <= row[col][2]
    mean = ci["DOA error mean (deg, lower is better)"]["diff"]
    assert mean == pytest.approx((-5.0, -5.0, -5.0))  # paired resamples: no spread for a constant shift
    md = report.table(res, ["A", "B"], None, ("A", "B"))
    assert "-5.0 [-5.0, -5.0]" in md


def test_random_init_seeds_are_averaged_per_clip():
    """--random-seeds: the per-seed columns become one whose per-clip value is the seed mean, metrics recomputed."""
    def doa(errs, valid):
        return {"per_clip": errs, "n": len(errs), "dim": 8, "hparams": {}, "embed_s": 1.0, "valid_doa_mean_deg": valid,
                "doa_mean_deg": float(np.mean(errs)), "doa_median_deg": float(np.median(errs))}

    def cls(correct, valid):
        return {"per_clip": correct, "n": len(correct), "dim": 8, "hparams": {}, "embed_s": 1.0, "valid_score": valid,
                "top1_acc": float(np.mean(correct))}
    res = {"loc": {"prediction_type": "cartesian-regression", "s0": doa([10.0, 20.0, 90.0], 30.0),
                   "s1": doa([30.0, 20.0, 10.0], 40.0), "T": doa([5.0, 5.0, 5.0], 9.0)},
           "cls": {"prediction_type": "multiclass", "s0": cls([1.0, 0.0, 1.0, 1.0], 0.2),
                   "s1": cls([1.0, 1.0, 0.0, 1.0], 0.4), "T": cls([1.0, 1.0, 1.0, 1.0], 0.0)}}
    report.merge_seeds(res, ["s0", "s1"], "R")
    assert set(res["loc"]) == {"prediction_type", "T", "R"}
    r = res["loc"]["R"]
    assert r["per_clip"] == [20.0, 20.0, 50.0] and r["doa_mean_deg"] == pytest.approx(30.0)
    assert r["doa_median_deg"] == 20.0 and r["valid_doa_mean_deg"] == 35.0 and r["embed_s"] == 2.0
    assert r["seeds"] == [[40.0, 20.0], [20.0, 20.0]]
    c = res["cls"]["R"]
    assert c["per_clip"] == [1.0, 0.5, 0.5, 1.0] and c["top1_acc"] == 0.75 and c["seeds"] == [0.75, 0.75]
    assert c["valid_score"] == pytest.approx(0.3)
    diff = report.intervals(res, compare=("T", "R"))["loc"]["DOA error mean (deg, lower is better)"]["diff"]
    assert diff[0] == pytest.approx(-25.0)
    lines = report.seeds_lines(res, "R")
    assert "- loc: 40.0 / 20.0; 20.0 / 20.0 (DOA mean / median deg)" in lines and "- cls: 0.750; 0.750" in lines
    with pytest.raises(SystemExit):
        report.main(["--suite", "x", "--random-seeds", "0"])


def test_recon_per_crop_is_the_training_loss():
    from conftest import tiny_config
    from training.pretrain_model import PretrainModel, loss_parts, per_crop, random_mask

    torch.manual_seed(0)
    model = PretrainModel(tiny_config())
    c = model.config
    x = torch.randn(3, c.in_channels, c.chunk_frames, c.n_mels)
    mask = random_mask(3, c.n_tokens, c.n_masked)
    loss, pred, target = model(x, mask)
    per = per_crop(pred, target, mask, c.in_channels)
    assert per.mean().item() == pytest.approx(loss.item(), rel=1e-5)  # every row masks the same count
    assert torch.allclose(recon.targets(c, x), target, atol=1e-5)
    base = recon.baseline_losses(c, x, mask, target.mean(0, keepdim=True))
    oracle, zero = base["patch mean (oracle)"], base["zero"]
    assert (oracle["total"] <= zero["total"] + 1e-6).all()  # the own-mean predictor is never worse
    for parts in (*base.values(), {k: v.detach().numpy() for k, v in loss_parts(pred, target, mask, 2).items()}):
        np.testing.assert_allclose(parts["common"] + parts["interaural"], parts["total"], rtol=1e-5)
    # both ears given the same value: the interaural part is what the targets' own (L - R) / 2 costs
    t = target.reshape(3, c.n_tokens, 2, -1)
    side = ((t[:, :, 0] - t[:, :, 1]) / 2).pow(2).mean(-1)
    want = (2 * (side * mask).sum(1) / mask.sum(1)).numpy()
    np.testing.assert_allclose(zero["interaural"], want, rtol=1e-5)
    np.testing.assert_allclose(oracle["interaural"], want, rtol=1e-5)
    # its patch-level share: the squared mean level difference of each patch, never above the whole part
    lvl = ((t[:, :, 0] - t[:, :, 1]) / 2).mean(-1).pow(2)
    np.testing.assert_allclose(zero["interaural level"], (2 * (lvl * mask).sum(1) / mask.sum(1)).numpy(), rtol=1e-5)
    assert (zero["interaural level"] < zero["interaural"]).all()  # random targets vary within a patch
    assert loss_parts(pred, target, mask, 1).keys() == {"total"}  # mono: no split


def test_recon_interaural_part_sees_level_differences():
    """A scene whose right ear is the left ear 0.5 lower: predictors that know the level difference from the
    visible patches (band context) have no interaural error; those that give both ears one value pay 0.25 x 2."""
    from conftest import tiny_config
    from training.pretrain_model import random_mask

    c = tiny_config()
    torch.manual_seed(1)
    left = torch.randn(2, 1, c.chunk_frames, c.n_mels)
    x = torch.cat([left, left - 0.5 * left.std()], dim=1)
    mask = random_mask(2, c.n_tokens, c.n_masked)
    t = recon.targets(c, x)
    base = recon.baseline_losses(c, x, mask, t.mean(0, keepdim=True))
    ild = (t.reshape(2, c.n_tokens, 2, -1)[:, :, 0] - t.reshape(2, c.n_tokens, 2, -1)[:, :, 1]) / 2
    d = ild[:, :1, :1]  # per crop (each is normalised on its own), one level difference everywhere
    assert torch.allclose(ild, d.expand_as(ild), atol=1e-5) and (d > 0.1).all()
    np.testing.assert_allclose(base["zero"]["interaural"], 2 * d.flatten().pow(2).numpy(), rtol=1e-4)
    np.testing.assert_allclose(base["band context"]["interaural"], 0.0, atol=1e-9)
    # one level difference everywhere: all of the zero predictor's interaural error is at the patch level
    np.testing.assert_allclose(base["zero"]["interaural level"], base["zero"]["interaural"], rtol=1e-4)
    assert (base["band context"]["total"] < base["zero"]["total"]).all()
    # the band context is the mean spectrum of the visible patches of the band, broadcast over its patches
    gf, gt = c.grid
    vis = ~mask[0].reshape(gf, gt)
    pred = recon.band_context(c, t, mask).reshape(2, gf, gt, 2, *c.patch)
    prof = t.reshape(2, gf, gt, 2, *c.patch)[0, 3][vis[3]].mean(dim=(0, -1))  # band 3: (C, fs)
    assert torch.allclose(pred[0, 3, 0, :, :, 0], prof, atol=1e-6)
    assert torch.allclose(pred[0, 3, -1, :, :, -1], prof, atol=1e-6)
