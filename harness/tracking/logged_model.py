"""A run's logged model, stored and loaded without pickle, and its MLflow `python_function` flavor.

A run's logged model (named `<task>__<model>`, `logged_name`) is a pyfunc model whose loader is this module
(`loader_module`), so loading it imports regbench instead of unpickling code from the artifact folder. Its
`data/regbench/` folder (`DATA_FOLDER`) holds:
- `regbench_meta.json`: task, model name, hp, io, train settings (the same file as the run's top-level one);
- torch models: `weights.safetensors`, the classifier's state dict; the classifier is rebuilt from the metadata
  with the plugin's `build` (`harness.training.modeling.build_model`), then the weights are loaded into it;
- sklearn-style models: `state.skops`, the plugin's `save_state(predictor)` (numpy arrays and scikit-learn
  estimators) written with skops, read back only when every type in it is a known scikit-learn type, then turned
  into a predictor by the plugin's `load_state`.
Runs logged before this format (pickled `mlflow.pytorch` / cloudpickled `mlflow.sklearn` models) are refused.
mlflow itself is not imported here (`harness.tracking.store` logs the folder).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

DATA_FOLDER = "regbench"  # the model's files, under the pyfunc model's data/
META_FILE = "regbench_meta.json"
WEIGHTS_FILE = "weights.safetensors"
STATE_FILE = "state.skops"
FORMAT = "regbench-weights/1"  # meta["format"] of models stored by this module
DEFINING = ("format", "kind", "task", "model", "hp", "io")  # the meta keys that define a stored model
PAIR_COLUMNS = ("enhancer", "promoter")
# Types skops does not trust by default that regbench's sklearn plugins store (scikit-learn internals, no code).
TRUSTED_TYPES = (
    "sklearn.multiclass._ConstantPredictor",  # a one-vs-rest label that is constant in training
    "sklearn.tree._tree.Tree",  # GradientBoostingClassifier's trees
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",  # HistGradientBoostingClassifier's trees
)


class UnsafeModelError(LookupError):
    """A run's model cannot be loaded without running code from its artifacts (old pickle format, foreign file)."""


def save(predictor: Any, meta: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    """Write `predictor` (a TorchPredictor or a sklearn plugin's predictor) and its metadata into `folder`;
    returns the metadata written (with `kind`, `format` and, for an outside plugin, where it came from)."""
    from harness.plugins import get_model, plugin_provenance

    plugin = get_model(meta["model"])
    folder.mkdir(parents=True, exist_ok=True)
    if plugin.is_torch:
        from safetensors.torch import save_model

        _write_then_rename(folder / WEIGHTS_FILE, lambda path: save_model(predictor.model, str(path)))
        kind = "torch"
    else:
        if plugin.save_state is None or plugin.load_state is None:
            raise TypeError(f"model plugin {plugin.name!r} has fit_sklearn but no save_state/load_state "
                            "(harness.spec.ModelPlugin): its fitted model cannot be stored")  # fmt: skip
        import skops.io

        _write_then_rename(folder / STATE_FILE, lambda path: skops.io.dump(dict(plugin.save_state(predictor)), path))
        kind = "sklearn"
    full = {**meta, "kind": kind, "format": FORMAT, **plugin_provenance(plugin.name)}
    (folder / META_FILE).write_text(json.dumps(full, indent=2))
    return full


def _write_then_rename(path: Path, write: Any) -> None:
    """`write(tmp)` to a temporary name beside `path`, then rename it to `path`: a failed write (a full disk) leaves
    no half-written file under the real name."""
    tmp = path.with_name(f".{path.name}.partial")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def logged_name(task: str, model: str) -> str:
    """`<task>/<model>` as MLflow allows a logged model's name (no `/ : . %` or quotes): task and model joined by
    `__`, dots as `-`, e.g. `enhancers-synthetic__kmer_attention`."""
    return f"{task.replace('.', '-')}__{model.replace('.', '-')}"


def check_format(meta: Mapping[str, Any], source: str) -> None:
    """Refuse metadata of a model not stored by this module (e.g. a pickled model of an older regbench)."""
    if meta.get("format") != FORMAT:
        raise UnsafeModelError(
            f"{source} holds a model in an old pickle format (format {meta.get('format', 'none')!r}, expected "
            f"{FORMAT!r}); regbench does not unpickle models, since unpickling runs code from the run's artifacts. "
            f"Re-train it (regbench train --task {meta.get('task', 'TASK')} --model {meta.get('model', 'MODEL')})"
        )


def read_meta(folder: Path) -> dict[str, Any]:
    """The metadata of a model folder (`DATA_FOLDER`), checked to be of this module's format."""
    path = folder / META_FILE
    if not path.is_file():
        raise UnsafeModelError(f"{folder} has no {META_FILE}: not a regbench model, or one logged in an old "
                               "pickle format; re-train it")  # fmt: skip
    meta = json.loads(path.read_text())
    check_format(meta, str(folder))
    return meta


def io_spec(meta: Mapping[str, Any]) -> Any:
    """The task's `IOSpec` recorded in the metadata."""
    from harness.spec import IOSpec

    io = meta["io"]
    return IOSpec(io["inputs"], tuple(io["lengths"]), int(io["n_outputs"]), io["target"], tuple(io["label_names"]))


def load(folder: Path) -> Any:
    """The model stored in `folder` (on CPU): the torch classifier (an nn.Module), or the sklearn plugin's
    predictor. Reads only safetensors and skops files; anything else is refused. An outside plugin's model needs the
    plugin: installed, given with --plugins / $REGBENCH_PLUGINS, or unchanged at its recorded path."""
    from harness.plugins import recorded_model

    meta = read_meta(folder)
    plugin = recorded_model(meta)
    hp = checked_hp(plugin, meta, folder)
    if meta["kind"] == "torch":
        return _load_torch(plugin, meta, hp, folder / WEIGHTS_FILE)
    return _load_sklearn(plugin, meta, hp, folder / STATE_FILE)


def checked_hp(plugin: Any, meta: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    """The run's hyperparameters over the plugin's defaults (a setting added since the run was logged takes its
    default, which is what the run used before it existed); ValueError (one line) unless the metadata's kind and
    hyperparameters fit the plugin it names."""
    from harness.config import ConfigError, merge

    if meta["kind"] != ("torch" if plugin.is_torch else "sklearn"):
        raise ValueError(f"{folder}: a {meta['kind']} model, but plugin {plugin.name} is not one; the run's "
                         "metadata is wrong")  # fmt: skip
    try:
        return merge("model", plugin.defaults, meta["hp"])
    except ConfigError as err:
        raise ValueError(f"{folder}: the model's settings do not fit plugin {plugin.name} ({err})") from None


def _load_torch(plugin: Any, meta: Mapping[str, Any], hp: Mapping[str, Any], path: Path) -> Any:
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    from harness.training.modeling import build_model

    model = build_model(plugin, io_spec(meta), hp)
    try:
        load_model(model, str(path), strict=True)
    except (SafetensorError, OSError) as err:
        raise UnsafeModelError(f"{path}: not a safetensors weights file ({err}); refusing to load it") from None
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise ValueError(f"{path}: the weights do not fit model {plugin.name} rebuilt from the run's settings "
                         f"({first})") from None  # fmt: skip
    return model.eval()


def _load_sklearn(plugin: Any, meta: Mapping[str, Any], hp: Mapping[str, Any], path: Path) -> Any:
    import skops.io

    if not path.is_file():
        raise UnsafeModelError(f"{path} is missing; the model cannot be loaded")
    try:
        untrusted = skops.io.get_untrusted_types(file=path)
    except Exception as err:  # BadZipFile, JSON or schema errors: not a skops file
        raise UnsafeModelError(f"{path}: not a skops file ({type(err).__name__}: {err}); refusing to load it") from None
    foreign = sorted(set(untrusted) - set(TRUSTED_TYPES))
    if foreign:
        raise UnsafeModelError(f"{path} names types regbench does not trust ({', '.join(foreign)}); refusing to "
                               "load it")  # fmt: skip
    state = skops.io.load(path, trusted=list(untrusted))
    return plugin.load_state(state, io_spec(meta), hp)


def as_predictor(model: Any, meta: Mapping[str, Any], device: str) -> Any:
    """A loaded model as a `harness.spec.Predictor`: torch classifiers wrapped with the run's scoring settings."""
    if meta["kind"] != "torch":
        return model
    from harness.training.fit import resolve_device
    from harness.training.losses import output_link
    from harness.training.predictor import TorchPredictor

    train = meta["train"]
    amp = train.get("amp", "auto")  # runs logged before train.amp took auto/true/false stored a bool (CUDA only)
    amp = ("auto" if amp else "false") if isinstance(amp, bool) else amp
    link = output_link(meta["io"]["target"], train.get("loss", "mse"))  # runs logged before train.loss: classifiers
    return TorchPredictor(model, train["eval_batch_size"], train["rc_tta"], str(resolve_device(device)), amp, link)


# --- the python_function flavor -------------------------------------------------------------------------------


def input_columns(meta: Mapping[str, Any]) -> tuple[str, ...]:
    """The sequence columns a model's pyfunc reads: `sequence`, or `enhancer` and `promoter` for pair tasks
    (empty for feature-table models, which take their numeric feature columns in training order)."""
    inputs = meta["io"]["inputs"]
    return {"seq": ("sequence",), "seq_pair": PAIR_COLUMNS}.get(inputs, ())


def output_columns(meta: Mapping[str, Any]) -> tuple[str, ...]:
    """Score columns, named as `regbench predict` names them: `score`, or `score_0..C-1` for multi-label tasks."""
    n = int(meta["io"]["n_outputs"])
    return ("score",) if n == 1 else tuple(f"score_{j}" for j in range(n))


def input_example(meta: Mapping[str, Any]) -> Any:
    """Two rows of random ACGT sequences of the task's length (200 bases when variable), with pair ids in the
    `CELL|chrN:start-end::CELL|chrN:start-end` form for pair tasks; None for feature-table models."""
    import pandas as pd

    columns = input_columns(meta)
    if not columns:
        return None
    rng = np.random.default_rng(0)
    lengths = [int(n) or 200 for n in meta["io"]["lengths"]]
    frame = {c: ["".join(rng.choice(list("ACGT"), size=lengths[min(i, len(lengths) - 1)])) for _ in range(2)]
             for i, c in enumerate(columns)}  # fmt: skip
    if len(columns) == 2:
        frame["id"] = ["X|chr1:10000-10500::X|chr1:60000-62000", "X|chr2:5000-5400::X|chr2:9000-11000"]
    return pd.DataFrame(frame)


def frame_dataset(frame: Any, meta: Mapping[str, Any]) -> Any:
    """A DataFrame → the dataset the model scores: one `Seqs` branch per input column (ids from an optional `id`
    column, else row numbers), or the whole frame as features for feature-table models."""
    from harness.data.datasets import FeatureDataset, SeqDataset, Seqs

    n = len(frame)
    ids = frame["id"].astype(str).to_numpy() if "id" in frame.columns else np.arange(1, n + 1).astype(str)
    columns = input_columns(meta)
    if not columns:
        return FeatureDataset(frame.drop(columns=["id"], errors="ignore").to_numpy(np.float32),
                              np.zeros(n, np.float32), ids)  # fmt: skip
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"input has columns {list(frame.columns)}; model {meta['model']} (task {meta['task']}) "
                         f"needs {', '.join(columns)}")  # fmt: skip
    branches = []
    for column, fixed in zip(columns, meta["io"]["lengths"], strict=True):
        seqs = [str(s).strip().upper() for s in frame[column]]
        bad = next((i for i, s in enumerate(seqs) if fixed and len(s) != fixed), None)
        if bad is not None:
            raise ValueError(f"row {ids[bad]}: {column} has length {len(seqs[bad])}, but model {meta['model']} was "
                             f"trained on task {meta['task']} with fixed length {fixed}")  # fmt: skip
        branches.append(Seqs.from_strings(seqs))
    return SeqDataset(tuple(branches), np.zeros(n, np.float32), ids)


class PyfuncModel:
    """What `mlflow.pyfunc.load_model` returns for a regbench model: `predict(DataFrame) -> DataFrame` of scores."""

    def __init__(self, predictor: Any, meta: Mapping[str, Any]) -> None:
        self.predictor, self.meta = predictor, meta

    def predict(self, model_input: Any, params: Mapping[str, Any] | None = None) -> Any:
        """Scores of `model_input` (a DataFrame of `input_columns`); input the model cannot take raises MLflow's
        invalid-input error with regbench's one-line cause, which `mlflow models serve` answers as HTTP 400."""
        import pandas as pd
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

        try:  # regbench's input checks: columns, fixed length, alphabet, a model's longest input
            scores = self.predictor.score(frame_dataset(pd.DataFrame(model_input), self.meta))
        except ValueError as err:
            raise MlflowException(str(err).splitlines()[0], error_code=INVALID_PARAMETER_VALUE) from None
        return pd.DataFrame(scores.reshape(len(scores), -1), columns=list(output_columns(self.meta)))


def _load_pyfunc(data_path: str) -> PyfuncModel:
    """MLflow's entry point for the `loader_module` flavor: `data_path` is the model's `data/regbench` folder."""
    folder = Path(data_path)
    meta = read_meta(folder)
    return PyfuncModel(as_predictor(load(folder), meta, "auto"), meta)
