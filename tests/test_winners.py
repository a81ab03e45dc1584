"""One line per task: the winner, its score [CI], the models tied with it (`1=`), failures; split labels only where
a task ran under several split protocols."""

from __future__ import annotations

import math

import pandas as pd

from harness.benchmark.leaderboard import BOARD_COLUMNS
from harness.benchmark.winners import description_lines, summary_lines, winners


def _row(task: str, model: str, group: str, score: float, split: str = "holdout", status: str = "ok") -> dict:
    row = dict.fromkeys(BOARD_COLUMNS, math.nan)
    ok = status == "ok"
    row.update(
        task=task,
        split_protocol=split,
        model=model,
        group=group if ok else "",
        primary_metric="auroc",
        n_seeds=1 if ok else 0,
        status=status,
        skip_reason="" if ok else "boom",
        run_ids=f"{task}-{model}",
    )
    if ok:
        row.update(test_primary=score, test_primary_ci_low=score - 0.05, test_primary_ci_high=score + 0.05)
    return row


def test_winner_ties_and_failures_per_task() -> None:
    board = pd.DataFrame([
        _row("a.task", "m1", "1=", 0.9), _row("a.task", "m2", "1=", 0.88), _row("a.task", "m3", "3", 0.7),
        _row("a.task", "m4", "", math.nan, status="failed"),
        _row("b.task", "m2", "1", 0.81), _row("b.task", "m1", "2", 0.6),
        _row("c.task", "m1", "1", 0.7, split="chromosome"), _row("c.task", "m1", "1", 0.9, split="random"),
        _row("d.task", "m1", "", math.nan, status="failed"),
    ])  # fmt: skip
    table = winners(board).set_index(["task", "split_protocol"])
    assert table.loc[("a.task", "holdout"), "model"] == "m1" and table.loc[("a.task", "holdout"), "tied"] == ["m2"]
    assert table.loc[("a.task", "holdout"), "n_failed"] == 1 and table.loc[("b.task", "holdout"), "tied"] == []
    assert table.loc[("a.task", "holdout"), "score"] == "0.900 [0.850, 0.950]"
    lines = summary_lines(board)
    assert lines == [
        "  a.task               m1  auroc 0.900 [0.850, 0.950]  (tied with 1: m2) · 1 of 4 failed",
        "  b.task               m2  auroc 0.810 [0.760, 0.860]",
        "  c.task [chromosome]  m1  auroc 0.700 [0.650, 0.750]",
        "  c.task [random]      m1  auroc 0.900 [0.850, 0.950]",
        "  d.task               no model scored · 1 of 1 failed",
    ]
    assert description_lines(board)[2] == "| a.task | **m1** | auroc 0.900 [0.850, 0.950] | m2 |"
