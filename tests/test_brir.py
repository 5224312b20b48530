"""Renderer checks: interaural cues, RT60, image-source geometry (training/brir.py, training/hrir.py)."""
import numpy as np
import pytest

from training.brir import (eyring_rt60, absorption_for_rt60, image_sources, place_source, random_listener,
                           random_room, render_brir, schroeder_rt60)
from training.hrir import ELEVATION_RANGE_DEG, load_kemar, unit_vector

FS = 32000


@pytest.fixture(scope="module")
def hr():
    return load_kemar()


def test_kemar_asset(hr):
    assert hr.fs == FS and hr.ir.shape == (710, 2, 372)
    assert hr.pos[:, 1].min() == ELEVATION_RANGE_DEG[0] and hr.pos[:, 1].max() == ELEVATION_RANGE_DEG[1]
    # nearest lookup returns a direction within half a grid step of the query (5-30 deg rings)
    q = hr.index(47, 10)
    assert np.rad2deg(np.arccos(hr.dirs[q] @ unit_vector(47, 10))) < 6


def test_image_sources_direct_path_and_count():
    dims, src = np.array([5.0, 4.0, 3.0]), np.array([1.0, 1.5, 1.2])
    pos, amp = image_sources(dims, src, 0.3, max_dist=20.0)
    # exactly one unreflected image (gain 1) at the source; all images within max_dist and unique
    assert np.sum(amp == 1.0) == 1 and np.allclose(pos[amp == 1.0][0], src)
    assert np.all(np.linalg.norm(pos - src, axis=1) <= 20.0 + 1e-9)
    assert len(np.unique(np.round(pos, 6), axis=0)) == len(pos)
    # first-order images: mirror through each of the 6 walls, gain sqrt(1 - alpha)
    first = pos[np.isclose(amp, np.sqrt(0.7))]
    assert len(first) == 6


@pytest.mark.parametrize("rt60", [0.25, 0.45])
def test_rt60_of_rendered_brir(hr, rt60):
    rng = np.random.default_rng(1)
    dims = (6.0, 4.5, 3.0)
    a = absorption_for_rt60(dims, rt60)
    assert abs(eyring_rt60(dims, a) - rt60) < 1e-6
    head, yaw = random_listener(rng, random_room(rng, "x", (rt60, rt60), ((6, 6), (4.5, 4.5), (3, 3))))
    pos, *_ = place_source(rng, random_room(rng, "x", (rt60, rt60), ((6, 6), (4.5, 4.5), (3, 3))), head, yaw,
                           (1.5, 2.5), (-20, 20))
    h = render_brir(hr, dims, a, head, yaw, pos, 2.5 * rt60, rng)
    measured = schroeder_rt60(h, FS)
    assert abs(measured - rt60) < 0.2 * rt60, (measured, rt60)


def _lag_ild(x, max_lag=32, band=(200, 8000)):
    """Band-limited GCC-PHAT lag in samples (> 0: the left ear lags) and ILD in dB (left / right)."""
    n = 2 * x.shape[1]
    X, Y = np.fft.rfft(x[0], n), np.fft.rfft(x[1], n)
    f = np.fft.rfftfreq(n, 1 / FS)
    R = X * np.conj(Y)
    R = R / (np.abs(R) + 1e-12)
    R[(f < band[0]) | (f > band[1])] = 0
    cc = np.fft.irfft(R)
    cc = np.concatenate([cc[-max_lag:], cc[: max_lag + 1]])
    return int(np.argmax(cc)) - max_lag, 10 * np.log10((x[0] ** 2).sum() / (x[1] ** 2).sum())


def test_direct_path_cues_flip_with_side(hr):
    rng = np.random.default_rng(3)
    room = random_room(rng, "r", (0.3, 0.3), ((6, 6), (5, 5), (3, 3)))
    head, yaw = random_listener(rng, room)
    src = rng.standard_normal(FS // 2)
    cues = {}
    for az in (-90, 0, 90):
        pos, *_ = place_source(rng, room, head, yaw, (1.5, 1.5), (0, 0), az=az, el=0, dist=1.5)
        h = render_brir(hr, room.dims, room.absorption, head, yaw, pos, 0.4, rng)
        y = np.stack([np.convolve(src, h[c])[: len(src)] for c in range(2)])
        cues[az] = _lag_ild(y)
    (lag_r, ild_r), (lag_0, ild_0), (lag_l, ild_l) = cues[-90], cues[0], cues[90]
    assert lag_l < -10 and lag_r > 10 and abs(lag_0) <= 2, cues  # ~ +-0.7 ms at 90 deg, left = +90
    assert ild_l > 2 and ild_r < -2 and abs(ild_0) < 2, cues
