"""Nat-HEAR builder, localization tasks and DOA metrics (training/nathear.py, training/localization.py)."""

import json
import os
import re

import numpy as np
import pytest

sf = pytest.importorskip("soundfile")
pytest.importorskip("scipy")
pytest.importorskip("tqdm")

import hear_tasks  # noqa: E402
from training import localization, minisuite, nathear, probe  # noqa: E402

SPLITS = {"train": ["a.wav", "b.wav", "c.wav"], "valid": ["d.wav"], "test": ["e.wav", "f.wav"]}
META = {"task_name": "toy", "version": "v1.0", "embedding_type": "scene", "prediction_type": "multiclass",
        "split_mode": "trainvaltest", "sample_duration": 0.5, "evaluation": ["top1_acc"],
        "splits": list(SPLITS)}


def make_source(root, sr=16000, stereo=False):
    """A mono (or stereo) HEAR task at `sr` only, 0.5 s clips (one shorter, to be padded)."""
    rng = np.random.default_rng(0)
    task = root / "toy-v1.0-full"
    for split, names in SPLITS.items():
        (task / str(sr) / split).mkdir(parents=True)
        labels = {}
        for i, n in enumerate(names):
            t = np.arange(int(sr * (0.4 if n == "c.wav" else 0.5))) / sr
            x = 0.3 * np.sin(2 * np.pi * (300 + 200 * i) * t) + 0.01 * rng.standard_normal(len(t))
            sf.write(str(task / str(sr) / split / n), np.stack([x, x], 1) if stereo else x, sr, subtype="PCM_16")
            labels[n] = ["low" if i % 2 else "high"]
        (task / f"{split}.json").write_text(json.dumps(labels))
    (task / "labelvocabulary.csv").write_text("idx,label\n0,high\n1,low\n")
    (task / "task_metadata.json").write_text(json.dumps(META))
    return task


@pytest.fixture(scope="module")
def synth():
    return nathear.make_synth(seed=0, rooms=8)


@pytest.fixture(scope="module")
def built(tmp_path_factory, synth):
    root = tmp_path_factory.mktemp("nh")
    src = make_source(root)
    out = root / "out"
    stats = nathear.build_task(src, out, seed=0, rooms=8, synth=synth, progress=False)
    return src, out, stats


def wav_bytes(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.wav"))}


def test_same_splits_labels_and_format(built):
    src, out, stats = built
    assert stats["files"] == 6 and stats["rendered"] == 6 and stats["skipped"] == 0
    meta = json.loads((out / "task_metadata.json").read_text())
    assert meta["splits"] == META["splits"]
    for k, v in META.items():  # everything heareval reads is unchanged
        assert meta[k] == v
    assert meta["num_channels"] == 2 and meta["naturalistic"]["source_sample_rate"] == 16000
    assert meta["naturalistic"]["seed"] == 0 and meta["naturalistic"]["sample_rate"] == 32000
    assert (out / "labelvocabulary.csv").read_text() == (src / "labelvocabulary.csv").read_text()
    for split, names in SPLITS.items():
        assert json.loads((out / f"{split}.json").read_text()) == json.loads((src / f"{split}.json").read_text())
        assert sorted(os.listdir(out / "32000" / split)) == names  # no temporary files left
        for n in names:
            info = sf.info(str(out / "32000" / split / n))
            assert (info.samplerate, info.channels, info.frames, info.subtype) == (32000, 2, 16000, "PCM_16")
            x, _ = sf.read(str(out / "32000" / split / n))
            assert np.abs(x).max() > 1e-3 and not np.allclose(x[:, 0], x[:, 1])  # binaural, not silence
        scenes = [json.loads(line) for line in (out / "scenes" / f"{split}.jsonl").read_text().splitlines()]
        assert sorted(s["file"] for s in scenes) == names
        assert all(s["split"] == "test" and s["room_id"].startswith("test-") for s in scenes)  # held-out rooms
        assert all(np.isclose(np.linalg.norm(s["direction"]), 1) and 5 <= s["snr_db"] <= 40 for s in scenes)
    assert json.loads((out / "nathear.json").read_text())["complete"] is True
    assert not (src / "32000").exists()  # the source is untouched


def test_deterministic_and_seeded(built, synth, tmp_path):
    src, out, _ = built
    again = tmp_path / "again"
    nathear.build_task(src, again, seed=0, rooms=8, synth=synth, progress=False)
    assert wav_bytes(again) == wav_bytes(out)
    other = tmp_path / "other"
    nathear.build_task(src, other, seed=1, rooms=8, synth=synth, progress=False)
    assert wav_bytes(other).keys() == wav_bytes(out).keys() and wav_bytes(other) != wav_bytes(out)


def test_resume_skips_finished_files(built, synth, tmp_path):
    src, out, _ = built
    import shutil
    part = tmp_path / "part"
    shutil.copytree(out, part)
    ref = wav_bytes(part)
    (part / "32000" / "train" / "b.wav").unlink()  # an interrupted build: one file missing ...
    (part / "task_metadata.json").unlink()
    lines = (part / "scenes" / "test.jsonl").read_text().splitlines()
    (part / "scenes" / "test.jsonl").write_text(lines[0] + "\n" + lines[1][:20])  # ... and a cut scene line
    before = {p: os.stat(p).st_mtime_ns for p in part.rglob("*.wav")}
    stats = nathear.build_task(src, part, seed=0, rooms=8, synth=synth, progress=False)
    assert stats["rendered"] == 2 and stats["skipped"] == 4
    assert wav_bytes(part) == ref
    untouched = [p for p in before if p.name not in ("b.wav", "f.wav")]
    assert all(os.stat(p).st_mtime_ns == before[p] for p in untouched)
    assert (part / "task_metadata.json").exists()


def test_refuses_source_and_foreign_folders(built, tmp_path):
    src, out, _ = built
    for bad in (src, src / "naturalistic", src.parent):
        with pytest.raises(ValueError, match="refusing"):
            nathear.build_task(src, bad, rooms=8, progress=False)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a Nat-HEAR build"):
        nathear.build_task(src, foreign, rooms=8, progress=False)
    with pytest.raises(FileExistsError, match="other settings"):
        nathear.build_task(src, out, seed=5, rooms=8, progress=False)
    assert nathear.main(["build", str(src), str(src), "--quiet"]) == 2


def test_stereo_44k_source_and_task_folder(tmp_path, synth):
    root = tmp_path / "tasks"
    root.mkdir()
    make_source(root, sr=44100, stereo=True)
    stats = nathear.build(root, tmp_path / "nat", seed=0, rooms=8, synth=synth, progress=False)
    assert list(stats) == ["toy-v1.0-full"]
    info = sf.info(str(tmp_path / "nat" / "toy-v1.0-full" / "32000" / "test" / "e.wav"))
    assert (info.samplerate, info.channels, info.frames) == (32000, 2, 16000)


def test_localization_task(built, synth, tmp_path):
    src, _, _ = built
    out = tmp_path / "azi"
    localization.make_task(src, out, kind="azimuth", seed=0, synth=synth, rooms=8, progress=False)
    meta = json.loads((out / "task_metadata.json").read_text())
    assert meta["prediction_type"] == "cartesian-regression" and meta["task_name"] == "toy_azimuth"
    assert (out / "labelvocabulary.csv").read_text() == "idx,label\n"
    for split, names in SPLITS.items():
        labels = json.loads((out / f"{split}.json").read_text())
        assert sorted(labels) == names
        v = np.array(list(labels.values()))
        assert v.shape == (len(names), 3) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
        assert np.allclose(v[:, 2], 0, atol=1e-6)  # horizontal plane
        lines = (out / "scenes" / f"{split}.jsonl").read_text().splitlines()
        scenes = {json.loads(x)["file"]: json.loads(x) for x in lines}
        for n in names:
            assert np.allclose(labels[n], scenes[n]["direction"], atol=1e-5)
            assert np.isclose(scenes[n]["elevation_deg"], 0)


def test_doa_metrics_are_nan_safe():
    t = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]], float)
    p = np.array([[2, 0, 0], [0, 0, 1], [np.nan, 0, 0], [0, 0, 0]], float)
    e = localization.doa_errors(p, t)
    assert np.allclose(e, [0, 90, 180, 180])
    s = localization.doa_summary(p, t)
    assert s["doa_mean_deg"] == pytest.approx(112.5) and s["doa_median_deg"] == pytest.approx(135)
    assert s["n_invalid"] == 2
    assert localization.doa_errors([[-1, 0, 0]], [[1, 0, 0]])[0] == pytest.approx(180)
    az, el = localization.az_el(np.array([[0, 1, 0], [0, 0, 1.0]]))
    assert np.allclose(az[0], 90) and np.allclose(el[1], 90)


def test_doa_evaluator_learns_and_plots(tmp_path):
    rng = np.random.default_rng(0)

    def data(n):
        y = rng.standard_normal((n, 3))
        y /= np.linalg.norm(y, axis=1, keepdims=True)
        x = np.concatenate([y, 0.05 * rng.standard_normal((n, 13))], 1)
        return x, y

    d = {"train": data(200), "valid": data(50), "test": data(50)}
    png = tmp_path / "doa.png"
    r = localization.evaluate_doa(d, png=str(png), grid={"mlp": ((0, 1e-2),)}, max_epochs=200)
    assert r["doa_mean_deg"] < 15 and r["doa_median_deg"] <= r["doa_mean_deg"] + 5 and r["n"] == 50
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    out = tmp_path_factory.mktemp("suite") / "mini"
    return out, minisuite.make_mini(out, "tiny", seed=0, progress=False, tasks=("nh_pitch", "nh_azimuth"),
                                  sizes=(4, 2, 2))


def test_mini_suite_subset(mini):
    out, man = mini
    assert sorted(os.listdir(out / "tasks")) == ["nh_azimuth", "nh_pitch"]
    assert sorted(os.listdir(out / "dry")) == ["nh_azimuth", "nh_pitch"]
    assert set(man["tasks"]) == {"nh_pitch", "nh_azimuth"} and man["bytes_tasks"] > 0
    assert json.loads((out / "manifest.json").read_text())["sizes"] == {"train": 4, "valid": 2, "test": 2}
    vocab = (out / "tasks" / "nh_pitch" / "labelvocabulary.csv").read_text().splitlines()
    assert vocab[0] == "idx,label" and [v.split(",")[0] for v in vocab[1:]] == [str(i) for i in range(len(vocab) - 1)]
    info = sf.info(str(out / "tasks" / "nh_pitch" / "32000" / "train" / "nh_pitch_train_00000.wav"))
    assert (info.samplerate, info.channels, info.frames) == (32000, 2, 32000)


def test_mini_suite_cli_sizes(tmp_path, capsys):
    """--localization-sizes sets the localization task's clips (the manifest and its command say so); a second
    build into that folder with other sizes, and a size below 1, are refused with the option or folder named."""
    out = tmp_path / "loc"
    assert minisuite.main([str(out), "--preset", "tiny", "--tasks", "nh_azimuth", "--quiet",
                           "--localization-sizes", "3", "2", "1"]) == 0
    man = json.loads((out / "manifest.json").read_text())
    assert man["localization_sizes"] == {"train": 3, "valid": 2, "test": 1}
    assert man["command"].endswith("--localization-sizes 3 2 1")
    for split, n in (("train", 3), ("valid", 2), ("test", 1)):
        assert len(os.listdir(out / "tasks" / "nh_azimuth" / "32000" / split)) == n
    capsys.readouterr()
    assert minisuite.main([str(out), "--preset", "tiny", "--tasks", "nh_azimuth", "--quiet",
                           "--localization-sizes", "4", "2", "1"]) == 2
    assert f"{out} holds a suite of other sizes" in capsys.readouterr().err
    (out / "manifest.json").unlink()  # an unfinished build: the dry clips on disk are checked instead
    assert minisuite.main([str(out), "--preset", "tiny", "--tasks", "nh_azimuth", "--quiet",
                           "--localization-sizes", "4", "2", "1"]) == 2
    assert "holds {'train': 3, 'valid': 2, 'test': 1} clips" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        minisuite.main([str(tmp_path / "other"), "--sizes", "4", "0", "2"])
    assert e.value.code == 2 and "--sizes must be three clip counts >= 1, got 4 0 2" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()


def test_report_table(mini, tmp_path):
    """The report on two tasks every column must solve (tests/hear_tasks.py): band-limited noise low vs high
    (top-1 >= 0.9, chance 0.5) and white noise from left / front / right (DOA median <= 5 degrees)."""
    from training import report
    _, man = mini
    suite = tmp_path / "suite"
    hear_tasks.write_task(suite / "tasks", "bands", sizes=(16, 8, 8))
    hear_tasks.write_task(suite / "tasks", "sides", sizes=(18, 9, 9))
    cols = {"log-mel": probe.logmel_embedder(), "levels": probe.level_embedder(),
            "random tiny": probe.random_embedder("gram_t_patch", "tiny", str(tmp_path / "w"))}
    res = report.evaluate(suite, cols, png_dir=str(tmp_path), progress=lambda s: None)
    assert set(res) == {"toy_bands", "toy_sides"}
    assert res["toy_bands"]["log-mel"]["dim"] == 512 and res["toy_bands"]["random tiny"]["dim"] == 8 * 64
    assert res["toy_bands"]["levels"]["dim"] == 384
    for col in cols:
        assert res["toy_bands"][col]["top1_acc"] >= 0.9 and res["toy_bands"][col]["n"] == 8, (col, res)
        assert res["toy_sides"][col]["doa_median_deg"] <= 5 and res["toy_sides"][col]["doa_mean_deg"] <= 10, (col, res)
    md = report.table(res, list(cols), man)
    assert md.count("\n| toy_") == 3 and "top-1 accuracy" in md and "DOA error" in md and "Probes:" in md
    assert f"| toy_bands | top-1 accuracy (higher is better) | {res['toy_bands']['log-mel']['top1_acc']:.3f} [" in md
    assert (tmp_path / "toy_sides-log-mel.png").exists()
    only = report.evaluate(suite, {"levels": cols["levels"]}, tasks=["toy_sides"], progress=lambda s: None)
    assert set(only) == {"toy_sides"} and only["toy_sides"]["levels"]["doa_median_deg"] <= 5
    with pytest.raises(ValueError, match="no task \\['toy_nope'\\]"):
        report.evaluate(suite, cols, tasks=["toy_nope"])


def test_report_averages_several_training_runs(tmp_path, capsys):
    """Several --weights (runs of one configuration): the trained column is their per-clip mean, each run's value is
    listed, the paired difference is against the seed-averaged random init; mismatched architectures are refused."""
    import torch

    from conftest import tiny_config
    from hear_gram.checkpoint import save_model
    from hear_gram.model import GramEncoder
    from training import report
    suite = tmp_path / "suite"
    hear_tasks.write_task(suite / "tasks", "sides", sizes=(18, 9, 9))
    runs = []
    for seed in (0, 1):
        torch.manual_seed(10 + seed)
        runs.append(str(tmp_path / f"run{seed}"))
        save_model(GramEncoder(tiny_config(dim=32, mlp_dim=64)), runs[-1])
    js = tmp_path / "r.json"
    assert report.main(["--suite", str(suite), "--weights", *runs, "--random-config", "same", "--random-seeds", "2",
                        "--json", str(js), "--out", str(tmp_path / "r.md")]) == 0
    res = json.loads(js.read_text())["tasks"]["toy_sides"]
    t, r = res["trained (2 runs)"], res["random init (same config, 2 seeds)"]
    assert set(res) == {"prediction_type", "log-mel (512-d)", "log-mel levels + ILD (384-d)", "binaural cues (213-d)",
                        "random init (same config, 2 seeds)", "trained (2 runs)"}
    assert len(t["seeds"]) == 2 and t["doa_mean_deg"] == pytest.approx(np.mean(t["per_clip"]))
    assert t["doa_mean_deg"] == pytest.approx(np.mean([m for m, _ in t["seeds"]]))  # mean of means = mean of clips
    md = (tmp_path / "r.md").read_text()
    assert "| trained (2 runs) - random init (same config, 2 seeds) |" in md
    diff = t["doa_mean_deg"] - r["doa_mean_deg"]
    assert f"| {diff:+.1f} [" in md
    assert f"trained (2 runs): test value of each run ({runs[0]}, {runs[1]})" in md
    other = str(tmp_path / "wide")
    save_model(GramEncoder(tiny_config(dim=64, mlp_dim=64)), other)
    for bad, msg in (([runs[0], other], "differs from .* in dim=64"), ([runs[0], runs[0]], "names a checkpoint twice")):
        with pytest.raises(SystemExit):
            report.main(["--suite", str(suite), "--weights", *bad])
        assert re.search(msg, capsys.readouterr().err), msg


def test_workers_build_is_byte_identical(built, synth, tmp_path):
    """--workers renders in forked processes; every output file (wavs, scene records, labels, metadata) must be
    byte-identical to the serial build, for plain tasks and for the localization hooks (placement/relabel)."""
    src, out, _ = built
    par = tmp_path / "par"
    st = nathear.build_task(src, par, seed=0, rooms=8, synth=synth, progress=False, workers=2)
    assert st["rendered"] == 6

    def files(root):
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
                if p.is_file() and p.name != "nathear.json"}  # nathear.json holds the build time
    assert files(par) == files(out) and any(k.endswith(".jsonl") for k in files(out))
    loc = {w: tmp_path / f"loc{w}" for w in (1, 3)}
    for w, d in loc.items():
        localization.make_task(src, d, kind="3d", seed=0, synth=synth, progress=False, workers=w)
    assert files(loc[1]) == files(loc[3])


def test_report_random_column_can_match_the_trained_architecture(tmp_path):
    import torch

    from conftest import tiny_config
    from hear_gram.checkpoint import save_model
    from hear_gram.model import GramEncoder

    torch.manual_seed(5)
    trained = GramEncoder(tiny_config(dim=32, mlp_dim=64))
    save_model(trained, str(tmp_path / "trained"))
    embed = probe.random_embedder("gram_t_patch", "same", str(tmp_path / "random"), str(tmp_path / "trained"))
    out = embed(torch.zeros(1, 2, 32000))
    assert out.shape[-1] == 8 * 32  # raw scene embedding of the trained architecture (8 bands x dim 32)
    saved = json.load(open(tmp_path / "random" / "config.json"))["config"]
    assert saved == trained.config.to_dict()
    with pytest.raises(ValueError, match="needs --weights"):
        probe.random_embedder("gram_t_patch", "same", str(tmp_path / "r2"))


def test_build_does_not_depend_on_the_torch_thread_count(tmp_path, synth):
    """Issue 11 finding 8: 3 s clips (long enough for torch to split a float32 reduction over threads); the SNR
    gain's energies were such a reduction, so 1 and 2 threads gave wavs 1 LSB apart."""
    import torch

    task = tmp_path / "long-v1.0-full"
    (task / "32000" / "test").mkdir(parents=True)
    rng = np.random.default_rng(1)
    names = [f"n{i}.wav" for i in range(6)]
    for n in names:
        sf.write(str(task / "32000" / "test" / n), 0.2 * rng.standard_normal(3 * 32000), 32000, subtype="PCM_16")
    (task / "test.json").write_text(json.dumps({n: ["x"] for n in names}))
    (task / "task_metadata.json").write_text(json.dumps({**META, "sample_duration": 3.0, "splits": ["test"]}))
    before = torch.get_num_threads()
    out = {}
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            nathear.build_task(task, tmp_path / f"t{threads}", seed=0, rooms=8, synth=synth, progress=False)
            out[threads] = wav_bytes(tmp_path / f"t{threads}")
    finally:
        torch.set_num_threads(before)
    assert len(out[1]) == 6 and out[1] == out[2]
    assert (tmp_path / "t1" / "scenes" / "test.jsonl").read_bytes() == (tmp_path / "t2" / "scenes" / "test.jsonl").read_bytes()


# -- a task folder is downloaded data (issue 11, findings 1 and 13) ---------------------------------------------

def _snapshot(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("evil", ["../../../../elsewhere/x.wav", "ABSOLUTE", "a/../../x.wav", ""])
def test_file_names_from_a_split_json_never_leave_the_output_folder(tmp_path, synth, evil):
    src = make_source(tmp_path / "src")
    victim = tmp_path / "victim.wav"
    victim.write_bytes(b"someone else's file")
    name = str(victim) if evil == "ABSOLUTE" else evil
    labels = json.loads((src / "train.json").read_text())
    labels[name] = ["high"]
    (src / "train.json").write_text(json.dumps(labels))
    before = _snapshot(tmp_path)
    with pytest.raises(ValueError, match=r"train\.json: name .* is not a plain relative path inside the task folder"):
        nathear.build_task(src, tmp_path / "out", seed=0, rooms=8, synth=synth, progress=False)
    assert _snapshot(tmp_path) == before  # nothing written anywhere, OUT not even created
    assert victim.read_bytes() == b"someone else's file"
    assert nathear.main(["build", str(src), str(tmp_path / "out"), "--rooms", "8", "--quiet"]) == 2


@pytest.mark.parametrize("damage, match", [
    ("missing_wav", r"train\.json lists 1 file\(s\) missing from .*16000/train: b\.wav"),
    ("no_splits", r"task_metadata\.json has no 'splits' list \(got None\)"),
    ("bad_metadata", r"task_metadata\.json: malformed JSON \(Expecting .* at line 1 column"),
    ("bad_split_json", r"valid\.json: malformed JSON"),
    ("split_json_list", r"test\.json: expected a JSON object \{file name: label\}, got list"),
    ("evil_split", r"'splits': name '\.\./x' is not a plain relative path"),
    ("corrupt_wav", r"cannot read .*16000/train/b\.wav: "),
])
def test_a_broken_task_is_a_named_error_and_does_not_stop_the_others(tmp_path, synth, capsys, damage, match):
    good = make_source(tmp_path / "src")
    bad = good.parent / "bad-v1.0-full"
    import shutil

    shutil.copytree(good, bad)
    meta = json.loads((bad / "task_metadata.json").read_text())
    if damage == "missing_wav":
        (bad / "16000" / "train" / "b.wav").unlink()
    elif damage == "no_splits":
        (bad / "task_metadata.json").write_text(json.dumps({k: v for k, v in meta.items() if k != "splits"}))
    elif damage == "bad_metadata":
        (bad / "task_metadata.json").write_text("{'task_name': 'bad',")
    elif damage == "bad_split_json":
        (bad / "valid.json").write_text('{"d.wav": ["high"]')
    elif damage == "split_json_list":
        (bad / "test.json").write_text('["e.wav", "f.wav"]')
    elif damage == "evil_split":
        (bad / "task_metadata.json").write_text(json.dumps({**meta, "splits": ["train", "../x"]}))
    elif damage == "corrupt_wav":
        (bad / "16000" / "train" / "b.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with pytest.raises(ValueError, match=match):
        nathear.build_task(bad, tmp_path / "one", seed=0, rooms=8, synth=synth, progress=False)
    # the folder of tasks: the good task is built, the bad one reported, exit status 1
    assert nathear.main(["build", str(good.parent), str(tmp_path / "all"), "--rooms", "8", "--quiet"]) == 1
    cap = capsys.readouterr()
    assert "toy-v1.0-full: 6 files, 6 rendered" in cap.out and "error: task bad-v1.0-full: " in cap.err
    assert "1 of 2 tasks failed: bad-v1.0-full" in cap.err
    assert json.loads((tmp_path / "all" / "toy-v1.0-full" / "nathear.json").read_text())["complete"] is True


def test_localization_png_is_checked_before_the_work(tmp_path, capsys):
    png = tmp_path / "doa.png"
    png.write_bytes(b"an earlier plot")
    # the embedding folder does not even exist: the output is refused first
    assert localization.main(["eval-heareval", str(tmp_path / "no-emb"), "--png", str(png)]) == 2
    assert f"--png {png} exists; pass --overwrite to replace it" in capsys.readouterr().err
    assert png.read_bytes() == b"an earlier plot"
    assert localization.main(["eval-heareval", str(tmp_path / "no-emb"), "--png", str(tmp_path / "no" / "d.png")]) == 2
    assert "does not exist" in capsys.readouterr().err


_SPEECH_HASH = """
import hashlib, sys
from pathlib import Path
from training import minisuite
from training.sources import Espeak
out = Path(sys.argv[1])
eng = Espeak()
h = hashlib.sha256()
for voice in ("en-us+whisper", "de+f3", "fr+f5", "en+klatt2", "es+croak"):  # voices with noise sources
    eng.seed(1234)
    h.update(eng.synth("seven open window", voice).tobytes())
for task in ("nh_keywords", "nh_count"):
    minisuite.make_dry_task(out / task, task, (4, 2, 4), seed=0, eng=eng, progress=False)
for f in sorted(out.rglob("*.wav")):
    h.update(f.read_bytes())
print(h.hexdigest(), len(list(out.rglob("*.wav"))))
"""


def test_speech_tasks_are_the_same_in_every_process(tmp_path):
    """espeak-ng seeds its own noise generator (breathy, whispered voices) from the clock unless told: two
    processes built different keyword/count clips, so `make demo` twice gave two suites. Now equal."""
    import subprocess
    import sys
    pytest.importorskip("espeakng_loader")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    run = lambda d: subprocess.run([sys.executable, "-c", _SPEECH_HASH, str(d)], cwd=root, check=True,  # noqa: E731
                                   capture_output=True, text=True).stdout.split()
    first, second = run(tmp_path / "a"), run(tmp_path / "b")
    assert first[1] == "20" and first == second
