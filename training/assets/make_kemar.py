"""Build training/assets/kemar_32k.npz from the MIT KEMAR SOFA file shipped by Debian's libmysofa1.

    apt-get install -y libmysofa1 && pip install h5py scipy
    python training/assets/make_kemar.py [path.sofa]

Output: "ir" (710, 2, 372) float16 HRIRs at 32 kHz (ears: 0 = left, 1 = right), "pos" (710, 3) float32
(azimuth deg counter-clockwise, +90 = left; elevation deg; radius m), "fs". Elevations -40..+90 deg.
SOFA is netCDF4 on HDF5, so h5py reads it; h5py is needed only here, not at training time.
"""
import sys
from pathlib import Path

import h5py
import numpy as np
from scipy.signal import resample_poly

SOFA = "/usr/share/libmysofa/MIT_KEMAR_normal_pinna.sofa"
FS = 32000


def main(path: str = SOFA) -> None:
    with h5py.File(path, "r") as f:
        ir = np.asarray(f["Data.IR"], np.float64)  # (M, 2, 512)
        sr = int(np.asarray(f["Data.SamplingRate"]).ravel()[0])
        pos = np.asarray(f["SourcePosition"], np.float64)  # (M, 3): az, el, r
    g = np.gcd(FS, sr)
    ir32 = resample_poly(ir, FS // g, sr // g, axis=-1)
    ir16 = ir32.astype(np.float16)
    err = np.abs(ir16 - ir32).max() / np.abs(ir32).max()
    out = Path(__file__).with_name("kemar_32k.npz")
    np.savez_compressed(out, ir=ir16, pos=pos.astype(np.float32), fs=np.int64(FS))
    print(f"{out}: ir {ir16.shape} float16 (max rel. error {err:.1e}), elevations "
          f"{pos[:, 1].min():.0f}..{pos[:, 1].max():.0f} deg, {out.stat().st_size} bytes")


if __name__ == "__main__":
    main(*sys.argv[1:])
