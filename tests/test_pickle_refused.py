"""A run whose artifacts hold a malicious pickle: `regbench predict --run` refuses it with one line and a non-zero
exit, and the payload (which writes a marker file when unpickled) never runs."""

from __future__ import annotations

import dataclasses
import json
import pickle
from argparse import Namespace
from pathlib import Path
from typing import Any

import pytest
import skops.io

from harness.cli import main
from harness.config import train_config
from harness.plugins import get_model, make_task
from harness.tracking import store
from harness.training.modeling import build_model
from harness.training.predictor import TorchPredictor


class Payload:
    """Unpickling this writes `marker`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",)


def _log(model: str) -> str:
    """A run logging a real (untrained torch / fitted sklearn) `model` on enhancers.synthetic, as training does."""
    task = make_task("enhancers.synthetic", {"n": 120})
    plugin = get_model(model)
    hp = {**plugin.defaults, **plugin.tiny}
    if plugin.is_torch:
        predictor = TorchPredictor(build_model(plugin, task.io, hp))
    else:
        splits = task.splits()
        predictor = plugin.fit_sklearn(splits["train"], splits["val"], task.io, **hp)
    meta = {"task": task.name, "model": model, "hp": hp, "data": {}, "train": dataclasses.asdict(train_config({})),
            "io": dataclasses.asdict(task.io), "threshold_val_f1": 0.5}  # fmt: skip
    with store.run("unit", "planted") as log:
        log.model(predictor, meta, torch_model=plugin.is_torch)
        return log.run_id


def _logged_file(root: Path, name: str) -> Path:
    (found,) = list(root.rglob(name))
    return found


def _plant_old_format(tmp_path: Path, marker: Path) -> str:
    """A run as an older regbench logged it: meta without `format`, an mlflow.pytorch model whose model.pth pickles."""
    with store.run("unit", "old") as log:
        log.dict({"task": "enhancers.synthetic", "model": "kmer_attention", "kind": "torch"}, store.META_ARTIFACT)
        log.text("flavors:\n  pytorch:\n    model_data: data\n    pickle_module_name: pickle\n", "model/MLmodel")
        (tmp_path / "model.pth").write_bytes(pickle.dumps(Payload(marker)))
        log.file(tmp_path / "model.pth", "model/data")
        return log.run_id


def _replace_weights(tmp_path: Path, marker: Path) -> str:
    run_id = _log("kmer_attention")
    _logged_file(tmp_path, "weights.safetensors").write_bytes(pickle.dumps(Payload(marker)))
    return run_id


def _replace_state(tmp_path: Path, marker: Path) -> str:
    run_id = _log("gc_length")
    _logged_file(tmp_path, "state.skops").write_bytes(pickle.dumps(Payload(marker)))
    return run_id


def _foreign_type_in_state(tmp_path: Path, marker: Path) -> str:
    run_id = _log("gc_length")
    skops.io.dump({"model": Namespace(marker=str(marker))}, _logged_file(tmp_path, "state.skops"))
    return run_id


@pytest.mark.parametrize(
    ("plant", "message"),
    [
        (_plant_old_format, "old pickle format"),
        (_replace_weights, "not a safetensors weights file"),
        (_replace_state, "not a skops file"),
        (_foreign_type_in_state, "names types regbench does not trust (argparse.Namespace)"),
    ],
)
def test_predict_refuses_a_planted_pickle(plant: Any, message: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    marker = tmp_path / "marker"
    run_id = plant(tmp_path, marker)
    fasta = tmp_path / "in.fa"
    fasta.write_text(">a\n" + "ACGT" * 50 + "\n")
    capsys.readouterr()
    code = main(["predict", "--run", run_id, "--input", str(fasta), "--output", str(tmp_path / "out.tsv")])
    err = capsys.readouterr().err
    assert code != 0
    assert len(err.strip().splitlines()) == 1 and message in err and "Traceback" not in err, err
    assert not marker.exists()
    assert not (tmp_path / "out.tsv").exists()


def test_meta_of_the_old_format_is_refused_before_any_model_file_is_read(tmp_path: Path) -> None:
    run_id = _plant_old_format(tmp_path, tmp_path / "marker")
    with pytest.raises(LookupError, match="Re-train it"):
        store.load_meta(run_id)
    assert json.loads(store.read_text_artifact(run_id, store.META_ARTIFACT) or "{}")["kind"] == "torch"
