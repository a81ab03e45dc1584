"""MLflow tracking — the ONLY module that imports mlflow.

Default store: `sqlite:///mlflow.db` in the working directory unless `MLFLOW_TRACKING_URI` is set;
artifacts of a SQLite store go to `mlartifacts/` beside the database file.
Layout: experiment = study name; a run per cell (or per `regbench train`); trials are child runs
nested with the `mlflow.parentRunId` tag. Metrics are named `{split}_{name}`; params `model.*`,
`train.*`, `data.*`; tags `task`, `model`, `seed`, `git_sha`, `dataset_digest`, `split_protocol`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

import mlflow
from mlflow.data.code_dataset_source import CodeDatasetSource
from mlflow.data.meta_dataset import MetaDataset
from mlflow.tracking import MlflowClient

from harness.tracking.run_owner import PROCESS_TAG, process_gone, process_stamp

PARENT_TAG = "mlflow.parentRunId"
META_ARTIFACT = "regbench_meta.json"


def tracking_uri() -> str:
    """`$MLFLOW_TRACKING_URI`, else a SQLite store `mlflow.db` in the working directory."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def configure() -> str:
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    return uri


def is_local_sqlite(uri: str) -> bool:
    return uri.startswith("sqlite:")


def ensure_experiment(name: str) -> str:
    """The id of experiment `name`, created (with artifacts beside a SQLite db) if missing."""
    uri = configure()
    client = MlflowClient(uri)
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        return existing.experiment_id
    location = None
    if is_local_sqlite(uri):
        db_path = Path(uri.removeprefix("sqlite:///"))
        location = (db_path.parent / "mlartifacts" / name.replace("/", "_")).as_uri()
    return client.create_experiment(name, artifact_location=location)


def git_sha() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, cwd=Path(__file__).parent
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip()


def flatten_params(prefix: str, values: Mapping[str, Any]) -> dict[str, str]:
    return {f"{prefix}.{k}": str(v) for k, v in values.items()}


class RunLogger:
    """Logging into one active MLflow run (the fluent run of this process)."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id

    def params(self, values: Mapping[str, Any]) -> None:
        mlflow.log_params({k: str(v)[:6000] for k, v in values.items()})

    def metrics(self, values: Mapping[str, float], step: int | None = None) -> None:
        clean = {k: float(v) for k, v in values.items() if v is not None and v == v}  # drop NaN
        if clean:
            mlflow.log_metrics(clean, step=step)

    def tags(self, values: Mapping[str, Any]) -> None:
        mlflow.set_tags({k: str(v) for k, v in values.items()})

    def text(self, text: str, name: str) -> None:
        mlflow.log_text(text, name)

    def dict(self, values: Mapping[str, Any], name: str) -> None:
        mlflow.log_dict(dict(values), name)

    def figure(self, figure: Any, name: str) -> None:
        mlflow.log_figure(figure, name)

    def file(self, path: str | Path, folder: str | None = None) -> None:
        mlflow.log_artifact(str(path), folder)

    def table(self, frame: Any, name: str) -> None:
        """A pandas DataFrame as a TSV/CSV artifact (by the extension of `name`)."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(name).name
            frame.to_csv(path, sep="\t" if name.endswith(".tsv") else ",", index=False)
            mlflow.log_artifact(str(path), str(Path(name).parent) if Path(name).parent != Path(".") else None)

    def dataset(self, name: str, digest: str, context: str, source_tags: Mapping[str, str]) -> None:
        """Record a dataset split with `mlflow.log_input` (name, digest and where it came from)."""
        source = CodeDatasetSource(tags={k: str(v) for k, v in source_tags.items()})
        mlflow.log_input(MetaDataset(source=source, name=name, digest=digest), context=context)

    def model(self, predictor: Any, meta: Mapping[str, Any], torch_model: bool) -> None:
        """Log a torch predictor's module with mlflow.pytorch (`torch_model`), else the sklearn-style estimator with
        mlflow.sklearn, plus `regbench_meta.json` describing how to rebuild the predictor."""
        if torch_model:
            import mlflow.pytorch

            mlflow.pytorch.log_model(
                predictor.model.cpu(), name="model", pip_requirements=_requirements(), serialization_format="pickle"
            )
            kind = "torch"
        else:
            import mlflow.sklearn

            mlflow.sklearn.log_model(predictor, name="model", pip_requirements=_requirements(),
                                     serialization_format="cloudpickle")  # fmt: skip
            kind = "sklearn"
        mlflow.log_dict({**meta, "kind": kind}, META_ARTIFACT)


def _requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("torch", "scikit-learn", "numpy", "mlflow")]


def close_abandoned_runs(experiment_id: str) -> list[str]:
    """End KILLED every RUNNING run of the experiment whose process (`regbench.process`) is gone from this host,
    and the RUNNING runs nested under it at any depth; returns their ids. Called before a top-level run starts, so
    a crashed study never shows as running (its results stay; resuming it reuses them)."""
    c = client()
    running = c.search_runs([experiment_id], "attributes.status = 'RUNNING'")
    children: dict[str, list[str]] = {}
    for r in running:
        children.setdefault(r.data.tags.get(PARENT_TAG, ""), []).append(r.info.run_id)
    pending = [r.info.run_id for r in running if process_gone(r.data.tags.get(PROCESS_TAG, ""))]
    closed: list[str] = []
    while pending:
        run_id = pending.pop()
        if run_id in closed:
            continue
        c.set_tag(run_id, "regbench.ended_by", "abandoned: the process that ran it is gone")
        c.set_terminated(run_id, "KILLED")
        closed.append(run_id)
        pending.extend(children.get(run_id, []))
    if closed:
        print(f"regbench: {len(closed)} run(s) left RUNNING by a process that no longer exists ended as KILLED",
              file=sys.stderr)  # fmt: skip
    return closed


@contextmanager
def run(
    experiment: str,
    run_name: str,
    tags: Mapping[str, Any] | None = None,
    parent_run_id: str | None = None,
) -> Iterator[RunLogger]:
    """Start a run (nested under `parent_run_id` if given); it ends FINISHED, or FAILED/KILLED on error."""
    experiment_id = ensure_experiment(experiment)
    all_tags = {"git_sha": git_sha(), PROCESS_TAG: process_stamp(), **(tags or {})}
    if parent_run_id:
        all_tags[PARENT_TAG] = parent_run_id
    else:
        close_abandoned_runs(experiment_id)
    str_tags = {k: str(v) for k, v in all_tags.items()}
    # Under `mlflow run`, MLFLOW_RUN_ID names the run the project was launched in: the top-level run adopts it.
    launched = os.environ.pop("MLFLOW_RUN_ID", None) if parent_run_id is None else None
    if launched:
        active = mlflow.start_run(run_id=launched)
        mlflow.set_tags({**str_tags, "mlflow.runName": run_name})
    else:
        active = mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=str_tags)
    status = "FAILED"
    try:
        yield RunLogger(active.info.run_id)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        mlflow.end_run(status=status)


def load_meta(run_id: str) -> dict[str, Any]:
    configure()
    try:
        path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=META_ARTIFACT)
    except Exception as err:  # MlflowException, missing run, missing artifact
        raise LookupError(
            f"run {run_id!r} has no logged regbench model in {tracking_uri()} ({type(err).__name__}: {err}). "
            "Pass the run_id printed by `regbench train` (or a study's parent run), and the same "
            "MLFLOW_TRACKING_URI it was logged to."
        ) from None
    return json.loads(Path(path).read_text())


def load_model(run_id: str, kind: str) -> Any:
    """The logged model object (an nn.Module for torch runs, the estimator for sklearn runs)."""
    configure()
    uri = f"runs:/{run_id}/model"
    if kind == "torch":
        import mlflow.pytorch

        return mlflow.pytorch.load_model(uri, map_location="cpu")
    import mlflow.sklearn

    return mlflow.sklearn.load_model(uri)


def client() -> MlflowClient:
    return MlflowClient(configure())


def search_runs(experiment: str, filter_string: str = "") -> Any:
    """Runs of `experiment` as a pandas DataFrame (mlflow.search_runs columns), newest first; empty if the
    experiment does not exist."""
    import pandas as pd

    existing = client().get_experiment_by_name(experiment)
    if existing is None:
        return pd.DataFrame()
    return mlflow.search_runs([existing.experiment_id], filter_string=filter_string,
                              order_by=["attributes.start_time DESC"])  # fmt: skip


def read_text_artifact(run_id: str, name: str) -> str | None:
    """A run's text artifact, or None when it has none by that name."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            return Path(client().download_artifacts(run_id, name, tmp)).read_text()
        except Exception:  # MlflowException / OSError: no such artifact
            return None


def set_tags(run_id: str, tags: Mapping[str, Any]) -> None:
    """Tag any run by id (also one that has ended)."""
    c = client()
    for key, value in tags.items():
        c.set_tag(run_id, key, str(value))


def record_run(experiment: str, run_name: str, tags: Mapping[str, Any], parent_run_id: str | None,
               status: str = "FAILED") -> str:  # fmt: skip
    """Create a run holding only tags, ended at once with `status` (e.g. a benchmark cell that could not run)."""
    all_tags = {"git_sha": git_sha(), **tags, **({PARENT_TAG: parent_run_id} if parent_run_id else {})}
    c = client()
    run_id = c.create_run(ensure_experiment(experiment), tags={k: str(v) for k, v in all_tags.items()},
                          run_name=run_name).info.run_id  # fmt: skip
    c.set_terminated(run_id, status)
    return run_id


class ClientRun:
    """Logging into one run by id through MlflowClient: the run need not be this process's active (fluent) run,
    so runs nested under it can be started and ended with `run(..., parent_run_id=...)` while it is open."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self._client = client()

    def metrics(self, values: Mapping[str, float]) -> None:
        for key, value in values.items():
            if value is not None and value == value:  # drop NaN
                self._client.log_metric(self.run_id, key, float(value))

    def tags(self, values: Mapping[str, Any]) -> None:
        set_tags(self.run_id, values)

    def text(self, text: str, name: str) -> None:
        self._client.log_text(self.run_id, text, name)

    def table(self, frame: Any, name: str) -> None:
        """A pandas DataFrame as a CSV artifact."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(name).name
            frame.to_csv(path, index=False)
            folder = str(Path(name).parent) if Path(name).parent != Path(".") else None
            self._client.log_artifact(self.run_id, str(path), folder)


@contextmanager
def client_run(experiment: str, run_name: str, tags: Mapping[str, Any] | None = None) -> Iterator[ClientRun]:
    """A top-level run driven through the client (see `ClientRun`); adopts MLFLOW_RUN_ID like `run`. It ends
    FINISHED, or FAILED/KILLED on error."""
    experiment_id = ensure_experiment(experiment)
    str_tags = {k: str(v) for k, v in {"git_sha": git_sha(), PROCESS_TAG: process_stamp(), **(tags or {})}.items()}
    close_abandoned_runs(experiment_id)
    c = client()
    launched = os.environ.pop("MLFLOW_RUN_ID", None)
    if launched:
        set_tags(launched, {**str_tags, "mlflow.runName": run_name})
        run_id = launched
        if c.get_run(launched).info.experiment_id != experiment_id:
            hint = f"launch it with `mlflow run ... --experiment-name {experiment}`"
            warnings.warn(f"the launched MLflow run {launched} is not in experiment {experiment!r}, where its nested "
                          f"runs go; {hint}", stacklevel=3)  # fmt: skip
    else:
        run_id = c.create_run(experiment_id, tags=str_tags, run_name=run_name).info.run_id
    status = "FAILED"
    try:
        yield ClientRun(run_id)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        c.set_terminated(run_id, status)


def download_artifact(run_id: str, path: str, dst: str | Path) -> Path | None:
    """Download artifact `path` of `run_id` into `dst`; None when the run has no such artifact."""
    parent = str(Path(path).parent) if Path(path).parent != Path(".") else None
    if path not in {f.path for f in client().list_artifacts(run_id, parent)}:
        return None
    return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path, dst_path=str(dst)))


def log_artifact_dir(run_id: str, local_dir: str | Path, artifact_path: str) -> None:
    """Upload the files of `local_dir` to `artifact_path` of `run_id` (which may have ended)."""
    client().log_artifacts(run_id, str(local_dir), artifact_path)
