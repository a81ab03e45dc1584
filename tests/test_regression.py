"""Quantitative targets: metrics and their bootstrap against scipy/scikit-learn on the documented resamples, the
losses and output links, and tracked runs on `activity.synthetic` through the leaderboard's paired Δρ tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from sklearn.metrics import mean_squared_error, r2_score

from harness.benchmark.comparisons import compare_runs
from harness.benchmark.leaderboard import cell_runs, ranked
from harness.cli import main
from harness.config import ConfigError, train_config
from harness.data.encode import decode
from harness.evaluation.regression import bootstrap_regression_samples, regression_metrics
from harness.plugins import make_task
from harness.tracking import store
from harness.training.losses import apply_link, loss_function, output_link
from harness.training.run import RunRequest, train_run
from tasks.activity import WEIGHTS, generate


def reference(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    return {"pearson": stats.pearsonr(y, p)[0], "spearman": stats.spearmanr(y, p)[0], "r2": r2_score(y, p),
            "mse": mean_squared_error(y, p)}  # fmt: skip


def test_metrics_and_bootstrap_match_scipy_on_the_documented_resamples(rng: np.random.Generator) -> None:
    y = np.round(rng.normal(size=(40, 2)), 1)  # ties
    p = np.round(y + rng.normal(size=(40, 2)), 1)
    got = regression_metrics(y, p)
    per_output = [reference(y[:, c], p[:, c]) for c in range(2)]
    for name in got:
        assert got[name] == pytest.approx(np.mean([r[name] for r in per_output])), name
    samples = bootstrap_regression_samples(y[:, 0], p[:, 0], n_boot=30, seed=4)
    resamples = np.random.default_rng(4).integers(0, 40, size=(30, 40))
    for i, idx in enumerate(resamples):
        for name, value in reference(y[idx, 0], p[idx, 0]).items():
            assert samples[name][i] == pytest.approx(value), (name, i)
    assert regression_metrics(y[:, 0], np.zeros(40))["spearman"] == 0.0  # a constant prediction ranks nothing


def test_bad_regression_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="non-finite"):
        regression_metrics(np.array([1.0, np.nan, 2.0]), np.zeros(3))
    with pytest.raises(ValueError, match="need equal"):
        regression_metrics(np.zeros(3), np.zeros(4))
    with pytest.raises(ConfigError, match=r"train.loss='huber' is invalid"):
        train_config({"loss": "huber"})
    with pytest.raises(ValueError, match="poisson needs non-negative targets"):
        loss_function("regression", "poisson", np.array([1.0, -2.0]), "none", torch.device("cpu"))


def test_losses_and_links() -> None:
    out, y = torch.tensor([[0.5], [-1.0]]), torch.tensor([[1.0], [0.0]])
    device = torch.device("cpu")
    mse = loss_function("regression", "mse", y.numpy(), "none", device)
    assert mse(out, y).item() == pytest.approx(((0.5 - 1) ** 2 + 1) / 2)
    poisson = loss_function("regression", "poisson", y.numpy(), "none", device)
    assert poisson(out, y).item() == pytest.approx(np.mean(np.exp([0.5, -1.0]) - np.array([0.5, 0.0])))
    assert isinstance(loss_function("binary", "mse", y.numpy(), "none", device), torch.nn.BCEWithLogitsLoss)
    assert (output_link("regression", "mse"), output_link("regression", "poisson"), output_link("multilabel", "mse")) \
        == ("identity", "exp", "sigmoid")  # fmt: skip
    np.testing.assert_allclose(apply_link(np.array([[0.0]]), "exp"), [[1.0]])


def test_activity_task_is_weighted_motif_counts_plus_noise() -> None:
    _, activity, counts = generate(300, 200, 0.0, 1)
    np.testing.assert_allclose(activity, counts @ np.array(list(WEIGHTS.values())), atol=1e-5)
    task = make_task("activity.synthetic", {"n": 200})
    assert task.io.target == "regression" and task.primary_metric == "spearman"
    splits = task.splits()
    assert [len(splits[s]) for s in ("train", "val", "test")] == [160, 20, 20]
    assert splits["train"].labels.dtype == np.float32 and np.std(splits["train"].labels) > 0.5


@pytest.mark.slow
def test_regression_runs_are_scored_ranked_by_paired_spearman_and_served(tmp_path: Path) -> None:
    data = {"n": 600}
    runs = {model: train_run(RunRequest("activity.synthetic", model, {"data": data, "model": hp}, 0, experiment="reg"))
            for model, hp in (("kmer_logreg", {"k": 4, "C": 0.01}), ("gc_length", {}))}  # fmt: skip
    metrics = mlflow.MlflowClient().get_run(runs["kmer_logreg"]).data.metrics
    for name in ("pearson", "spearman", "r2", "mse"):
        assert metrics[f"test_{name}_ci_low"] <= metrics[f"test_{name}"] <= metrics[f"test_{name}_ci_high"], name
    assert metrics["test_primary"] == metrics["test_spearman"] > 0.4
    board, table = ranked(cell_runs("reg"))
    rho = table[(table["metric"] == "spearman") & (table["test"] == "paired_bootstrap")].iloc[0]
    assert (rho["model_a"], rho["model_b"]) == ("kmer_logreg", "gc_length") and rho["ci_low"] > 0, rho.to_dict()
    assert board.set_index("model")["group"].to_dict() == {"kmer_logreg": "1", "gc_length": "2"}
    assert set(compare_runs(runs["kmer_logreg"], runs["gc_length"])["metric"]) == {"pearson", "spearman", "r2", "mse"}
    seqs, activity, _ = generate(50, 300, 0.3, 9)
    fasta = tmp_path / "in.fa"
    fasta.write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(seqs)))
    out = tmp_path / "scores.tsv"
    assert main(["predict", "--run", runs["kmer_logreg"], "--input", str(fasta), "--output", str(out)]) == 0
    predicted = pd.read_csv(out, sep="\t")["score"].to_numpy()
    assert stats.spearmanr(predicted, activity)[0] > 0.3 and predicted.min() < 0 < predicted.max()  # not probabilities
    name = store.client().get_run(runs["kmer_logreg"]).data.tags[store.MODEL_NAME_TAG]
    pyfunc = mlflow.pyfunc.load_model(f"runs:/{runs['kmer_logreg']}/{name}")
    served = pyfunc.predict(pd.DataFrame({"sequence": seqs}))["score"].to_numpy()
    np.testing.assert_allclose(served, predicted, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_a_cnn_trains_on_activity_with_mse_and_on_counts_with_poisson(tmp_path: Path) -> None:
    tiny = {"filters1": 8, "filters2": 8, "filters3": 8, "fc_dim": 8}
    for loss, data in (("mse", {"n": 200}), ("poisson", {"n": 200, "counts": True})):
        overrides = {"data": data, "model": tiny, "train": {"progress": False, "device": "cpu", "loss": loss}}
        run_id = train_run(RunRequest("activity.synthetic", "basset", overrides, 0, max_epochs=1))
        metrics = mlflow.MlflowClient().get_run(run_id).data.metrics
        assert np.isfinite(metrics["test_spearman"]) and "test_spearman_ci_low" in metrics
        if loss == "poisson":  # scores are exp(output): rates, never negative
            predictions = store.download_artifact(run_id, "predictions/test.tsv", tmp_path)
            assert predictions is not None and (pd.read_csv(predictions, sep="\t")["score"] > 0).all()
    with pytest.raises(ValueError, match="non-negative"):  # plain activity has negative values
        overrides = {"data": {"n": 200}, "model": tiny, "train": {"progress": False, "loss": "poisson"}}
        train_run(RunRequest("activity.synthetic", "basset", overrides, 0, max_epochs=1))


def activity_table(path: Path, n: int, seed: int) -> Path:
    """An MPRA-style table `sequence<TAB>activity` (header) from `activity.synthetic`'s generator."""
    seqs, activity, _ = generate(n, 120, 0.3, seed)
    path.write_text("sequence\tactivity\n" + "".join(f"{s}\t{a:.4f}\n" for s, a in zip(seqs, activity, strict=True)))
    return path


def test_an_activity_table_is_a_regression_task_trained_exported_and_predicted_as_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = activity_table(tmp_path / "my mpra.tsv", 400, 3)  # a space: the printed command quotes it
    task = make_task("enhancers.files", {"train": str(table)})
    assert (task.io.target, task.primary_metric) == ("regression", "spearman")
    forced = make_task("enhancers.files", {"train": str(table), "target": "regression"})
    assert forced.splits()["test"].labels.dtype == np.float32 and forced.io.target == "regression"
    with pytest.raises(ValueError, match=r"my mpra.tsv:2: bad label '-?\d.*' \(expected 0 or 1\)"):
        make_task("enhancers.files", {"train": str(table), "target": "binary"}).splits()
    argv = ["train", "--task", "enhancers.files", "--model", "kmer_logreg", "--set", f"data.train={table}",
            "--set", "model.k=4", "--experiment", "mpra"]  # fmt: skip
    capsys.readouterr()
    assert main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    run_id = lines[-1].removeprefix("run_id: ")
    assert lines[0].startswith("test spearman: ") and float(lines[0].split()[2]) > 0.3, lines[0]
    export = lines[-2].removeprefix("score with it: ").split(" && ")[0]
    assert f"--set 'data.train={table}'" in export
    bin_dir = Path(sys.executable).parent  # the printed line, run by a shell as printed
    subprocess.run(export, shell=True, cwd=tmp_path, check=True, env={**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"})
    test = task.splits()["test"]
    assert pd.read_csv(tmp_path / "seqs.csv")["sequence"].tolist() == [decode(c, int(k)) for c, k in zip(
        test.seqs[0].codes, test.seqs[0].lengths, strict=True)]  # fmt: skip
    assert main(["export", "--task", "enhancers.files", "--set", f"data.train={table}", "--split", "test", "--out",
                 str(tmp_path / "test.tsv")]) == 0  # fmt: skip
    np.testing.assert_allclose(pd.read_csv(tmp_path / "test.tsv", sep="\t")["label"], test.labels, rtol=1e-6)
    out = tmp_path / "scores.tsv"
    assert main(["predict", "--run", run_id, "--input", str(table), "--output", str(out)]) == 0
    predicted = pd.read_csv(out, sep="\t")["score"].to_numpy()
    assert stats.spearmanr(predicted, pd.read_csv(table, sep="\t")["activity"])[0] > 0.3


@pytest.mark.parametrize(
    ("row", "message"),
    [("ACGTACGT\thigh", "t.tsv:4: bad label 'high' (not a number"), ("ACGTACGT\tNaN", "t.tsv:4: bad label 'NaN' "
     "(not a finite number"), ("ACGTACGT\t", "t.tsv:4: bad label '' (not a number")],
)  # fmt: skip
def test_bad_activity_labels_name_the_line_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], row: str, message: str
) -> None:
    path = tmp_path / "t.tsv"
    path.write_text(f"sequence\tactivity\nACGTAAAT\t0.5\nACGTCCCT\t1.5\n{row}\nACGTGGGT\t2\n")
    capsys.readouterr()
    argv = ["train", "--task", "enhancers.files", "--model", "kmer_logreg", "--set", f"data.train={path}"]
    assert main(argv) != 0
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err, err
