"""The main job (`make demo` = python -m training.demo) end to end at its CI size."""

import json
import subprocess
import sys

import numpy as np

import hear_gram.gram_t_patch as gram

from conftest import REPO


def test_demo_ci_profile_end_to_end(tmp_path):
    out = tmp_path / "demo"
    r = subprocess.run([sys.executable, "-m", "training.demo", "--profile", "ci", "--out", str(out)],
                       cwd=REPO, capture_output=True, text=True, timeout=1800)
    print(r.stdout[-3000:], r.stderr[-3000:])
    assert r.returncode == 0
    report = (out / "report.md").read_text()
    assert "log-mel" in report.lower() and "trained" in report.lower()
    results = json.loads((out / "results.json").read_text())
    assert results
    model = gram.load_model(str(out / "weights"))  # the export loads strictly into hear_gram
    z = np.load(out / "demo_embeddings.npz")
    assert z["scene"].shape == (len(z["files"]), model.scene_embedding_size) and len(z["files"]) > 0
    assert np.isfinite(z["scene"]).all()
    card = (out / "weights" / "README.md").read_text()
    assert "## Evaluation" in card and report.strip().splitlines()[0] in card and "log_eps" in card
    assert "| total |" in r.stdout and str(out / "weights") in r.stdout
