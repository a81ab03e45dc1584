"""Is averaging a model's evaluation seeds worth it? Decided on validation data, reported on test, from the logged
predictions of a finished benchmark (no training).

For every model × task of the experiment scored with two or more seeds that score differently (binary tasks; the
deterministic ones, e.g. the k-mer logistic regression, are only the baseline), from the refits'
`predictions/{val,test}.tsv`: the mean single-seed AUROC and the AUROC of the seed ensemble (per-example scores
averaged over seeds), on validation and on test (with its bootstrap 95% CI); `choose` is "ensemble" when the
ensemble's validation AUROC beats the mean single seed's — the only split a default may be chosen on. On test: the
ensemble against its own first seed and against `kmer_logreg`'s ensemble, by DeLong's paired test
(`harness.evaluation.paired.delong`).

    MLFLOW_TRACKING_URI=sqlite:////work/refrun/mlflow.db .venv/bin/python bench/seed_ensemble.py --experiment reference
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.benchmark.comparisons import PREDICTIONS, NotComparableError, read_predictions  # noqa: E402
from harness.benchmark.leaderboard import cell_runs, leaderboard, to_markdown  # noqa: E402
from harness.evaluation.bootstrap import bootstrap_binary  # noqa: E402
from harness.evaluation.metrics import binary_metrics  # noqa: E402
from harness.evaluation.paired import delong  # noqa: E402
from harness.tracking import store  # noqa: E402

BASELINE = "kmer_logreg"


def seed_scores(run_ids: list[str], tmp: Path) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
    """Per split ("test", "val"): labels `(N,)` and per-seed scores `(S, N)` aligned on the sorted ids; None when
    a run lacks binary predictions."""
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in PREDICTIONS:
        frames = []
        for run_id in run_ids:
            local = store.download_artifact(run_id, name, tmp / run_id)
            if local is None:
                return None
            try:
                frames.append(read_predictions(local, f"run {run_id} {name}"))
            except NotComparableError:  # multi-label predictions
                return None
        if any(not f["id"].equals(frames[0]["id"]) for f in frames[1:]):
            return None
        split = Path(name).stem
        out[split] = frames[0]["label"].to_numpy(), np.stack([f["score"].to_numpy(float) for f in frames])
    return out


def auroc(labels: np.ndarray, score: np.ndarray) -> float:
    return binary_metrics(labels, score)["auroc"]


def rows(experiment: str) -> list[dict]:
    board = leaderboard(cell_runs(experiment))
    board = board[(board["status"] == "ok") & (board["n_seeds"] >= 2) & (board["primary_metric"] == "auroc")]
    out, ensembles = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for _, row in board.iterrows():
            scores = seed_scores(row["run_ids"].split(","), Path(tmp))
            if scores is None:
                continue
            (y_val, val), (y_test, test) = scores["val"], scores["test"]
            ensemble = test.mean(axis=0)
            ensembles[row["task"], row["model"]] = (y_test, ensemble)
            if np.ptp(np.concatenate([val, test], axis=1), axis=0).max() == 0:
                continue  # a deterministic model (k-mer LR, shortcuts): every seed scores alike
            low, high = bootstrap_binary(y_test, ensemble, n_boot=2000)["auroc"]
            out.append({
                "task": row["task"], "model": row["model"], "seeds": int(row["n_seeds"]),
                "val single": np.mean([auroc(y_val, s) for s in val]), "val ensemble": auroc(y_val, val.mean(axis=0)),
                "test single": np.mean([auroc(y_test, s) for s in test]), "test ensemble": auroc(y_test, ensemble),
                "ensemble CI": f"[{low:.3f}, {high:.3f}]",
                "Δ vs seed 0 (p)": _delong(y_test, ensemble, test[0]),
            })  # fmt: skip
    for r in out:
        base = ensembles.get((r["task"], BASELINE))
        mine = ensembles[r["task"], r["model"]]
        same = base is not None and r["model"] != BASELINE and np.array_equal(base[0], mine[0])
        r[f"Δ vs {BASELINE} (p)"] = _delong(mine[0], mine[1], base[1]) if same else ""
        r["choose"] = "ensemble" if r["val ensemble"] > r["val single"] else "single seed"
    return out


def _delong(labels: np.ndarray, a: np.ndarray, b: np.ndarray) -> str:
    test = delong(labels, a, b)
    return f"{test.delta:+.3f} ({test.p_value:.2g})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", default="reference", help="the benchmark's experiment (its study name)")
    args = parser.parse_args()
    table = pd.DataFrame(rows(args.experiment))
    if table.empty:
        raise SystemExit(f"experiment {args.experiment!r} has no binary model scored with two or more seeds")
    print(to_markdown(table.round(3)))


if __name__ == "__main__":
    main()
