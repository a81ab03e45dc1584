"""Logged models without pickle: each model kind round-trips through its stored files (safetensors / skops) with the
same scores, and the MLflow python_function flavor scores a DataFrame as `regbench predict` does."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from harness.cli import main
from harness.config import parse_overrides, train_config
from harness.data.encode import decode
from harness.plugins import MODELS, get_model, load_plugins, make_task
from harness.tracking import logged_model, store
from harness.training.modeling import build_model
from harness.training.predictor import TorchPredictor
from harness.training.run import RunRequest, train_run


def _meta(task: Any, model: str, hp: dict[str, Any]) -> dict[str, Any]:
    """The metadata `harness.training.run` logs with a model."""
    return {"task": task.name, "model": model, "hp": hp, "data": {}, "train": dataclasses.asdict(train_config({})),
            "io": dataclasses.asdict(task.io), "threshold_val_f1": 0.5}  # fmt: skip


def _roundtrip(predictor: Any, meta: dict[str, Any], folder: Path) -> Any:
    full = logged_model.save(predictor, meta, folder)
    assert {p.name for p in folder.iterdir()} == {logged_model.META_FILE, logged_model.WEIGHTS_FILE
                                                  if full["kind"] == "torch" else logged_model.STATE_FILE}  # fmt: skip
    return logged_model.as_predictor(logged_model.load(folder), full, "cpu")


def test_every_sklearn_plugin_can_be_stored() -> None:
    load_plugins()
    for plugin in (entry.obj for entry in MODELS):
        if plugin.fit_sklearn is not None:
            assert plugin.save_state is not None and plugin.load_state is not None, plugin.name


@pytest.mark.parametrize(
    ("task_name", "options", "model"),
    [
        ("enhancers.synthetic", {"n": 240}, "kmer_logreg"),
        ("chromatin.synthetic", {}, "kmer_logreg"),  # one-vs-rest over 12 labels
        ("enhancers.synthetic", {"n": 240}, "gc_length"),
        ("enhancers.synthetic", {"n": 240}, "length_only"),
        ("epi.synthetic", {}, "epi_distance"),
        ("epi.synthetic", {}, "element_propensity"),  # per-element rates stored as arrays
    ],
)
def test_sklearn_models_roundtrip(task_name: str, options: dict[str, Any], model: str, tmp_path: Path) -> None:
    task = make_task(task_name, options)
    splits, plugin = task.splits(), get_model(model)
    hp = {**plugin.defaults, **plugin.tiny}
    predictor = plugin.fit_sklearn(splits["train"], splits["val"], task.io, **hp)
    restored = _roundtrip(predictor, _meta(task, model, hp), tmp_path / "m")
    np.testing.assert_array_equal(restored.score(splits["test"]), predictor.score(splits["test"]))
    assert restored.n_params == predictor.n_params


def test_targetfinder_gbm_roundtrip(real_data: Path, tmp_path: Path) -> None:
    task = make_task("epi.targetfinder_nhek", {})
    splits, plugin = task.splits(), get_model("targetfinder_gbm")
    for backend in ("exact", "hist"):
        hp = {**plugin.defaults, **plugin.tiny, "backend": backend}
        predictor = plugin.fit_sklearn(splits["train"], splits["val"], task.io, **hp)
        restored = _roundtrip(predictor, _meta(task, "targetfinder_gbm", hp), tmp_path / backend)
        np.testing.assert_array_equal(restored.score(splits["test"]), predictor.score(splits["test"]))


def test_torch_model_roundtrip_on_a_pair_task(tmp_path: Path) -> None:
    """A seq model through the siamese adapter: the state dict holds every weight the rebuilt model needs."""
    task = make_task("epi.synthetic", {})
    plugin = get_model("kmer_attention")
    hp = {**plugin.defaults, **plugin.tiny}
    predictor = TorchPredictor(build_model(plugin, task.io, hp).eval())
    test = task.splits()["test"]
    restored = _roundtrip(predictor, _meta(task, "kmer_attention", hp), tmp_path / "m")
    np.testing.assert_array_equal(restored.score(test), predictor.score(test))


def test_weights_that_do_not_fit_the_settings_are_refused(tmp_path: Path) -> None:
    task = make_task("enhancers.synthetic", {"n": 240})
    plugin = get_model("kmer_attention")
    hp = {**plugin.defaults, **plugin.tiny}
    logged_model.save(TorchPredictor(build_model(plugin, task.io, hp)), _meta(task, "kmer_attention", hp), tmp_path)
    meta_path = tmp_path / logged_model.META_FILE
    meta = json.loads(meta_path.read_text())
    meta["hp"]["d_model"] = 2 * meta["hp"]["d_model"]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="do not fit model kmer_attention rebuilt from the run's settings"):
        logged_model.load(tmp_path)


TINY_ATTENTION = ["data.n=240", "model.k=3", "model.d_model=16", "model.head_dim=16", "train.batch_size=32",
                  "train.progress=false"]  # fmt: skip


@pytest.mark.parametrize(("model", "sets"), [("kmer_attention", TINY_ATTENTION), ("kmer_logreg", ["data.n=240"])])
def test_pyfunc_scores_as_regbench_predict(model: str, sets: list[str], tmp_path: Path) -> None:
    run_id = train_run(RunRequest("enhancers.synthetic", model, parse_overrides(sets), max_epochs=1, experiment="u"))
    rng = np.random.default_rng(1)
    seqs = ["".join(rng.choice(list("ACGT"), size=200)) for _ in range(5)]
    fasta = tmp_path / "in.fa"
    fasta.write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(seqs)))
    out = tmp_path / "scores.tsv"
    assert main(["predict", "--run", run_id, "--input", str(fasta), "--output", str(out), "--device", "cpu"]) == 0
    expected = pd.read_csv(out, sep="\t")["score"].to_numpy()

    tags = store.client().get_run(run_id).data.tags
    assert tags[store.MODEL_NAME_TAG] == f"enhancers-synthetic__{model}"
    pyfunc = mlflow.pyfunc.load_model(f"runs:/{run_id}/enhancers-synthetic__{model}")
    assert [c.name for c in pyfunc.metadata.get_input_schema().inputs] == ["sequence"]
    got = pyfunc.predict(pd.DataFrame({"sequence": seqs}))
    assert list(got.columns) == ["score"]
    np.testing.assert_allclose(got["score"].to_numpy(), expected, rtol=1e-5)  # regbench predict prints 6 digits
    example = pyfunc.input_example
    assert list(example.columns) == ["sequence"] and len(pyfunc.predict(example)) == len(example)


def test_pyfunc_of_a_pair_model_reads_enhancer_promoter_and_id_columns() -> None:
    """element_propensity scores by the pair ids: the pyfunc's `id` column reaches it, and its stored rates match."""
    task = make_task("epi.synthetic", {})
    splits, plugin = task.splits(), get_model("element_propensity")
    hp = dict(plugin.defaults)
    predictor = plugin.fit_sklearn(splits["train"], splits["val"], task.io, **hp)
    with store.run("unit", "pair") as log:
        log.model(predictor, _meta(task, "element_propensity", hp), torch_model=False)
        run_id = log.run_id
    test = splits["test"]
    frame = pd.DataFrame({name: [decode(c, int(n)) for c, n in zip(branch.codes, branch.lengths, strict=True)]
                          for name, branch in zip(("enhancer", "promoter"), test.seqs, strict=True)})  # fmt: skip
    frame["id"] = test.ids
    uri = store.client().get_run(run_id).data.tags[store.MODEL_URI_TAG]
    pyfunc = mlflow.pyfunc.load_model(uri)
    logged = store.client().get_logged_model(uri.removeprefix("models:/"))
    assert (logged.name, logged.tags["task"]) == ("epi-synthetic__element_propensity", "epi.synthetic")
    assert [c.name for c in pyfunc.metadata.get_input_schema().inputs] == ["enhancer", "promoter", "id"]
    np.testing.assert_allclose(pyfunc.predict(frame)["score"].to_numpy(), predictor.score(test), rtol=1e-12)
    with pytest.raises(MlflowException, match="enhancer has length 10, but model element_propensity"):
        pyfunc.predict(frame.head(1).assign(enhancer="ACGTACGTAC"))


@pytest.mark.slow
def test_mlflow_models_predict_scores_as_regbench_predict(tmp_path: Path) -> None:
    """`mlflow models predict -m <the run's models:/ URI> -i seqs.csv --env-manager local`, the MLflow CLI in a
    fresh process, gives the scores `regbench predict --run` writes."""
    request = RunRequest("enhancers.synthetic", "kmer_logreg", parse_overrides(["data.n=240"]), experiment="u")
    run_id = train_run(request)
    rng = np.random.default_rng(2)
    seqs = ["".join(rng.choice(list("ACGT"), size=200)) for _ in range(4)]
    pd.DataFrame({"sequence": seqs}).to_csv(tmp_path / "seqs.csv", index=False)
    (tmp_path / "seqs.tsv").write_text("sequence\n" + "\n".join(seqs) + "\n")
    assert main(["predict", "--run", run_id, "--input", str(tmp_path / "seqs.tsv"), "--output",
                 str(tmp_path / "ours.tsv")]) == 0  # fmt: skip
    uri = store.client().get_run(run_id).data.tags[store.MODEL_URI_TAG]
    mlflow_cli = Path(sys.executable).with_name("mlflow")
    subprocess.run([str(mlflow_cli), "models", "predict", "-m", uri, "-i", str(tmp_path / "seqs.csv"), "-t", "csv",
                    "-o", str(tmp_path / "theirs.json"), "--env-manager", "local"], check=True)  # fmt: skip
    theirs = pd.DataFrame(json.loads((tmp_path / "theirs.json").read_text())["predictions"])
    ours = pd.read_csv(tmp_path / "ours.tsv", sep="\t")
    np.testing.assert_allclose(theirs["score"].to_numpy(), ours["score"].to_numpy(), rtol=1e-5)
