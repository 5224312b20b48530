"""How a log-mel is pooled over time decides how much direction a probe finds in it (the localization tasks).

    python -m benchmarks.level_pooling --suite out/demo/nathear [--tasks nh_azimuth nh_loc3d]

GRAM's input is a log-mel per ear: level per band and frame, no interaural phase.  Four fixed, model-free
poolings of that log-mel (training.probe.level_embedder), each probed as the report probes (training.probe:
ridge or MLP chosen on valid):

* mean log-mel: each ear's time-mean of the log-mel (256-d);
* power-pooled: each ear's ln(time-mean of the mel power), loud frames weigh more (256-d);
* power-pooled + ILD: and the left - right differences of those (384-d; the report's "log-mel levels + ILD");
* mean log-mel + ILD: the time-mean with its left - right differences (384-d).

A scene embedding of GRAM is the plain time-mean of its tokens; the table shows what a model of GRAM's input has
to learn to reach the level cues (README "The evidence of learning").
"""
import argparse
from pathlib import Path

from training.probe import level_embedder
from training.report import DOA, evaluate
from training.taskio import read_json

COLUMNS = {
    "mean log-mel (256-d)": ("mean", False),
    "power-pooled (256-d)": ("power", False),
    "power-pooled + ILD (384-d)": ("power", True),
    "mean log-mel + ILD (384-d)": ("mean", True),
}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.level_pooling", description=__doc__.split("\n")[0])
    p.add_argument("--suite", required=True, help="a suite folder from `python -m training.minisuite` (or make demo)")
    p.add_argument("--tasks", nargs="+", default=["nh_azimuth", "nh_loc3d"], help="localization tasks of the suite")
    a = p.parse_args(argv)
    for task in a.tasks:
        meta = Path(a.suite) / "tasks" / task / "task_metadata.json"
        if not meta.exists():
            p.error(f"--tasks: no {meta}")
        if read_json(meta)["prediction_type"] != DOA:
            p.error(f"--tasks: {task} is not a localization task")
    cols = {name: level_embedder(pooling, ild) for name, (pooling, ild) in COLUMNS.items()}
    res = evaluate(a.suite, cols, tasks=a.tasks, progress=lambda s: None)
    print("| task | pooling | test DOA mean (deg) | test DOA median (deg) | valid DOA mean (deg) | probe |")
    print("|---|---|---|---|---|---|")
    for task in a.tasks:
        for col in cols:
            r = res[task][col]
            print(f"| {task} | {col} | {r['doa_mean_deg']:.1f} | {r['doa_median_deg']:.1f} | "
                  f"{r['valid_doa_mean_deg']:.1f} | {r['hparams']['probe']} |")


if __name__ == "__main__":
    main()
