"""Who won each task of a benchmark, in one line per task: for the terminal summary, the benchmark run's
description and the MLflow UI's saved views.

`winners(board)` reads a ranked leaderboard (`harness.benchmark.leaderboard.ranked`): per task × split protocol its
first scored row (rank 1, the best mean primary score), the models the paired tests cannot tell from it (`1=`), and
how many cells failed. `mark_board` writes the board onto the cell runs as display values (rounded, so the UI
never shows raw floats): tags `regbench.rank` and `regbench.score` (`auroc 0.846 [0.813, 0.874]`, as the summary
line reads) on every cell of the latest board, `regbench.winner` on each task's winner with `regbench.tied_with`,
and `regbench.board_order` (task, then position) that the saved views sort by; the tags are removed from every
other cell run of the experiment, so the views show each cell once, the latest
(`harness.tracking.store.leaderboard_view`).
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from harness.benchmark.leaderboard import score_text
from harness.tracking import store
from harness.tracking.store import ORDER_TAG, RANK_TAG, SCORE_TAG, TIED_TAG, WINNER_TAG

BOARD_TAGS = (RANK_TAG, SCORE_TAG, WINNER_TAG, TIED_TAG, ORDER_TAG)
WINNER_COLUMNS = ("task", "split_protocol", "model", "metric", "score", "tied", "n_models", "n_failed", "run_ids")


def task_labels(table: pd.DataFrame) -> list[str]:
    """Per row of `table` (columns `task`, `split_protocol`): `task`, or `task [split]` when the task ran under
    several split protocols."""
    several = table.groupby("task")["split_protocol"].transform("nunique") > 1
    return [f"{t} [{s}]" if m else t for t, s, m in zip(table["task"], table["split_protocol"], several, strict=True)]


def winners(board: pd.DataFrame) -> pd.DataFrame:
    """One row per task × split protocol (`WINNER_COLUMNS`): its best scored model (`model` "" when none scored),
    the primary metric, the score as `score_text` writes it, the other models in the winner's `1=` group
    (`tied`, a list), how many models the board has and how many of them failed."""
    rows = []
    for (task, split), group in board.groupby(["task", "split_protocol"], sort=True):
        ok = group[group["status"] == "ok"].sort_values("test_primary", ascending=False, kind="stable")
        failed = int((group["status"] == "failed").sum())
        base = {"task": task, "split_protocol": split, "n_models": len(group), "n_failed": failed}
        if ok.empty:
            rows.append({**base, "model": "", "metric": "", "score": "", "tied": [], "run_ids": ""})
            continue
        best = ok.iloc[0]
        rest = ok.iloc[1:]
        tied = [m for m, g in zip(rest["model"], rest["group"], strict=True) if g == best["group"]]
        score = score_text(best["test_primary"], best["test_primary_ci_low"], best["test_primary_ci_high"],
                           best["test_primary_sd"], int(best["n_seeds"]))  # fmt: skip
        rows.append({**base, "model": best["model"], "metric": best["primary_metric"], "score": score, "tied": tied,
                     "run_ids": best["run_ids"]})  # fmt: skip
    return pd.DataFrame(rows, columns=list(WINNER_COLUMNS))


def summary_lines(board: pd.DataFrame) -> list[str]:
    """One line per task: `task: winner metric score [CI] (tied with N: a, b) · F failed`."""
    table = winners(board)
    labels = task_labels(table)
    width = max(map(len, labels), default=0)
    lines = []
    for row, label in zip(table.itertuples(), labels, strict=True):
        label = label.ljust(width)
        if not row.model:
            text = "no model scored"
        else:
            text = f"{row.model}  {row.metric} {row.score}"
            if row.tied:
                names = ", ".join(row.tied[:4]) + (", …" if len(row.tied) > 4 else "")
                text += f"  (tied with {len(row.tied)}: {names})"
        failures = f" · {row.n_failed} of {row.n_models} failed" if row.n_failed else ""
        lines.append(f"  {label}  {text}{failures}")
    return lines


def description_lines(board: pd.DataFrame) -> list[str]:
    """The winners as a Markdown table, for the top of the benchmark run's description."""
    table = winners(board)
    out = ["| task | winner | test score | tied with (1=) |", "|---|---|---|---|"]
    for row, label in zip(table.itertuples(), task_labels(table), strict=True):
        score = f"{row.metric} {row.score}" if row.model else "no model scored"
        out.append(f"| {label} | **{row.model or '—'}** | {score} | {', '.join(row.tied) or '—'} |")
    return out


def _cell_run(run_ids: str, parents: dict[str, str], cells: set[str]) -> str | None:
    """The cell run behind a board row: the parent of its first refit, or the row's own run (failed, unable)."""
    first = run_ids.split(",")[0] if run_ids else ""
    parent = parents.get(first, "")
    return parent if parent in cells else first if first in cells else None


def mark_board(experiment: str, board: pd.DataFrame, runs: pd.DataFrame, cells: Iterable[str]) -> None:
    """Tag the cell runs `cells` of the latest board (`runs`: its `cell_runs` rows, for refit → cell) with their
    rank and score, each task's winner with `WINNER_TAG`, and clear those tags from every other cell run of
    `experiment`."""
    cells = set(cells)
    parents = dict(zip(runs["run_id"], runs["parent_run_id"], strict=True))
    best = {(r.task, r.split_protocol): r for r in winners(board).itertuples()}
    marked: set[str] = set()
    for position, (row, label) in enumerate(zip(board.itertuples(), task_labels(board), strict=True)):
        run_id = _cell_run(str(row.run_ids), parents, cells)
        if run_id is None:
            continue
        ok = row.status == "ok"
        score = score_text(row.test_primary, row.test_primary_ci_low, row.test_primary_ci_high, row.test_primary_sd,
                           int(row.n_seeds))  # fmt: skip
        score = f"{row.primary_metric} {score}" if ok else row.status
        tags = {RANK_TAG: row.group if ok else row.status, SCORE_TAG: score,
                ORDER_TAG: f"{label} {position:03d}"}  # fmt: skip
        winner = best.get((row.task, row.split_protocol))
        if winner is not None and winner.model == row.model and ok:
            tags |= {WINNER_TAG: "yes", TIED_TAG: ", ".join(winner.tied) or "—"}
        else:
            _delete_tags(run_id, (WINNER_TAG, TIED_TAG))
        store.set_tags(run_id, tags)
        marked.add(run_id)
    stale = store.search_runs(experiment, f"tags.`regbench.kind` = 'cell' AND tags.`{RANK_TAG}` != ''")
    for run_id in [] if stale.empty else set(stale["run_id"]) - marked:
        _delete_tags(run_id, BOARD_TAGS)


def _delete_tags(run_id: str, keys: Iterable[str]) -> None:
    c = store.client()
    present = c.get_run(run_id).data.tags
    for key in keys:
        if key in present:
            c.delete_tag(run_id, key)
