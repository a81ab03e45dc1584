"""Paired comparisons of the models of an experiment, per task × split protocol, from their logged predictions.

Every scored run logs `predictions/{val,test}.tsv` (columns id, label, score; multi-label tasks: id, label_0..,
score_0..). A model's runs (its seeds, as chosen by `harness.benchmark.leaderboard.leaderboard`) are combined into
one `ModelScores`: per-example test scores averaged over seeds, and the decision threshold chosen on validation
(F1-optimal on the seed-averaged validation scores; for one seed that is the run's own `val_f1_threshold`). Two
models are compared only when they were scored on the same test examples (same ids and labels); otherwise the pair
is refused.

Per pair, `comparisons.csv` holds one row per (metric, test): AUROC by DeLong's test and by the paired bootstrap,
AUPRC by the paired bootstrap, accuracy at the validation-chosen thresholds by McNemar's test
(`harness.evaluation.paired`). Multi-label pairs: the median per-label AUROC and AUPRC by the paired bootstrap over
sequences (`paired.multilabel_resampled`; `MULTILABEL_N_BOOT` resamples at most, shared by every model).
Regression pairs (primary metric `spearman`): Spearman ρ, Pearson r, R² and MSE by the paired bootstrap over
sequences (`paired.regression_resampled`), so the ranking test is the paired bootstrap of Δρ.
`seed_sd_a`/`seed_sd_b` are the sample sd over seeds of each model's metric (NaN for one seed). p-values are
Holm-adjusted within each task × split protocol, one family per (metric, test): e.g. the DeLong tests of all
pairs of a task × split protocol (`p_adjusted`).

Groups (`ranking_groups`): models sorted by the primary test metric; the first leads a group, each following model
that the adjusted paired test of the primary metric (`RANKING_TEST`) does not distinguish from the group's leader
(p_adjusted ≥ `ALPHA`) joins that group and shares the leader's rank, written "r=" ("1=": indistinguishable from the
best); a model that is distinguished, or has no paired test with the leader, starts a new group at its position:
`=` comes only from a test that ran. A task × split protocol with several scored models none of whose ranking tests
could run is not ranked: every label is `UNTESTED` and `untested_boards` says why.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from harness.evaluation.metrics import binary_metrics, f1_optimal_threshold, multilabel_metrics
from harness.evaluation.paired import (
    Resampled,
    delong,
    holm,
    mcnemar,
    multilabel_resampled,
    paired_from_resamples,
    regression_resampled,
    resampled,
)
from harness.evaluation.regression import PRIMARY as REGRESSION_PRIMARY
from harness.evaluation.regression import REGRESSION_METRICS, regression_metrics
from harness.plugins import shortcut_models
from harness.tracking import store

ALPHA = 0.05
N_BOOT = 10_000  # paired-bootstrap resamples: the smallest p is 1/10001, so Holm over 21 pairs can still reach 0.002
MULTILABEL_N_BOOT = 1000  # per-label AUROC/AP of every label per resample: smallest p 1/1001, Holm over 45 pairs 0.045
UNTESTED = "untested"  # the rank label of every model of a board whose ranking tests could not run
COLUMNS = (
    "task", "split_protocol", "model_a", "model_b", "metric", "delta", "ci_low", "ci_high", "p_value", "p_adjusted",
    "test", "n_examples", "n_seeds_a", "n_seeds_b", "seed_sd_a", "seed_sd_b", "note",
)  # fmt: skip
RANKING_TEST = {"auroc": "delong", "auprc": "paired_bootstrap"}  # primary metric → the test that groups models;
# any other primary metric (e.g. multi-label `auroc_median`) groups by the paired bootstrap
PREDICTIONS = ("predictions/test.tsv", "predictions/val.tsv")
GROUP_NOTE = (
    "Rank: models sorted by the test metric; a model that the Holm-adjusted paired test of the primary metric "
    f"(AUROC: DeLong; AUPRC and multi-label medians: paired bootstrap over sequences; p ≥ {ALPHA}) does not "
    "distinguish from its group's leader shares the leader's rank, marked `=` (`1=`: indistinguishable from the best); "
    f"`=` comes only from a test that ran, and a task whose tests could not run is marked `{UNTESTED}` instead of "
    "ranked. Over seeds, the tests use per-example scores averaged over seeds; all tests of every pair are in "
    "comparisons.csv."
)


class NotComparableError(ValueError):
    """Two sets of scores are not on the same test examples (or not binary); the message says why."""


@dataclass(frozen=True)
class ModelScores:
    """One model's test scores on one task: `labels (N,)`, `score (N,)` (mean over seeds), per seed `(S, N)`,
    aligned on `ids (N,)` (sorted); `threshold` chosen on validation, `seed_thresholds (S,)` per seed. Multi-label:
    `labels`/`score` `(N, C)`, per seed `(S, N, C)`, thresholds NaN (no thresholded metric is compared).
    `regression`: the labels are measured values (a regression task), thresholds NaN."""

    model: str
    run_ids: tuple[str, ...]
    ids: np.ndarray
    labels: np.ndarray
    score: np.ndarray
    per_seed: np.ndarray
    threshold: float
    seed_thresholds: np.ndarray
    regression: bool = False


def read_predictions(path: Path, where: str) -> pd.DataFrame:
    """A predictions TSV sorted by id: binary (id, label, score) or multi-label (id, label_0.., score_0.., as many
    of each); NotComparableError for anything else."""
    frame = pd.read_csv(path, sep="\t", dtype={"id": str})
    labels, scores = label_columns(frame), [c for c in frame.columns if c.startswith("score_")]
    binary = {"id", "label", "score"} <= set(frame.columns)
    multilabel = "id" in frame.columns and labels and len(labels) == len(scores)
    if not (binary or multilabel):
        raise NotComparableError(f"{where}: not a predictions table (columns {list(frame.columns)[:5]})")
    duplicated = frame["id"][frame["id"].duplicated()]
    if len(duplicated):
        raise NotComparableError(f"{where}: duplicate example ids, e.g. {duplicated.iloc[0]}")
    return frame.sort_values("id", kind="stable").reset_index(drop=True)


def label_columns(frame: pd.DataFrame) -> list[str]:
    """`["label"]` of a binary predictions table, `["label_0", ...]` of a multi-label one."""
    return ["label"] if "label" in frame.columns else [c for c in frame.columns if c.startswith("label_")]


def _values(frame: pd.DataFrame, prefix: str) -> np.ndarray:
    """`(N,)` column `prefix` of a binary table, `(N, C)` columns `prefix_j` of a multi-label one."""
    if prefix in frame.columns:
        return frame[prefix].to_numpy(dtype=np.float64)
    return frame[[c for c in frame.columns if c.startswith(f"{prefix}_")]].to_numpy(dtype=np.float64)


def load_model_scores(model: str, run_ids: list[str], tmp: Path, regression: bool = False) -> ModelScores:
    """Download and combine the predictions of `run_ids` (the seeds of `model`); refuses seeds on different data.
    `regression`: the task's target is quantitative (labels are measured values)."""
    tests, vals = [], []
    for run_id in run_ids:
        frames = []
        for name in PREDICTIONS:
            local = store.download_artifact(run_id, name, tmp / run_id)
            if local is None:
                raise NotComparableError(f"run {run_id} ({model}) has no {name}")
            frames.append(read_predictions(local, f"run {run_id} {name}"))
        tests.append(frames[0])
        vals.append(frames[1])
    for frames, split in ((tests, "test"), (vals, "val")):
        for run_id, frame in zip(run_ids[1:], frames[1:], strict=True):
            same_labels = frame[label_columns(frame)].equals(frames[0][label_columns(frames[0])])
            if not (frame["id"].equals(frames[0]["id"]) and same_labels):
                raise NotComparableError(f"{model}: runs {run_ids[0]} and {run_id} were scored on different {split} "
                                         "examples; their seeds cannot be averaged")  # fmt: skip
    per_seed = np.stack([_values(t, "score") for t in tests])
    labels = _values(tests[0], "label")
    if regression:
        return ModelScores(model, tuple(run_ids), tests[0]["id"].to_numpy(), labels, per_seed.mean(axis=0),
                           per_seed, float("nan"), np.full(len(vals), np.nan), regression=True)  # fmt: skip
    labels = labels.astype(np.int64)
    if labels.ndim == 2:
        thresholds = np.full(len(vals), np.nan)
        return ModelScores(model, tuple(run_ids), tests[0]["id"].to_numpy(), labels, per_seed.mean(axis=0),
                           per_seed, float("nan"), thresholds)  # fmt: skip
    y_val = vals[0]["label"].to_numpy()
    seed_thresholds = np.array([f1_optimal_threshold(y_val, v["score"].to_numpy()) for v in vals])
    threshold = f1_optimal_threshold(y_val, np.mean([v["score"].to_numpy() for v in vals], axis=0))
    return ModelScores(model, tuple(run_ids), tests[0]["id"].to_numpy(), labels, per_seed.mean(axis=0), per_seed,
                       threshold, seed_thresholds)  # fmt: skip


def check_same_examples(a: ModelScores, b: ModelScores) -> None:
    """NotComparableError unless `a` and `b` hold the same test example ids with the same labels."""
    if len(a.ids) != len(b.ids) or not (a.ids == b.ids).all():
        only = sorted(set(a.ids) ^ set(b.ids))[:1]
        example = only[0] if only else "a different order"
        raise NotComparableError(f"{a.model} ({len(a.ids)} test examples) and {b.model} ({len(b.ids)}) were not "
                                 f"scored on the same test ids (e.g. {example})")  # fmt: skip
    if a.labels.shape != b.labels.shape or not (a.labels == b.labels).all():
        raise NotComparableError(f"{a.model} and {b.model}: the same test ids carry different labels")


def _seed_sd(scores: ModelScores, metric: str) -> float:
    if len(scores.per_seed) < 2:
        return float("nan")
    if scores.regression:
        return float(np.std([regression_metrics(scores.labels, s)[metric] for s in scores.per_seed], ddof=1))
    if scores.labels.ndim == 2:
        return float(np.std([multilabel_metrics(scores.labels, s)[0][metric] for s in scores.per_seed], ddof=1))
    values = [binary_metrics(scores.labels, s, t)[metric] for s, t in zip(scores.per_seed, scores.seed_thresholds,
                                                                          strict=True)]  # fmt: skip
    return float(np.std(values, ddof=1))


def resample(scores: ModelScores, n_boot: int = N_BOOT, seed: int = 0) -> Resampled:
    """The model's seeded bootstrap metrics (at its validation-chosen threshold), shared by all its pairs;
    multi-label: the median per-label AUROC/AUPRC over at most `MULTILABEL_N_BOOT` resamples of sequences."""
    if scores.regression:
        return regression_resampled(scores.labels, scores.score, n_boot, seed)
    if scores.labels.ndim == 2:
        return multilabel_resampled(scores.labels, scores.score, min(n_boot, MULTILABEL_N_BOOT), seed)
    return resampled(scores.labels, scores.score, scores.threshold, n_boot, seed)


def compare_pair(a: ModelScores, b: ModelScores, boot_a: Resampled, boot_b: Resampled) -> list[dict]:
    """The paired tests of `a` against `b` given their `resample`s (rows with the `COLUMNS` of one pair,
    `p_adjusted` not yet set)."""
    check_same_examples(a, b)
    y = a.labels
    if a.regression:
        results = [paired_from_resamples(name, boot_a, boot_b) for name in REGRESSION_METRICS]
    elif y.ndim == 2:
        results = [paired_from_resamples(name, boot_a, boot_b) for name in ("auroc_median", "auprc_median")]
    else:
        acc = mcnemar(y, a.score >= a.threshold, b.score >= b.threshold)
        boots = [paired_from_resamples(name, boot_a, boot_b) for name in ("auroc", "auprc")]
        results = [delong(y, a.score, b.score), *boots, acc]
    rows = []
    for result in results:
        rows.append({
            "model_a": a.model, "model_b": b.model, **{k: getattr(result, k) for k in ("metric", "delta", "ci_low",
            "ci_high", "p_value", "test")}, "n_examples": len(y), "n_seeds_a": len(a.run_ids),
            "n_seeds_b": len(b.run_ids), "seed_sd_a": _seed_sd(a, result.metric),
            "seed_sd_b": _seed_sd(b, result.metric), "note": "",
        })  # fmt: skip
    return rows


def comparisons(board: pd.DataFrame, n_boot: int = N_BOOT, seed: int = 0) -> pd.DataFrame:
    """Paired comparisons (columns `COLUMNS`) of every pair of scored models of each task × split protocol of a
    leaderboard (`harness.benchmark.leaderboard.leaderboard`); model_a is the better-ranked one. A pair that cannot
    be compared gets one row with the reason in `note`; a model without usable predictions is left out with it."""
    rows: list[dict] = []
    ok = board[board["status"] == "ok"].sort_values("test_primary", ascending=False, kind="stable")
    with tempfile.TemporaryDirectory() as tmp:
        for (task, split), group in ok.groupby(["task", "split_protocol"], sort=False):
            part = _group_rows(group, Path(tmp), n_boot, seed)
            for row in part:
                row.update(task=task, split_protocol=split)
            rows += part
    return adjust(pd.DataFrame(rows, columns=list(COLUMNS)))


def adjust(table: pd.DataFrame) -> pd.DataFrame:
    """`p_adjusted`: Holm within each family, task × split protocol × (metric, test)."""
    table = table.copy()
    table["p_adjusted"] = np.nan
    for _, family in table.groupby(["task", "split_protocol", "metric", "test"], sort=False, dropna=False):
        table.loc[family.index, "p_adjusted"] = holm(family["p_value"].to_numpy(dtype=float))
    return table


def _group_rows(group: pd.DataFrame, tmp: Path, n_boot: int, seed: int) -> list[dict]:
    scores: dict[str, tuple[ModelScores, Resampled] | str] = {}
    for _, row in group.iterrows():
        try:
            regression = row["primary_metric"] == REGRESSION_PRIMARY
            loaded = load_model_scores(row["model"], row["run_ids"].split(","), tmp, regression)
            scores[row["model"]] = (loaded, resample(loaded, n_boot, seed))
        except ValueError as err:  # NotComparableError, or predictions the metrics refuse (e.g. one class only)
            scores[row["model"]] = str(err)
    rows: list[dict] = []
    for name_a, name_b in combinations(scores, 2):
        a, b = scores[name_a], scores[name_b]
        try:
            if isinstance(a, str) or isinstance(b, str):
                raise NotComparableError(a if isinstance(a, str) else b)
            rows += compare_pair(a[0], b[0], a[1], b[1])
        except NotComparableError as err:
            rows.append({"model_a": name_a, "model_b": name_b, "test": "refused", "note": str(err)})
    return rows


def compare_runs(run_a: str, run_b: str, n_boot: int = N_BOOT, seed: int = 0) -> pd.DataFrame:
    """The paired tests (columns `COLUMNS`) of two runs on the same test data; each test is its own family, so
    `p_adjusted` equals `p_value`. NotComparableError when their dataset digests or test examples differ."""
    found = {}
    for run_id in (run_a, run_b):
        try:
            found[run_id] = store.client().get_run(run_id).data.tags
        except Exception as err:  # MlflowException: no such run
            raise LookupError(f"no run {run_id!r} in {store.tracking_uri()} ({type(err).__name__})") from None
    tags_a, tags_b = found[run_a], found[run_b]
    digest_a, digest_b = tags_a.get("dataset_digest"), tags_b.get("dataset_digest")
    if digest_a != digest_b:
        raise NotComparableError(f"runs {run_a} and {run_b} were scored on different data (dataset digest "
                                 f"{digest_a} vs {digest_b}); paired tests need the same test examples")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        regression = tags_a.get("primary_metric") == REGRESSION_PRIMARY
        a, b = (load_model_scores(f"{t.get('model', '?')}/s{t.get('seed', '?')} ({r[:8]})", [r], Path(tmp), regression)
                for r, t in ((run_a, tags_a), (run_b, tags_b)))  # fmt: skip
    rows = compare_pair(a, b, resample(a, n_boot, seed), resample(b, n_boot, seed))
    for row in rows:
        row.update(task=tags_a.get("task", ""), split_protocol=tags_a.get("split_protocol", ""))
    return adjust(pd.DataFrame(rows, columns=list(COLUMNS)))


def ranking_rows(board: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """The rows of `table` that rank: per task × split protocol, the `RANKING_TEST` of its primary metric, plus
    refused pairs."""
    metric = board.drop_duplicates(["task", "split_protocol"]).set_index(["task", "split_protocol"])["primary_metric"]
    keys = list(zip(table["task"], table["split_protocol"], strict=True))
    primary = np.array([metric.get(k, "") for k in keys], dtype=object)
    wanted = np.array([RANKING_TEST.get(m, "paired_bootstrap") for m in primary], dtype=object)
    ranks = (table["metric"].to_numpy() == primary) & (table["test"].to_numpy() == wanted)
    return table[ranks | (table["test"] == "refused").to_numpy()]


def display(board: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """The ranking rows for people: `A − B` of the primary metric as `0.120 [0.080, 0.160]`, p and adjusted p."""
    rows = ranking_rows(board, table)
    return pd.DataFrame({
        "task": rows["task"], "split": rows["split_protocol"], "model A": rows["model_a"], "model B": rows["model_b"],
        "metric": rows["metric"].astype(object).fillna(""), "A − B [95% CI]": [_delta(r) for _, r in rows.iterrows()],
        "p": rows["p_value"].map(_p), "p (Holm)": rows["p_adjusted"].map(_p), "test": rows["test"],
        "seed sd A / B": [_sds(r) for _, r in rows.iterrows()], "note": rows["note"].fillna(""),
    })  # fmt: skip


def shortcut_gaps(board: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """Per task × split protocol with a scored shortcut baseline (`harness.plugins.shortcut_models`): how far each
    other model is above the best shortcut on the primary metric, with the ranking test's adjusted p-value."""
    rows = ranking_rows(board, table)
    out = []
    ok = board[(board["status"] == "ok") & board["test_primary"].notna()]
    names = shortcut_models()
    for (task, split), group in ok.groupby(["task", "split_protocol"], sort=False):
        is_shortcut = group["model"].isin(names)
        shortcuts = group[is_shortcut]
        if shortcuts.empty:
            continue
        best = shortcuts.sort_values("test_primary", ascending=False).iloc[0]
        here = rows[(rows["task"] == task) & (rows["split_protocol"] == split)]
        for _, model in group[~is_shortcut].iterrows():
            pair = here[here["model_a"].isin([model["model"], best["model"]])
                        & here["model_b"].isin([model["model"], best["model"]])]  # fmt: skip
            test = pair.iloc[0] if len(pair) else None
            sign = 1.0 if test is None or test["model_a"] == model["model"] else -1.0
            delta = test if test is None else {k: sign * test[k] for k in ("delta", "ci_low", "ci_high")}
            if delta is not None and sign < 0:
                delta["ci_low"], delta["ci_high"] = delta["ci_high"], delta["ci_low"]
            out.append({
                "task": task, "split": split, "model": model["model"], "best shortcut": best["model"],
                f"{model['primary_metric']} above shortcut [95% CI]": "" if delta is None else _delta(delta),
                "p (Holm)": "" if test is None else _p(test["p_adjusted"]),
                "test": "" if test is None else test["test"],
            })  # fmt: skip
    return pd.DataFrame(out)


def untested_boards(board: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """Per task × split protocol left `UNTESTED` by `ranking_groups`: why (the first refusal, else that no test
    ran); columns task, split, reason."""
    groups = ranking_groups(board, table)
    out = []
    boards = board.loc[groups == UNTESTED, ["task", "split_protocol"]].drop_duplicates()
    for task, split in boards.itertuples(index=False, name=None):
        here = table[(table["task"] == task) & (table["split_protocol"] == split) & (table["test"] == "refused")]
        reason = f"paired tests refused: {here['note'].iloc[0]}" if len(here) else "no paired test was run"
        out.append({"task": task, "split": split, "reason": reason})
    return pd.DataFrame(out, columns=["task", "split", "reason"])


def markdown(board: pd.DataFrame, table: pd.DataFrame) -> str:
    """Markdown sections of the ranking tests and of the gaps to the best shortcut ("" when there are none)."""
    from harness.benchmark.leaderboard import to_markdown

    text = ""
    untested = untested_boards(board, table)
    if len(untested):
        text += f"\n## Not ranked: paired tests could not run\n\n{to_markdown(untested)}"
    if len(table):
        text += f"\n## Paired tests of the primary metric\n\n{GROUP_NOTE}\n\n{to_markdown(display(board, table))}"
    gaps = shortcut_gaps(board, table)
    if len(gaps):
        text += f"\n## Above the best shortcut baseline\n\n{to_markdown(gaps)}"
    return text


def _delta(row: pd.Series | dict) -> str:
    if pd.isna(row["delta"]):
        return ""
    return f"{row['delta']:+.3f} [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]"


def _p(value: float) -> str:
    return "" if pd.isna(value) else f"{value:.2g}"


def _sds(row: pd.Series) -> str:
    if pd.isna(row["seed_sd_a"]) and pd.isna(row["seed_sd_b"]):
        return ""
    return " / ".join("" if pd.isna(v) else f"{v:.3f}" for v in (row["seed_sd_a"], row["seed_sd_b"]))


def ranking_groups(board: pd.DataFrame, table: pd.DataFrame, alpha: float = ALPHA) -> pd.Series:
    """Rank labels ("1=", "1=", "3", ...; "" without a score) of the leaderboard's rows (same index), grouped per
    task × split protocol by the adjusted paired test of the primary metric (see the module docstring)."""
    labels = pd.Series("", index=board.index, dtype=object)
    for (task, split), group in board.groupby(["task", "split_protocol"], sort=False):
        group = group.sort_values("test_primary", ascending=False, na_position="last", kind="stable")
        here = table[(table["task"] == task) & (table["split_protocol"] == split)]
        metric = group["primary_metric"].iloc[0]
        tests = here[(here["metric"] == metric) & (here["test"] == RANKING_TEST.get(metric, "paired_bootstrap"))]
        p = {frozenset((r.model_a, r.model_b)): r.p_adjusted for r in tests.itertuples()}
        models, scored = group["model"].tolist(), group["test_primary"].notna().tolist()
        if sum(scored) > 1 and tests.empty:  # no ranking test ran: say so rather than rank by score alone
            labels[group.index] = [UNTESTED if s else "" for s in scored]
            continue
        labels[group.index] = group_labels(models, scored, lambda x, y, p=p: p.get(frozenset((x, y)), 0.0) >= alpha)
    return labels


def group_labels(models: list[str], scored: list[bool], tied: Callable[[str, str], bool]) -> list[str]:
    """Labels of `models` sorted best first: a model joins the current leader's group when `tied(leader, model)`."""
    leaders: list[int] = []
    leader = -1
    for i, model in enumerate(models):
        if not scored[i]:
            leaders.append(-1)
            continue
        if leader < 0 or not tied(models[leader], model):
            leader = i
        leaders.append(leader)
    sizes = Counter(g for g in leaders if g >= 0)
    return ["" if g < 0 else f"{g + 1}{'=' if sizes[g] > 1 else ''}" for g in leaders]
