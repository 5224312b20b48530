"""The main job, offline on the embedded default corpus: scenes -> pretraining -> export -> hear_gram
embeddings -> mini Nat-HEAR evaluation -> results table (with intervals) and plots.

    python -m training.demo                      # the `full` profile (22 min measured on a 2-core CPU; limit 30)
    python -m training.demo --profile ci         # the same path at test size (a minute or two)
    python -m training.demo --overwrite          # again into the same --out (replaces its run and export)

Profiles are preset files (training/presets/demo/<name>.py, read by training.config): `train` (the arguments of
`python -m training.train`), `suite` (a training/presets/suite/ preset), `random_config` (the random-init
column's architecture; `same` = the trained model's, from the same seed: where training started), `random_seeds`
(that column over init seeds 0..N-1, averaged per test clip), `recon_scenes` (held-out scenes of the
reconstruction-loss table) and `parallel` (build the suite while the model trains, one core each, instead of one
after the other).

Every stage is one of the project's own commands, run as a subprocess exactly as a user would run it; the
summary at the end says where the weights, embeddings, report and plots are.
"""

import argparse
import glob
import os
import subprocess
import sys
import time

from training.config import known_presets, load_preset

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEYS = {"train", "suite", "random_config", "random_seeds", "recon_scenes", "parallel"}


def profile(name: str) -> dict:
    values = load_preset(name, kind="demo")
    missing, unknown = KEYS - set(values), set(values) - KEYS
    if missing or unknown:
        raise ValueError(f"demo profile {name!r}: missing {sorted(missing)}, unknown {sorted(unknown)}")
    return values


def start(title, args, env=None):
    print(f"\n=== {title}\n$ {' '.join(args)}", flush=True)
    return title, time.time(), subprocess.Popen(args, cwd=REPO, env=env)


def wait(job, timings):
    title, t0, proc = job
    rc = proc.wait()
    timings.append((title, time.time() - t0))
    if rc != 0:
        sys.exit(f"demo: step '{title}' failed with exit status {rc}")


def run(title, args, timings, env=None):
    wait(start(title, args, env), timings)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m training.demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=os.path.join(REPO, "out", "demo"))
    p.add_argument("--profile", choices=known_presets("demo"), default="full")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run and the export of an earlier demo in --out (else they are refused)")
    a = p.parse_args(argv)
    prof = profile(a.profile)
    out = os.path.abspath(a.out)
    os.makedirs(out, exist_ok=True)
    cores = os.cpu_count() or 1
    py = sys.executable
    run_dir, weights, suite = (os.path.join(out, x) for x in ("run", "weights", "nathear"))
    emb, report = os.path.join(out, "demo_embeddings.npz"), os.path.join(out, "report.md")
    timings, t0 = [], time.time()

    parallel = bool(prof["parallel"]) and cores >= 2
    # in parallel: the suite builder gets one core (workers) and training the rest; else each takes them all
    suite_workers = 1 if parallel else max(1, min(4, cores))
    train_threads = max(1, cores - 1) if parallel else cores
    train = start("1/5 pretrain GRAM-T on synthesized binaural scenes",
                  [py, "-m", "training.train", *prof["train"], f"--threads={train_threads}", f"--out_dir={run_dir}",
                   *(["--overwrite"] if a.overwrite else [])])
    build = [py, "-m", "training.minisuite", suite, "--preset", prof["suite"], "--workers", str(suite_workers),
             "--quiet"]
    if parallel:
        env = dict(os.environ, OMP_NUM_THREADS="1")
        suite_job = start("3/5 build the mini Nat-HEAR suite (held-out rooms; during pretraining)", build, env)
        try:
            wait(train, timings)
            wait(suite_job, timings)
        finally:  # a failed stage stops its partner too
            for _, _, proc in (train, suite_job):
                if proc.poll() is None:
                    proc.terminate()
                    proc.wait()
    else:
        wait(train, timings)
        run("3/5 build the mini Nat-HEAR suite (held-out rooms)", build, timings)
    run("2/5 export model.safetensors + config.json",
        [py, "-m", "training.export", run_dir, weights, *(["--overwrite"] if a.overwrite else [])], timings)
    clips = sorted(glob.glob(os.path.join(suite, "tasks", "*", "32000", "test", "*.wav")))[:8]
    run("4/5 embed test clips with hear_gram and the exported weights",
        [py, "-m", "hear_gram.cli", "embed", *clips, "--weights", weights, "--kind", "both", "--out", emb,
         *(["--overwrite"] if a.overwrite else [])], timings)
    run("5/5 evaluate: baselines vs random init vs trained, held-out reconstruction",
        [py, "-m", "training.report", "--suite", suite, "--weights", weights, "--out", report,
         "--random-config", prof["random_config"], "--random-seeds", str(prof["random_seeds"]), "--run", run_dir,
         "--recon-scenes", str(prof["recon_scenes"]),
         "--png-dir", os.path.join(out, "plots"), "--json", os.path.join(out, "results.json"),
         *(["--overwrite"] if a.overwrite else [])], timings)

    from training import model_card

    card = model_card.write(weights, open(report).read())  # the Hub README, now with the results table
    plots = sorted(glob.glob(os.path.join(out, "**", "*.png"), recursive=True))
    print("| stage | seconds |\n|---|---|")
    for title, s in timings:
        print(f"| {title} | {s:.0f} |")
    print(f"| total | {time.time() - t0:.0f} |\n")
    print(f"weights:    {weights} (model card {card})\nembeddings: {emb}\nreport:     {report}\n"
          f"suite:      {suite}\nplots:      " + ("\n            ".join(plots) if plots else "(none)"))


if __name__ == "__main__":
    main()
