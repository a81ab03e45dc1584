"""Paired comparisons of real runs in a temporary MLflow store: k-mer models vs shortcuts, seeds, a GC-set task."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.benchmark.comparisons import (
    COLUMNS,
    UNTESTED,
    NotComparableError,
    check_same_examples,
    compare_runs,
    group_labels,
    load_model_scores,
    ranking_groups,
    shortcut_gaps,
    untested_boards,
)
from harness.benchmark.comparisons import markdown as comparisons_markdown
from harness.benchmark.leaderboard import cell_runs, display, ranked
from harness.cli import main
from harness.tracking import store
from harness.training.run import RunRequest, train_run

SYNTHETIC = {"n": 1000}
TINY_ATTENTION = {"k": 3, "d_model": 16, "head_dim": 16}
TRAIN = {"progress": False, "device": "cpu"}


def test_group_labels_join_the_leader_only_when_tied_with_it() -> None:
    ties = {frozenset("ab"), frozenset("cd"), frozenset("bc")}  # b~c does not matter: c is compared with leader a
    labels = group_labels(list("abcdef"), [True] * 5 + [False], lambda x, y: frozenset((x, y)) in ties)
    assert labels == ["1=", "1=", "3=", "3=", "5", ""]


def pair(frame: pd.DataFrame, a: str, b: str, test: str, metric: str = "auroc") -> pd.Series:
    chosen = (frame["model_a"] == a) & (frame["model_b"] == b) & (frame["test"] == test) & (frame["metric"] == metric)
    rows = frame[chosen]
    assert len(rows) == 1, (a, b, test, metric)
    return rows.iloc[0]


def test_kmer_models_beat_the_shortcuts_and_two_seeds_are_not_distinguished(tmp_path: Path) -> None:
    def train(name: str, seed: int = 0, **extra: object) -> str:
        return train_run(RunRequest("enhancers.synthetic", name, {"data": SYNTHETIC, **extra}, seed, max_epochs=1,
                                    experiment="cmp"))  # fmt: skip

    logreg = train("kmer_logreg", model={"k": 4})
    shortcuts = [train("gc_length"), train("length_only")]
    seeds = [train("kmer_attention", s, model=TINY_ATTENTION, train=TRAIN) for s in (0, 1)]

    board, table = ranked(cell_runs("cmp"))
    assert list(table.columns) == list(COLUMNS) and set(table["task"]) == {"enhancers.synthetic"}
    assert len(table) == 6 * 4 and (table["note"] == "").all()  # 4 models → 6 pairs × (DeLong, 2 bootstrap, McNemar)
    for shortcut in ("gc_length", "length_only"):
        best = pair(table, "kmer_logreg", shortcut, "delong")
        assert best["delta"] > 0.15 and best["p_adjusted"] < 1e-3, best.to_dict()  # Holm over the 6 DeLong tests
        for metric in ("auroc", "auprc"):
            boot = pair(table, "kmer_logreg", shortcut, "paired_bootstrap", metric)
            assert boot["ci_low"] > 0 and boot["p_adjusted"] < 0.01, boot.to_dict()
    groups = board.set_index("model")["group"]
    assert groups["kmer_logreg"] == "1" and not groups[["gc_length", "length_only"]].str.startswith("1").any()
    assert display(board).set_index("model")["rank"].to_dict() == groups.to_dict()  # what the terminal shows
    attention = table[table["model_a"].eq("kmer_attention") | table["model_b"].eq("kmer_attention")]
    assert (attention["n_seeds_a"] * attention["n_seeds_b"] == 2).all() and attention["seed_sd_a"].notna().any()
    gaps = shortcut_gaps(board, table).set_index("model")
    assert gaps.loc["kmer_logreg", "best shortcut"] in ("gc_length", "length_only")
    assert gaps.loc["kmer_logreg", "auroc above shortcut [95% CI]"].startswith("+")

    same_model = compare_runs(*seeds)  # two seeds of one model: no test tells them apart
    assert (same_model["p_adjusted"] >= 0.05).all(), same_model[["metric", "test", "delta", "p_adjusted"]]
    logged = store.client().get_run(logreg).data.metrics
    one_seed = load_model_scores("kmer_logreg", [logreg], tmp_path)
    assert one_seed.threshold == pytest.approx(logged["val_f1_threshold"])  # the run's validation-chosen threshold
    assert shortcuts and np.isfinite(one_seed.score).all()


def gc_labelled_tsv(path: Path, n: int = 800, length: int = 200, seed: int = 0) -> Path:
    """Random sequences whose GC fraction varies; the label is drawn from a logistic function of GC alone."""
    rng = np.random.default_rng(seed)
    gc = rng.uniform(0.3, 0.7, size=n)
    labels = rng.random(n) < 1 / (1 + np.exp(-(gc - 0.5) * 20))
    lines = []
    for p, label in zip(gc, labels, strict=True):
        probs = [(1 - p) / 2, p / 2, p / 2, (1 - p) / 2]  # A, C, G, T
        lines.append("".join(rng.choice(list("ACGT"), size=length, p=probs)) + f"\t{int(label)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_shortcut_that_explains_the_labels_ties_the_best_model(tmp_path: Path) -> None:
    data = {"train": str(gc_labelled_tsv(tmp_path / "gc.tsv"))}
    for model, hp in (("gc_length", {}), ("length_only", {}), ("kmer_logreg", {"k": 2})):
        train_run(RunRequest("enhancers.files", model, {"data": data, "model": hp}, 0, experiment="gc"))
    board, table = ranked(cell_runs("gc"))
    groups = board.set_index("model")["group"]
    assert groups["gc_length"] == "1=" and groups["kmer_logreg"] == "1=", board[["model", "test_primary", "group"]]
    assert groups["length_only"] == "3"  # constant length: chance
    top = board.iloc[0]["model"]
    other = "kmer_logreg" if top == "gc_length" else "gc_length"
    assert pair(table, top, other, "delong")["p_adjusted"] >= 0.05


def test_runs_on_different_data_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    small, large = (train_run(RunRequest("enhancers.synthetic", "gc_length", {"data": {"n": n}}, experiment="refuse"))
                    for n in (120, 160))  # fmt: skip
    with pytest.raises(NotComparableError, match=r"different data \(dataset digest"):
        compare_runs(small, large)
    capsys.readouterr()
    assert main(["compare", small, large]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("regbench compare: error: runs ") and "dataset digest" in err and "\n" not in err, err
    assert main(["compare", small, small, "--metric", "auroc"]) == 0
    out = capsys.readouterr().out
    assert "delong" in out and "mcnemar" not in out

    a, b = load_model_scores("a", [small], tmp_path), load_model_scores("b", [large], tmp_path)
    with pytest.raises(NotComparableError, match="not scored on the same test ids"):
        check_same_examples(a, b)


def test_multilabel_boards_are_ranked_by_paired_bootstraps_over_sequences() -> None:
    data = {"n": 600, "length": 200}
    tiny = {"filters1": 4, "filters2": 4, "filters3": 4, "fc_dim": 8}
    for model in ("basset", "deepsea"):
        train_run(RunRequest("chromatin.synthetic", model, {"data": data, "model": tiny, "train": TRAIN}, 0,
                             max_epochs=1, experiment="ml"))  # fmt: skip
    board, table = ranked(cell_runs("ml"))
    assert set(table["test"]) == {"paired_bootstrap"} and set(table["metric"]) == {"auroc_median", "auprc_median"}
    assert (table["n_examples"] == 60).all() and (table["note"] == "").all()
    top, other = board["model"].tolist()
    test = pair(table, top, other, "paired_bootstrap", "auroc_median")
    assert test["ci_low"] <= test["delta"] <= test["ci_high"] and 0 < test["p_adjusted"] <= 1
    expected = ["1=", "1="] if test["p_adjusted"] >= 0.05 else ["1", "2"]
    assert board["group"].tolist() == expected, (test.to_dict(), board[["model", "test_primary", "group"]])
    assert "auroc_median" in comparisons_markdown(board, table)


def test_a_board_whose_tests_could_not_run_is_not_ranked() -> None:
    board = pd.DataFrame({"task": "t", "split_protocol": "s", "model": ["a", "b", "c"], "primary_metric": "auroc",
                          "test_primary": [0.9, 0.8, np.nan], "status": "ok"})  # fmt: skip
    refused = pd.DataFrame([{"task": "t", "split_protocol": "s", "model_a": "a", "model_b": "b", "test": "refused",
                             "note": "run x has no predictions/test.tsv"}], columns=list(COLUMNS))  # fmt: skip
    assert ranking_groups(board, refused).tolist() == [UNTESTED, UNTESTED, ""]
    assert untested_boards(board, refused)["reason"].tolist() == [
        "paired tests refused: run x has no predictions/test.tsv"
    ]
    assert "Not ranked: paired tests could not run" in comparisons_markdown(board, refused)
    tested = pd.concat([refused, pd.DataFrame([{"task": "t", "split_protocol": "s", "model_a": "a", "model_b": "b",
                                                "metric": "auroc", "test": "delong", "p_adjusted": 0.5}])])  # fmt: skip
    assert ranking_groups(board, tested).tolist() == ["1=", "1=", ""]  # `=` only from a test that ran
    assert ranking_groups(board, tested.iloc[:1].assign(test="delong", metric="auprc")).tolist() == [UNTESTED] * 2 + [
        ""
    ]
