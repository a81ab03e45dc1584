"""Variant-effect boards of a benchmark: the study file's `variants:` sets scored by every refit on the leaderboard.

`score_refits`: after the cells, each refit of each scored board row is scored on each set and logged as a nested
`regbench.kind=variants` run, as `regbench variants` does (`harness.evaluation.variant_runs`). A refit that already
has a FINISHED variants run with the set's digest (file content and genome) is not scored again, so a re-run of
the benchmark only reads the logged `variants.tsv` files.

`boards`: per set, one row per board row (task × split protocol × model) from the variants runs nested under its
refits (the newest per refit, of the set's newest digest), each model's Δ averaged over its seeds per variant:
- a set with labels ranks by AUROC of |Δ|; DeLong's test of each pair of models on |Δ| (`paired.delong`);
- an effect-only set ranks by Spearman ρ of Δ against the effect; paired bootstrap of Δρ over shared resamples
  (`paired.regression_resampled`, `N_BOOT` resamples).
p-values are Holm-adjusted within each set; ranks group as the leaderboard's do (`comparisons.group_labels`): "r="
only from a test that ran and found no difference. Each metric carries its seeded bootstrap 95% CI
(`variant_metrics`). Models scored on different variants (a ref mismatch in one window, say) are not compared.
"""

from __future__ import annotations

import tempfile
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from harness.benchmark.comparisons import ALPHA, group_labels
from harness.benchmark.leaderboard import to_markdown
from harness.benchmark.study_file import StudyFile
from harness.evaluation.paired import delong, holm, paired_from_resamples, regression_resampled
from harness.evaluation.variant_metrics import variant_metrics
from harness.evaluation.variant_runs import DIGEST_TAG, TABLE, log_variants, score_variants, variants_digest
from harness.tracking import store

N_BOOT = 1000
BOARD = ("variant_set", "rank", "task", "split_protocol", "model", "metric", "value", "ci_low", "ci_high",
         "n_variants", "n_seeds")  # fmt: skip
TESTS = ("variant_set", "model_a", "model_b", "metric", "delta", "ci_low", "ci_high", "p_value", "p_adjusted", "test",
         "note")  # fmt: skip
NOTE = ("Per variant set, the models ranked by AUROC of |Δ| (a set with labels: causal vs control; DeLong's test "
        "between models) or by Spearman ρ of Δ against the measured effects (an effect-only set; paired bootstrap "
        "of Δρ), Holm-adjusted within the set; `r=`: the test cannot tell the model from the group's leader. Δ = "
        "output(alt) − output(ref), averaged over both strands and over the model's seeds.")  # fmt: skip


def _refits(board: pd.DataFrame) -> list[tuple[pd.Series, list[str]]]:
    ok = board[board["status"] == "ok"]
    return [(row, [r for r in str(row["run_ids"]).split(",") if r]) for _, row in ok.iterrows()]


def _variant_runs(experiment: str) -> pd.DataFrame:
    """The FINISHED variants runs of `experiment` that name their set and digest (columns `run_id`, `start_time`,
    `parent`, `set`, `digest`)."""
    columns = {"tags.mlflow.parentRunId": "parent", "tags.variants_set": "set", f"tags.{DIGEST_TAG}": "digest"}
    runs = store.search_runs(experiment, "tags.`regbench.kind` = 'variants' AND attributes.status = 'FINISHED'")
    if runs.empty or not set(columns) <= set(runs.columns):
        return pd.DataFrame(columns=["run_id", "start_time", *columns.values()])
    return runs.rename(columns=columns)[["run_id", "start_time", *columns.values()]].dropna()


def score_refits(study: StudyFile, board: pd.DataFrame) -> list[str]:
    """Score every refit of `board` on each of the study's variant sets not yet scored; returns a note per refit
    that could not be scored (its model cannot read the set, e.g. another input length)."""
    done = _variant_runs(study.name)
    scored = set(zip(done["parent"], done["digest"], strict=True))
    notes: list[str] = []
    for vs in study.variants:
        digest = variants_digest(vs.path, vs.genome or None)
        for row, run_ids in _refits(board):
            for run_id in run_ids:
                if (run_id, digest) in scored:
                    continue
                with tempfile.TemporaryDirectory() as tmp:
                    try:
                        result = score_variants(run_id, vs.path, vs.genome or None, Path(tmp))
                        log_variants(run_id, result, vs.path, vs.genome or None, Path(tmp), vs.name)
                    except (ValueError, LookupError) as err:
                        notes.append(f"{vs.name}: {row['model']} ({row['task']}, run {run_id}) not scored: {err}")
    return notes


def boards(experiment: str, board: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`(rows with the BOARD columns, paired tests with the TESTS columns)` of every variant set scored by the
    refits of `board` (see the module docstring); both empty without variants runs."""
    runs = _variant_runs(experiment)
    rows: list[dict] = []
    tests: list[dict] = []
    if runs.empty:
        return pd.DataFrame(columns=list(BOARD)), pd.DataFrame(columns=list(TESTS))
    runs = runs.sort_values("start_time", ascending=False)
    with tempfile.TemporaryDirectory() as tmp:
        for name, of_set in runs.groupby("set", sort=True):
            newest = of_set[of_set["digest"] == of_set["digest"].iloc[0]]
            by_parent = newest.drop_duplicates("parent").set_index("parent")
            models = {}
            for row, run_ids in _refits(board):
                tables = [_table(by_parent.loc[r, "run_id"], Path(tmp)) for r in run_ids if r in by_parent.index]
                if tables:
                    models[f"{row['model']} · {row['task']}"] = (row, _mean_over_seeds(tables))
            set_rows, set_tests = _one_set(str(name), models)
            rows += set_rows
            tests += set_tests
    return pd.DataFrame(rows, columns=list(BOARD)), pd.DataFrame(tests, columns=list(TESTS))


def _table(run_id: str, tmp: Path) -> pd.DataFrame:
    local = store.download_artifact(run_id, TABLE, tmp / run_id)
    if local is None:
        raise LookupError(f"variants run {run_id} has no {TABLE}")
    return pd.read_csv(local, sep="\t", dtype={"id": str})


def _mean_over_seeds(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """One table: `delta` and `abs_delta` averaged over the seeds' tables (same variants, same order), or the
    first table's variants only where the seeds differ (they cannot: a model reads the same windows)."""
    out = tables[0].copy()
    same = [t for t in tables if t["id"].equals(out["id"])]
    for column in ("delta", "abs_delta"):
        out[column] = np.mean([t[column].to_numpy() for t in same], axis=0)
    out.attrs["n_seeds"] = len(same)
    return out


def _one_set(name: str, models: dict[str, tuple[pd.Series, pd.DataFrame]]) -> tuple[list[dict], list[dict]]:
    first = next(iter(models.values()))[1] if models else pd.DataFrame()
    metric = "auroc" if "label" in first else "spearman"
    scored: dict[str, tuple[float, float, float]] = {}
    rows = []
    for key, (row, table) in models.items():
        labels = table["label"].to_numpy() if "label" in table else None
        effects = table["effect"].to_numpy() if "effect" in table else None
        value = variant_metrics(table["abs_delta"].to_numpy(), table["delta"].to_numpy(), labels, effects,
                                n_boot=N_BOOT)[f"variants_{metric}"]  # fmt: skip
        scored[key] = value
        rows.append({"variant_set": name, "task": row["task"], "split_protocol": row["split_protocol"],
                     "model": row["model"], "metric": f"{metric} of {'|Δ|' if metric == 'auroc' else 'Δ'}",
                     "value": value[0], "ci_low": value[1], "ci_high": value[2], "n_variants": len(table),
                     "n_seeds": table.attrs["n_seeds"], "key": key})  # fmt: skip
    rows.sort(key=lambda r: -r["value"] if np.isfinite(r["value"]) else np.inf)
    tests = [_pair(name, metric, a, b, models[a][1], models[b][1]) for a, b in combinations(
        [r["key"] for r in rows], 2)]  # fmt: skip
    p = holm(np.array([t["p_value"] for t in tests], dtype=float))
    for test, adjusted in zip(tests, p, strict=True):
        test["p_adjusted"] = adjusted
    tied = {frozenset((t["model_a"], t["model_b"])): t["p_adjusted"] >= ALPHA for t in tests if np.isfinite(
        t["p_adjusted"])}  # fmt: skip
    labels = group_labels([r["key"] for r in rows], [bool(np.isfinite(r["value"])) for r in rows],
                          lambda x, y: tied.get(frozenset((x, y)), False))  # fmt: skip
    for row, label in zip(rows, labels, strict=True):
        row["rank"] = label
        del row["key"]
    return rows, tests


def _pair(name: str, metric: str, a: str, b: str, table_a: pd.DataFrame, table_b: pd.DataFrame) -> dict:
    """One paired test of models `a` (better) and `b` on the same variants; a `refused` row where they differ."""
    out = {"variant_set": name, "model_a": a, "model_b": b, "note": ""}
    if not table_a["id"].equals(table_b["id"]):
        return out | {"metric": metric, "p_value": np.nan, "test": "refused",
                      "note": "scored on different variants (ref mismatches or windows differ)"}  # fmt: skip
    if metric == "auroc":
        result = delong(table_a["label"].to_numpy(), table_a["abs_delta"].to_numpy(), table_b["abs_delta"].to_numpy())
    else:
        effects = table_a["effect"].to_numpy()
        boot = [regression_resampled(effects, t["delta"].to_numpy(), N_BOOT, 0) for t in (table_a, table_b)]
        result = paired_from_resamples("spearman", *boot)
    return out | {k: getattr(result, k) for k in ("metric", "delta", "ci_low", "ci_high", "p_value", "test")}


def display(board: pd.DataFrame) -> pd.DataFrame:
    """The board for people: set, rank, task, model, metric, `value [low, high]`, variants and seeds."""
    score = [f"{v:.3f} [{lo:.3f}, {hi:.3f}]" for v, lo, hi in zip(board["value"], board["ci_low"], board["ci_high"],
                                                                  strict=True)]  # fmt: skip
    shown = board.assign(score=score)
    return shown[["variant_set", "rank", "task", "model", "metric", "score", "n_variants", "n_seeds"]]


def display_tests(tests: pd.DataFrame) -> pd.DataFrame:
    """The paired tests for people: `A − B [95% CI]`, p and Holm-adjusted p to 2 significant digits."""
    delta = [f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]" for d, lo, hi in zip(tests["delta"], tests["ci_low"],
                                                                      tests["ci_high"], strict=True)]  # fmt: skip
    p = {name: [f"{v:.2g}" if np.isfinite(v) else "" for v in tests[name]] for name in ("p_value", "p_adjusted")}
    shown = tests.assign(**{"A − B [95% CI]": delta}, **p)
    return shown[["variant_set", "model_a", "model_b", "metric", "A − B [95% CI]", "p_value", "p_adjusted", "test",
                  "note"]]  # fmt: skip


def markdown(board: pd.DataFrame, tests: pd.DataFrame, notes: list[str] | None = None) -> str:
    """The variant-effect boards as Markdown (one table per set, then its paired tests); "" without any."""
    if board.empty and not notes:
        return ""
    parts = ["", "## Variant effects", "", NOTE, ""]
    for name, rows in display(board).groupby("variant_set", sort=True):
        parts += [f"### {name}", "", to_markdown(rows.drop(columns="variant_set")), ""]
        pairs = tests[tests["variant_set"] == name]
        if len(pairs):
            parts += [to_markdown(display_tests(pairs).drop(columns="variant_set")), ""]
    parts += [f"- {note}" for note in notes or []]
    return "\n".join(parts) + "\n"


def log_boards(bench: store.ClientRun, study: StudyFile, board: pd.DataFrame) -> str:
    """Score the refits (`score_refits`), log `variant_board.csv` and `variant_tests.csv` on the benchmark run and
    return the Markdown for `leaderboard.md`; "" for a study without `variants`."""
    if not study.variants:
        return ""
    notes = score_refits(study, board)
    rows, tests = boards(study.name, board)
    bench.table(rows, "variant_board.csv")
    bench.table(tests, "variant_tests.csv")
    return markdown(rows, tests, notes)
