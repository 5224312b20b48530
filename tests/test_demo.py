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
    manifest = json.loads((out / "nathear" / "manifest.json").read_text())
    tasks = results["tasks"]
    assert set(tasks) == set(manifest["tasks"]) and len(tasks) >= 2  # every task of the suite was scored
    model = gram.load_model(str(out / "weights"))  # the export loads strictly into hear_gram
    for task, res in tasks.items():
        doa = res["prediction_type"] == "cartesian-regression"
        n_test = manifest["localization_sizes" if doa else "sizes"]["test"]
        cols = {c: v for c, v in res.items() if c != "prediction_type"}
        trained = [v for c, v in cols.items() if c.startswith("trained")]
        assert len(trained) == 1 and trained[0]["dim"] == model.scene_embedding_size, cols.keys()
        assert any(c.startswith("log-mel") and v["dim"] == 512 for c, v in cols.items()), cols.keys()
        for c, v in cols.items():
            assert len(v["per_clip"]) == n_test, (task, c)  # every test clip scored once
            value = v["doa_mean_deg"] if doa else v["top1_acc"]
            assert f"| {task} |" in report and f"{value:.{1 if doa else 3}f} [" in report, (task, c, value)
    # the 12 training steps learned something: held-out reconstruction loss below the random init's, CI excluding 0
    diff, lo, hi = results["recon"]["diff"]["trained - random init"]
    assert hi < 0, results["recon"]["loss"]
    rec = results["recon"]  # the binaural model's loss split into common + interaural, for every predictor
    assert set(rec["interaural"]) == set(rec["common"]) == set(rec["loss"]) >= {"trained", "band context"}
    for k, (m, _, _) in rec["loss"].items():
        assert abs(rec["common"][k][0] + rec["interaural"][k][0] - m) < 1e-5, k
        assert 0 < rec["interaural level"][k][0] <= rec["interaural"][k][0], k
    assert "| common | interaural |" in report and "| interaural level (patch means) |" in report
    assert "| band context |" in report
    z = np.load(out / "demo_embeddings.npz")
    assert z["scene"].shape == (len(z["files"]), model.scene_embedding_size) and len(z["files"]) > 0
    assert np.isfinite(z["scene"]).all()
    card = (out / "weights" / "README.md").read_text()
    assert "## Evaluation" in card and report.strip().splitlines()[0] in card and "log_eps" in card
    assert "| total |" in r.stdout and str(out / "weights") in r.stdout
