"""End to end: a tiny `regbench train` logs the expected run into a temp SQLite store, and the logged
model reloads for `predict` / `evaluate`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from harness.cli import main
from harness.config import parse_overrides
from harness.evaluation.reload import load_predictor
from harness.training.run import RunRequest, train_run

TINY = ["data.n=240", "model.k=3", "model.d_model=16", "model.head_dim=16", "train.batch_size=32",
        "train.progress=false"]  # fmt: skip


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """One tiny training run shared by the tests below: (tracking uri, run id)."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", uri)
    mp.setenv("REGBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
    try:
        run_id = train_run(RunRequest("enhancers.synthetic", "kmer_attention", parse_overrides(TINY), seed=1,
                                       max_epochs=2, experiment="unit"))  # fmt: skip
    finally:
        mp.undo()
    return uri, run_id


def test_run_has_expected_params_metrics_tags(logged_run: tuple[str, str]) -> None:
    uri, run_id = logged_run
    client = MlflowClient(uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "kmer_attention · enh.synth · s1"
    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    assert params["model.k"] == "3" and params["train.max_epochs"] == "2" and params["data.n"] == "240"
    for tag in ("task", "model", "seed", "git_sha", "dataset_digest", "split_protocol"):
        assert tags[tag], tag
    assert tags["synthetic"] == "true" and tags["seed"] == "1"
    for name in ("accuracy", "precision", "recall", "f1", "mcc", "auroc", "auprc"):
        low, point, high = metrics[f"test_{name}_ci_low"], metrics[f"test_{name}"], metrics[f"test_{name}_ci_high"]
        assert low <= point <= high, name
        assert f"val_{name}" in metrics, name
    for name in ("accuracy", "precision", "recall", "f1", "mcc"):
        assert f"test_{name}_valthr" in metrics, name
    assert 0 < metrics["val_f1_threshold"] < 1
    for name in ("n_params", "train_time_s", "train_throughput_seq_per_s", "wall_time_s", "peak_rss_mb"):
        assert metrics[name] > 0, name
    history = client.get_metric_history(run_id, "train_loss")
    assert sorted(m.step for m in history) == [1, 2]
    val_history = client.get_metric_history(run_id, "val_auroc")
    assert {m.step for m in val_history} == {1, 2}
    best_epoch = int(metrics["best_epoch"])
    assert metrics["val_auroc"] == next(m.value for m in val_history if m.step == best_epoch)
    names = {i.dataset.name for i in run.inputs.dataset_inputs}
    assert names == {f"enhancers.synthetic:{s}" for s in ("train", "val", "test")}


def test_run_artifacts(logged_run: tuple[str, str]) -> None:
    uri, run_id = logged_run
    client = MlflowClient(uri)
    paths = {a.path for folder in ("", "plots", "predictions") for a in client.list_artifacts(run_id, folder)}
    for expected in ("plots/roc_test.png", "plots/pr_test.png", "plots/confusion_test.png", "predictions/test.tsv",
                     "regbench_meta.json"):  # fmt: skip
        assert expected in paths, expected


def test_logged_model_reloads_and_reproduces_test_predictions(
    logged_run: tuple[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    uri, run_id = logged_run
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    predictor, meta = load_predictor(run_id, "cpu")
    assert meta["model"] == "kmer_attention" and meta["kind"] == "torch"
    logged = pd.read_csv(MlflowClient(uri).download_artifacts(run_id, "predictions/test.tsv", str(tmp_path)), sep="\t")
    from harness.plugins import make_task

    task = make_task("enhancers.synthetic", {"n": 240})
    scores = predictor.score(task.splits()["test"])
    np.testing.assert_allclose(scores, logged["score"].to_numpy(), atol=1e-5)


def test_cli_predict_and_evaluate(logged_run: tuple[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    uri, run_id = logged_run
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    fasta = tmp_path / "in.fa"
    fasta.write_text(">seq_a\n" + "ACGT" * 50 + "\n>seq_b\n" + "TGACTCA" * 28 + "TGAC\n")
    out = tmp_path / "scores.tsv"
    assert main(["predict", "--run", run_id, "--input", str(fasta), "--output", str(out), "--device", "cpu"]) == 0
    table = pd.read_csv(out, sep="\t")
    assert table["id"].tolist() == ["seq_a", "seq_b"] and table["score"].between(0, 1).all()
    tsv = tmp_path / "labelled.tsv"
    tsv.write_text("seq\tlabel\n" + "".join(f"{'ACGT' * 50}\t{i % 2}\n" for i in range(6)))
    assert main(["evaluate", "--run", run_id, "--input", str(tsv)]) == 0
    printed = capsys.readouterr().out
    assert "auroc" in printed and "95% CI [" in printed
    one_class = tmp_path / "one_class.tsv"
    one_class.write_text("seq\tlabel\n" + "".join(f"{'ACGT' * 50}\t1\n" for _ in range(6)))
    assert main(["evaluate", "--run", run_id, "--input", str(one_class)]) == 0
    printed = capsys.readouterr().out
    assert "auroc      undefined: the labels hold one class only (6 positives of 6)" in printed
    assert "nan" not in printed


def test_cli_train_prints_run_id_last(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "--task", "enhancers.synthetic", "--model", "kmer_logreg", "--set", "data.n=200",
                 "--set", "model.k=3", "--experiment", "cli"])  # fmt: skip
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 0 and lines[-1].startswith("run_id: ") and len(lines[-1]) > len("run_id: ") + 10
    metrics = MlflowClient().get_run(lines[-1].removeprefix("run_id: ")).data.metrics
    assert metrics["n_params"] == 4**3 + 1  # one coefficient per 3-mer plus the intercept


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--task", "enhancers.synthetc", "--model", "kmer_logreg"], "Did you mean enhancers.synthetic"),
        (["train", "--task", "enhancers.synthetic", "--model", "kmer_logreg", "--set", "model.kk=1"], "model.kk"),
        (["train", "--task", "enhancers.synthetic", "--model", "kmer_logreg", "--set", "train.lr=0"], "train.lr=0"),
        (["predict", "--run", "0123456789abcdef", "--input", "x.fa", "--output", "o.tsv"], "0123456789abcdef"),
        (["train", "--task", "enhancers.synthetic", "--model", "targetfinder_gbm"], "needs a feature table"),
        (["train", "--task", "epi.targetfinder_nhek", "--model", "kmer_logreg"], "provides a feature table"),
        (["train", "--task", "enhancers.synthetic", "--model", "dnabert2_probe"], "no language-model checkpoint"),
    ],
)
def test_cli_errors_are_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert message in last and "Traceback" not in err and last.startswith(f"regbench {argv[0]}: error:")


def test_predict_rejects_wrong_length_for_fixed_length_model(logged_run: tuple[str, str], tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    uri, run_id = logged_run
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    fasta = tmp_path / "bad.fa"
    fasta.write_text(">short\nACGTACGT\n")
    assert main(["predict", "--run", run_id, "--input", str(fasta), "--output", str(tmp_path / "o.tsv")]) == 2
    assert "short has length 8" in capsys.readouterr().err
