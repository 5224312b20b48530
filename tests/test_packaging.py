"""The installable package: what the wheel holds and what the inference core imports."""

import glob
import os
import subprocess
import sys
import zipfile

from conftest import REPO

CORE = {"torch", "numpy", "huggingface_hub", "safetensors"}


def test_wheel_holds_the_inference_package_with_core_dependencies_only(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(tmp_path), REPO], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    (whl,) = glob.glob(str(tmp_path / "hear_gram-*.whl"))
    z = zipfile.ZipFile(whl)
    names = set(z.namelist())
    for mod in ("__init__", "gram_t_patch", "gram_t_time", "gram_m_patch", "gram_m_time", "runtime", "mamba2"):
        assert f"hear_gram/{mod}.py" in names
    assert not any(n.startswith(("training/", "tests/", "benchmarks/")) for n in names)
    meta = z.read(next(n for n in names if n.endswith("METADATA"))).decode()
    required = {line.split(":", 1)[1].strip().split(">")[0].split("=")[0].split(";")[0].strip()
                for line in meta.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line}
    assert required == CORE
    entry = z.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "hear-gram = hear_gram.cli:main" in entry


def test_inference_core_imports_nothing_beyond_its_dependencies():
    code = ("import sys, hear_gram, hear_gram.gram_t_time, hear_gram.gram_m_patch, hear_gram.cli\n"
            "bad = sorted({m.split('.')[0] for m in sys.modules} & {'scipy', 'training', 'soundfile', 'matplotlib',"
            " 'torchaudio', 'mamba_ssm', 'sklearn'})\n"  # (tqdm arrives with huggingface_hub)
            "print(bad)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PYTHONPATH=REPO))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
