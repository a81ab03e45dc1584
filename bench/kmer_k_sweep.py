"""Pick kmer_attention's default k by measurement: train k = 3..6 on a task, select on validation AUROC.

Usage: REGBENCH_DATA=../shared/data .venv/bin/python bench/kmer_k_sweep.py [--task enhancers.ienhancer2l]
       [--ks 3,4,5,6] [--seeds 0,1] [--max-epochs 20]
Prints one row per k: mean ± sd over seeds of the best validation AUROC, the test AUROC of that model,
parameters and training time. The choice is made on validation; test is shown for information only.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from harness.config import TrainConfig
from harness.evaluation.metrics import binary_metrics
from harness.plugins import get_model, make_task
from harness.training.fit import fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="enhancers.ienhancer2l")
    parser.add_argument("--ks", default="3,4,5,6")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--max-epochs", type=int, default=20)
    args = parser.parse_args()
    task = make_task(args.task)
    plugin = get_model("kmer_attention")
    splits = task.splits()
    print(f"task {task.name}: train {len(splits['train'])}, val {len(splits['val'])}, test {len(splits['test'])}")
    print(f"{'k':>2} {'val AUROC':>16} {'test AUROC':>16} {'params':>9} {'time/run s':>10}")
    for k in (int(x) for x in args.ks.split(",")):
        vals, tests, seconds, n_params = [], [], [], 0
        for seed in (int(s) for s in args.seeds.split(",")):
            cfg = TrainConfig(max_epochs=args.max_epochs, seed=seed, progress=False)
            start = time.perf_counter()
            result = fit(task, plugin, {**plugin.defaults, "k": k}, cfg)
            seconds.append(time.perf_counter() - start)
            vals.append(result.best_val)
            test = splits["test"]
            tests.append(binary_metrics(test.labels, result.predictor.score(test))["auroc"])
            n_params = result.n_params
        print(
            f"{k:>2} {np.mean(vals):>9.4f} ± {np.std(vals):.4f} {np.mean(tests):>9.4f} ± {np.std(tests):.4f} "
            f"{n_params:>9,} {np.mean(seconds):>10.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
