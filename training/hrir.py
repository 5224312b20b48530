"""MIT KEMAR head-related impulse responses at 32 kHz and a nearest-direction lookup.

Coordinates: azimuth counter-clockwise from the front (+90 deg = left ear), elevation up; unit vectors are
[x front, y left, z up]. The set covers elevation -40..+90 deg; lower directions snap to the -40 deg ring.
The file is made by `training/assets/make_kemar.py` (licence and citation in `assets/KEMAR_LICENSE.md`).
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import scipy.fft as sfft

KEMAR_FILE = Path(__file__).parent / "assets" / "kemar_32k.npz"
ELEVATION_RANGE_DEG = (-40.0, 90.0)


def unit_vector(az_deg, el_deg) -> np.ndarray:
    """(..., 3) unit vectors [x front, y left, z up] for azimuth/elevation in degrees."""
    a, e = np.deg2rad(az_deg), np.deg2rad(el_deg)
    return np.stack([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)], -1)


def _nearest_table(dirs: np.ndarray, subset: np.ndarray) -> np.ndarray:
    """(360, 181) table: integer az 0..359, el -90..90 -> index (into dirs) of the nearest direction in subset."""
    az, el = np.meshgrid(np.arange(360), np.arange(-90, 91), indexing="ij")
    q = unit_vector(az, el).reshape(-1, 3)
    return subset[np.argmax(q @ dirs[subset].T, axis=1)].reshape(360, 181).astype(np.int32)


class Hrir:
    """HRIR set: `ir` (M, 2, taps) float32 (ear 0 = left), `pos` (M, 3) az/el/r, lookup tables.

    The IRs are scaled so the frontal (0, 0) pair has unit mean energy per ear; BRIR levels are then
    "1/r at r metres" relative to a frontal source at 1 m.
    """

    def __init__(self, path: Path | str = KEMAR_FILE):
        z = np.load(path)
        self.fs = int(z["fs"])
        self.pos = z["pos"].astype(np.float64)
        ir = z["ir"].astype(np.float32)
        self.dirs = unit_vector(self.pos[:, 0], self.pos[:, 1])
        front = int(np.argmax(self.dirs @ unit_vector(0.0, 0.0)))
        self.ir = ir / np.sqrt((ir[front] ** 2).sum() / 2)
        self.taps = self.ir.shape[-1]
        self.lut = _nearest_table(self.dirs, np.arange(len(self.dirs)))
        # Coarse set for late reflections and the diffuse tail: 6 elevations x 12 azimuths offset by 15 deg, so
        # none lies in the median plane (KEMAR is L/R mirrored: median-plane HRIRs are equal at both ears).
        coarse = [int(np.argmax(self.dirs @ unit_vector(a, e)))
                  for e in (-40, -20, 0, 20, 40, 60) for a in range(15, 360, 30)]
        self.coarse = np.unique(coarse)
        self.coarse_lut = _nearest_table(self.dirs, self.coarse)
        self._spec: dict = {}

    def index(self, az_deg, el_deg, coarse: bool = False) -> np.ndarray:
        """Nearest HRIR index for (arrays of) azimuth/elevation in degrees (rounded to 1 deg)."""
        a = np.rint(np.asarray(az_deg)).astype(int) % 360
        e = np.clip(np.rint(np.asarray(el_deg)).astype(int), -90, 90) + 90
        return (self.coarse_lut if coarse else self.lut)[a, e]

    def spectra(self, nfft: int, coarse: bool = False) -> np.ndarray:
        """rFFT of all (or the coarse) HRIRs: (M or M_coarse, 2, nfft // 2 + 1) complex64, cached per nfft."""
        key = (nfft, coarse)
        if key not in self._spec:
            ir = self.ir[self.coarse] if coarse else self.ir
            self._spec[key] = sfft.rfft(ir, nfft, axis=-1).astype(np.complex64)
        return self._spec[key]


@functools.lru_cache(maxsize=2)
def load_kemar(path: str = str(KEMAR_FILE)) -> Hrir:
    """The shipped KEMAR set (loaded once per process, ~0.5 s)."""
    return Hrir(path)
