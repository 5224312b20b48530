"""The main job, offline on the embedded default corpus: scenes -> pretraining -> export -> hear_gram
embeddings -> mini Nat-HEAR evaluation -> results table and plots.

    python training/demo.py                      # full profile (about 20 min on a 2-core CPU)
    python training/demo.py --profile ci         # the same path at test size (a few minutes)

Every stage is one of the project's own commands, run as a subprocess exactly as a user would run it;
the summary at the end says where the weights, embeddings, report and plots are.
"""

import argparse
import glob
import os
import subprocess
import sys
import time

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROFILES = {
    # train overrides, mini Nat-HEAR profile (its "full" profile takes longer than the whole demo),
    # architecture of the random-init column
    "full": (["--preset=smoke", "--max_steps=1000", "--ckpt_every=200", "--image_every=250"], "demo", "same"),
    "ci": (["--preset=ci", "--max_steps=12"], "ci", "tiny"),
}


def run(title, args, timings):
    print(f"\n=== {title}\n$ {' '.join(args)}", flush=True)
    t0 = time.time()
    r = subprocess.run(args, cwd=REPO)
    timings.append((title, time.time() - t0))
    if r.returncode != 0:
        sys.exit(f"demo: step '{title}' failed with exit status {r.returncode}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=os.path.join(REPO, "out", "demo"))
    p.add_argument("--profile", choices=sorted(PROFILES), default="full")
    a = p.parse_args(argv)
    out = os.path.abspath(a.out)
    os.makedirs(out, exist_ok=True)
    train_args, suite_profile, random_config = PROFILES[a.profile]
    workers = max(1, min(4, os.cpu_count() or 1))
    py = sys.executable
    run_dir, weights, suite = (os.path.join(out, x) for x in ("run", "weights", "nathear"))
    emb, report = os.path.join(out, "demo_embeddings.npz"), os.path.join(out, "report.md")
    timings, t0 = [], time.time()

    run("1/5 pretrain GRAM-T on synthesized binaural scenes",
        [py, "-m", "training.train", *train_args, f"--out_dir={run_dir}"], timings)
    run("2/5 export model.safetensors + config.json", [py, "-m", "training.export", run_dir, weights], timings)
    run("3/5 build the mini Nat-HEAR suite (held-out rooms)",
        [py, "-m", "training.nathear", "mini", suite, "--profile", suite_profile, "--workers", str(workers)],
        timings)
    clips = sorted(glob.glob(os.path.join(suite, "tasks", "*", "32000", "test", "*.wav")))[:8]
    run("4/5 embed test clips with hear_gram and the exported weights",
        [py, "-m", "hear_gram.cli", "embed", *clips, "--weights", weights, "--kind", "both", "--out", emb], timings)
    run("5/5 evaluate: log-mel baseline vs random init vs trained",
        [py, "-m", "training.report", "--suite", suite, "--weights", weights, "--out", report,
         "--random-config", random_config, "--png-dir", os.path.join(out, "plots"),
         "--json", os.path.join(out, "results.json")], timings)

    from training import model_card

    card = model_card.write(weights, open(report).read())  # the Hub README, now with the results table
    plots = sorted(glob.glob(os.path.join(out, "**", "*.png"), recursive=True))
    print("| stage | seconds |\n|---|---|")
    for title, s in timings:
        print(f"| {title} | {s:.0f} |")
    print(f"| total | {time.time() - t0:.0f} |\n")
    print(f"weights:    {weights} (model card {card})\nembeddings: {emb}\nreport:     {report}\nsuite:      {suite}\nplots:      "
          + ("\n            ".join(plots) if plots else "(none)"))


if __name__ == "__main__":
    main()
