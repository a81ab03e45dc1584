"""TargetFinder on NHEK: random vs chromosome cross-validation of `targetfinder_gbm`, and its own predictions.

Usage: REGBENCH_DATA=../shared/data python bench/targetfinder_cv.py [--trees 4000] [--backend exact] [--jobs 2]

Prints, as mean ± sd over folds, F1 at 0.5 and AUPRC for: random stratified 10-fold CV (the literature's protocol),
leave-chromosomes-out 10-fold CV (GroupKFold over chromosomes), and the one `data.split=chromosome` test split of
`epi.targetfinder_nhek` (trained on train + val) — next to the F1 of the `prediction` column of NHEK_pairs.csv.gz
(TargetFinder's committed 10-fold CV predictions, pooled over its folds). `pooled F1` is the F1 of all out-of-fold
predictions of a protocol concatenated, the way TargetFinder's prediction files are. Also the seconds per fit.

Note: NHEK_pairs.csv.gz is TargetFinder's `paper/targetfinder/NHEK/output-ep/predictions-gbm.csv` (enhancer and
promoter features only), and NHEK_training.csv.gz its `output-ep/training.csv.gz`: the E/P feature set. The paper's
E/P/W figure (window features, F1 ≈ 0.9) needs `output-epw`, which is not in $REGBENCH_DATA.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from joblib import Parallel, delayed
from sklearn.metrics import average_precision_score, f1_score
from sklearn.model_selection import GroupKFold, StratifiedKFold

from harness.paths import require_data
from models.targetfinder_gbm import make_estimator
from tasks._epi_splits import chromosome_split
from tasks._targetfinder_pairs import read_pairs
from tasks.targetfinder_features import RELATIVE, read_feature_table


def fold_scores(x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, args: argparse.Namespace) -> tuple:
    """Fit on `train` rows, score `test` rows: `(f1 at 0.5, auprc, seconds, test probabilities)`."""
    model = make_estimator(args.backend, args.trees, 0.1, 5, "log2", 0, x.shape[1])
    start = time.perf_counter()
    model.fit(x[train], y[train])
    seconds = time.perf_counter() - start
    proba = model.predict_proba(x[test])[:, 1]
    return f1_score(y[test], proba >= 0.5), average_precision_score(y[test], proba), seconds, proba


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", type=int, default=4000)
    parser.add_argument("--backend", default="exact", choices=("exact", "hist"))
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()

    table = read_feature_table(require_data(RELATIVE, "targetfinder_cv"))
    x, y = table.features, table.labels.astype(np.int64)
    pairs = read_pairs(require_data("targetfinder/NHEK_pairs.csv.gz", "targetfinder_cv"))
    assert pairs.prediction is not None
    tf_f1 = f1_score(pairs.labels, pairs.prediction)
    print(f"NHEK: {len(y)} pairs, {y.mean():.2%} positive, {x.shape[1]} features; "
          f"{args.backend} GBM, {args.trees} trees, lr 0.1, depth 5, log2 features")  # fmt: skip
    print(f"TargetFinder committed predictions (NHEK_pairs.csv.gz): F1 {tf_f1:.3f} over {len(pairs)} pairs")

    random_folds = StratifiedKFold(args.folds, shuffle=True, random_state=0).split(x, y)
    chrom_folds = GroupKFold(args.folds).split(x, y, groups=table.chrom)
    split = chromosome_split(table.chrom, y, 0.1, 0.1, 0)
    protocols = {
        f"random stratified {args.folds}-fold": list(random_folds),
        f"leave-chromosomes-out {args.folds}-fold": list(chrom_folds),
        "chromosome split (train+val → test)": [(np.concatenate([split["train"], split["val"]]), split["test"])],
    }
    jobs = [(name, tr, te) for name, folds in protocols.items() for tr, te in folds]
    results = Parallel(n_jobs=args.jobs)(delayed(fold_scores)(x, y, tr, te, args) for _, tr, te in jobs)
    print(f"{'protocol':<40} {'F1@0.5':>15} {'pooled F1':>9} {'AUPRC':>15} {'s/fit':>7}")
    for name in protocols:
        mine = [(te, r) for (n, _, te), r in zip(jobs, results, strict=True) if n == name]
        rows = np.array([r[:3] for _, r in mine])
        mean, sd = rows.mean(axis=0), rows.std(axis=0)
        test = np.concatenate([te for te, _ in mine])
        pooled = f1_score(y[test], np.concatenate([r[3] for _, r in mine]) >= 0.5)
        print(f"{name:<40} {mean[0]:>7.3f} ± {sd[0]:.3f} {pooled:>9.3f} {mean[1]:>7.3f} ± {sd[1]:.3f} {mean[2]:>7.1f}")


if __name__ == "__main__":
    main()
