"""MLflow tracking — the ONLY module that imports mlflow.

Default store: `sqlite:///mlflow.db` in the working directory unless `MLFLOW_TRACKING_URI` is set;
artifacts of a SQLite store go to `mlartifacts/` beside the database file.
Layout: experiment = study name, tagged as a model-training experiment (`mlflow.experimentKind`) so the UI opens
on its Training runs; a run per cell (or per `regbench train`); trials are child runs nested with the
`mlflow.parentRunId` tag. Metrics are named `{split}_{name}`; params `model.*`,
`train.*`, `data.*`; tags `task`, `model`, `seed`, `git_sha`, `dataset_digest`, `split_protocol`.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
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
from mlflow.utils.mlflow_tags import MLFLOW_LOGGED_ARTIFACTS, MLFLOW_RUN_NOTE

from harness.limits import check_name
from harness.tracking.disk_full import disk_full_error, is_full
from harness.tracking.run_owner import PROCESS_TAG, process_gone, process_stamp
from harness.tracking.store_open import open_store

PARENT_TAG = "mlflow.parentRunId"
META_ARTIFACT = "regbench_meta.json"
# The MLflow UI's experiment kind (mlflow/server/js: ExperimentKind.CUSTOM_MODEL_DEVELOPMENT); "*_inferred" values are
# the UI's own guesses, which regbench overrides. MLflow 3.17's UI does not read it to pick an experiment's first page
# (see `leaderboard_link`), but it is the experiment's declared kind for any client that does.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
NOTE_TAG = MLFLOW_RUN_NOTE  # a run's description, Markdown, on its page in the UI
DESCRIPTION_LIMIT = 8000  # characters of a description (a tag value) MLflow keeps
MODEL_NAME_TAG = "regbench.model_name"  # the name of the run's logged model (runs:/<run_id>/<name>)
MODEL_URI_TAG = "regbench.model_uri"  # its models:/<model_id> URI
# A saved runs view of the UI is an experiment tag `mlflow.sharedViewState.<key>` (opened by `?viewStateShareKey=`).
# regbench's two read the display tags a benchmark writes on the cells of its latest board
# (`harness.benchmark.winners.mark_board`): WINNERS_VIEW one row per task, its winner; LEADERBOARD_VIEW every cell,
# by task and then rank.
SHARED_VIEW_PREFIX = "mlflow.sharedViewState."
WINNERS_VIEW = "regbench-winners"
LEADERBOARD_VIEW = "regbench-leaderboard"
RANK_TAG = "regbench.rank"  # "1", "1=", "3", "failed", "unable"
SCORE_TAG = "regbench.score"  # "auroc 0.846 [0.813, 0.874]": the primary metric, rounded for display
WINNER_TAG = "regbench.winner"  # "yes" on each task's winner of the latest board
TIED_TAG = "regbench.tied_with"  # on a winner: the models tied with it, "—" for none
ORDER_TAG = "regbench.board_order"  # "<task> [<split>] 001": sorts a view by task, then board position
UI_ADDRESS = "http://127.0.0.1:5000"  # where `mlflow ui` listens unless told otherwise
# A view's table (MLflow 3.17's runs grid) always shows the attribute columns Run Name and Created (pinned left) and
# Duration; at 1366 px with MLflow's Assistant panel open (a first visit opens it) 500 px are left right of Run Name.
# So each view sizes its columns (and Created: "11 months ago" fits 130 px) and moves Duration after them (the
# grid's column ids; bench/ui_check.py checks what is seen).
PINNED_COLUMNS = {"attributes.`Run Name`": 190, "runDateAndNestInfo": 130}
DURATION_COLUMN = "duration"
VIEWS = {  # key → (name, filter, {column: width in px}, in table order)
    WINNERS_VIEW: ("regbench winners", f"tags.`{WINNER_TAG}` = 'yes'",
                   {f"tags.`{SCORE_TAG}`": 215, f"tags.`{TIED_TAG}`": 260, "tags.`task`": 160}),
    LEADERBOARD_VIEW: ("regbench leaderboard", f"tags.`{RANK_TAG}` LIKE '%'",
                       {f"tags.`{RANK_TAG}`": 100, f"tags.`{SCORE_TAG}`": 215, "tags.`model`": 130,
                        "tags.`task`": 160, "metrics.`compute_time_s`": 120, "metrics.`n_params`": 100}),
}  # fmt: skip


def tracking_uri() -> str:
    """`$MLFLOW_TRACKING_URI`, else a SQLite store `mlflow.db` in the working directory."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def configure() -> str:
    """Point MLflow at `tracking_uri()`, opening the store first (a fresh SQLite one created under a file lock)."""
    uri = tracking_uri()
    open_store(uri)
    mlflow.set_tracking_uri(uri)
    return uri


def is_local_sqlite(uri: str) -> bool:
    return uri.startswith("sqlite:")


def ensure_experiment(name: str) -> str:
    """The id of experiment `name`, created (with artifacts beside a SQLite db) if missing; either way tagged as a
    model-training experiment (`EXPERIMENT_KIND`) unless someone chose another kind for it, with the saved runs
    view `LEADERBOARD_VIEW` unless it has one."""
    uri = configure()
    client = MlflowClient(uri)
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        kind = existing.tags.get(EXPERIMENT_KIND_TAG, "")
        if kind != EXPERIMENT_KIND and (not kind or kind.endswith("_inferred") or kind == "no_inferred_type"):
            client.set_experiment_tag(existing.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        for key, value in leaderboard_view().items():
            if key not in existing.tags or _outdated(existing.tags[key], value):
                client.set_experiment_tag(existing.experiment_id, key, value)
        return existing.experiment_id
    check_name(name, "experiment")  # a new experiment's name also names its artifact folder
    location = None
    if is_local_sqlite(uri):
        db_path = Path(uri.removeprefix("sqlite:///"))
        location = (db_path.parent / "mlartifacts" / name.replace("/", "_")).as_uri()
    return client.create_experiment(name, artifact_location=location,
                                    tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND, **leaderboard_view()})  # fmt: skip


def leaderboard_view() -> dict[str, str]:
    """The experiment tags of the UI's saved views `VIEWS`: the cells of the latest board (flat, since the filter
    leaves out their parents), sorted by task and then board position, only the columns that compare them, sized
    and ordered so that the first ones sit beside the pinned run names, left of the UI's side panels."""
    now = int(time.time() * 1000)
    out = {}
    for key, (name, query, columns) in VIEWS.items():
        state = {"searchFilter": query, "orderByKey": f"tags.`{ORDER_TAG}`", "orderByAsc": True, "startTime": "ALL",
                 "lifecycleFilter": "Active", "modelVersionFilter": "All Runs", "datasetsFilter": [],
                 "selectedColumns": list(columns), "columnOrder": [*PINNED_COLUMNS, *columns, DURATION_COLUMN],
                 "columnWidths": PINNED_COLUMNS | columns, "runsHiddenMode": "SHOW_ALL"}  # fmt: skip
        envelope = {"name": name, "createdAt": now, "updatedAt": now, "state": json.dumps(state)}
        out[SHARED_VIEW_PREFIX + key] = json.dumps(envelope)
    return out


def _outdated(tag: str, current: str) -> bool:
    """Whether a saved view's experiment tag is one regbench wrote (its name starts with "regbench") with another
    state than `current`'s: an earlier regbench's view is replaced, a view the user changed stays theirs."""
    try:
        view = json.loads(tag)
        return view["name"].startswith("regbench") and view["state"] != json.loads(current)["state"]
    except (ValueError, KeyError, TypeError, AttributeError):
        return False


def leaderboard_link(experiment_id: str, view: str = WINNERS_VIEW) -> str:
    """The UI's address (relative to the server) of the experiment's runs in the leaderboard view.

    It names the workflow type because MLflow 3.17's UI picks an experiment's first page from that alone: its
    experiment-kind hook returns the kind of the `workflowType` URL parameter, else of the browser's localStorage
    `mlflow.workflowType` (default `genai`, written only by the sidebar's GenAI / Model training toggle), whenever
    workflow-based navigation is on, which the released build hard-codes; the `mlflow.experimentKind` tag is read
    only when it is off. So the plain `#/experiments/<id>` opens the GenAI overview in a fresh browser whatever the
    tag, and no server-side setting changes that (bench/ui_check.py shows both)."""
    return f"#/experiments/{experiment_id}/runs?workflowType=machine_learning&viewStateShareKey={view}"


def ui_address(experiment_id: str, view: str = WINNERS_VIEW) -> str:
    """The address of the experiment's saved `view` (`leaderboard_link`): on the tracking server when
    MLFLOW_TRACKING_URI is one, else where `ui_command` serves the store."""
    uri = tracking_uri()
    base = uri.rstrip("/") if uri.startswith(("http://", "https://")) else UI_ADDRESS
    return f"{base}/{leaderboard_link(experiment_id, view)}"


def ui_command() -> str | None:
    """The one `mlflow ui` line that serves the store in use (None when it is a tracking server already)."""
    uri = tracking_uri()
    return None if uri.startswith(("http://", "https://")) else f"mlflow ui --backend-store-uri {uri}"


def tracking_env() -> str:
    """`MLFLOW_TRACKING_URI=<uri> ` to put before a printed `mlflow` command so that, pasted into any shell, it
    reads the store in use (always: `mlflow.set_tracking_uri` exports the variable in this process, so whether the
    user's shell has it cannot be told from here)."""
    return f"MLFLOW_TRACKING_URI={tracking_uri()} "


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
        self.ended = False  # `end` was called: nothing may be logged through this logger any more

    def end(self, status: str = "FINISHED", end_time_ms: int | None = None) -> None:
        """End the run now (or as of `end_time_ms`) instead of when its `run` block exits."""
        mlflow.end_run(status=status)
        if end_time_ms is not None:
            client().set_terminated(self.run_id, status, end_time=end_time_ms)
        self.ended = True

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
        dataset = MetaDataset(source=source, name=name, digest=digest)
        try:
            mlflow.log_input(dataset, context=context)
        except mlflow.exceptions.MlflowException as err:  # two runs (a cell's refits) creating the same dataset row
            if "UNIQUE constraint" not in str(err):  # at once: the loser retries, and finds the row
                raise
            time.sleep(0.5)
            mlflow.log_input(dataset, context=context)

    def model(self, predictor: Any, meta: Mapping[str, Any], torch_model: bool) -> None:
        """Log the predictor as an MLflow python_function model named after its task and model
        (`logged_model.logged_name`, loaded by `harness.tracking.logged_model`: torch weights as safetensors,
        sklearn-style state as skops, no pickle) with a signature and an input example, plus `regbench_meta.json`
        describing how to rebuild it; the run's tags `MODEL_NAME_TAG` / `MODEL_URI_TAG` name it and its
        `models:/<model_id>` URI. `torch_model`: the plugin is a torch one."""
        import logging
        from types import SimpleNamespace

        import mlflow.pyfunc
        from mlflow.models import Model, ModelSignature
        from mlflow.types import ColSpec, Schema

        from harness.tracking import logged_model

        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / logged_model.DATA_FOLDER
            full = logged_model.save(predictor, meta, folder)
            if full["kind"] != ("torch" if torch_model else "sklearn"):
                raise TypeError(f"model {meta['model']}: torch_model={torch_model} disagrees with its plugin")
            columns = logged_model.input_columns(full)
            inputs = Schema([ColSpec("string", c) for c in columns] + ([ColSpec("string", "id", required=False)]
                            if len(columns) == 2 else [])) if columns else None  # fmt: skip
            outputs = Schema([ColSpec("double", c) for c in logged_model.output_columns(full)])
            signature, example = ModelSignature(inputs=inputs, outputs=outputs), logged_model.input_example(full)
            # Model.log with pyfunc's save_model, not pyfunc.log_model, to turn off its serving check (which
            # pyfunc.log_model cannot): it would load the model again (a language model's encoder too) and score the
            # example in every run. The example is still saved for `mlflow models predict/serve`.
            flavor = SimpleNamespace(__name__="mlflow.pyfunc", save_model=lambda validate_serving_input, **kw:
                                     mlflow.pyfunc.save_model(**kw))  # fmt: skip
            pyfunc_log = logging.getLogger("mlflow.pyfunc")
            level = pyfunc_log.level
            pyfunc_log.setLevel(logging.WARNING)  # its INFO "Validating input example", once per logged model
            try:
                with warnings.catch_warnings():
                    # MLflow 3.17 compares the example's columns with a range, deprecated in pandas 4 (not ours)
                    warnings.filterwarnings("ignore", "Operation with range is deprecated", module="mlflow")
                    name = logged_model.logged_name(full["task"], full["model"])
                    info = Model.log(artifact_path=None, name=name, flavor=flavor, flavor_name="pyfunc",
                                     loader_module="harness.tracking.logged_model", data_path=str(folder),
                                     pip_requirements=_requirements(), signature=signature, input_example=example,
                                     validate_serving_input=False,
                                     tags={"task": full["task"], "model": full["model"]})  # fmt: skip
            finally:
                pyfunc_log.setLevel(level)
        mlflow.log_dict(full, META_ARTIFACT)
        mlflow.set_tags({MODEL_NAME_TAG: name, MODEL_URI_TAG: info.model_uri})


def _requirements() -> list[str]:
    """The pins a logged model needs (given explicitly: inferring them would load the model on every log)."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("torch", "scikit-learn", "numpy", "mlflow", "safetensors", "skops")]


ABANDONED = "abandoned: the process that ran it is gone"  # tag `regbench.ended_by` of a run ended by the next one


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
        c.set_tag(run_id, "regbench.ended_by", ABANDONED)
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
    """Start a run (nested under `parent_run_id` if given); it ends FINISHED, or FAILED/KILLED on error, unless its
    body ended it (`RunLogger.end`)."""
    experiment_id = ensure_experiment(experiment)
    all_tags = {"git_sha": git_sha(), PROCESS_TAG: process_stamp(), **(tags or {})}
    if parent_run_id:
        all_tags[PARENT_TAG] = parent_run_id
    else:
        close_abandoned_runs(experiment_id)
    str_tags = {k: str(v) for k, v in all_tags.items()}
    # Under `mlflow run`, MLFLOW_RUN_ID names the run the project was launched in: the top-level run adopts it.
    launched = os.environ.pop("MLFLOW_RUN_ID", None) if parent_run_id is None else None
    outer = mlflow.active_run()
    status, logger = "FAILED", None
    try:
        if launched:
            active = mlflow.start_run(run_id=launched)
            mlflow.set_tags({**str_tags, "mlflow.runName": run_name})
        else:
            active = mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=str_tags)
        logger = RunLogger(active.info.run_id)
        yield logger
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    except OSError as err:
        if is_full(err) and logger is not None:
            raise disk_full_error(err, active.info.artifact_uri) from None
        raise
    finally:
        if logger is None:  # the first error stands: a store that fails here too is swept by the next run
            with contextlib.suppress(Exception):
                _end_half_started(experiment_id, run_name, str_tags[PROCESS_TAG], outer, status)
        elif not logger.ended:
            _end_run(logger.run_id, status)


def _end_half_started(
    experiment_id: str, run_name: str, stamp: str, outer: mlflow.ActiveRun | None, status: str
) -> None:
    """End `status` the run that an interrupt (or error) cut short while MLflow was starting it: the store may hold
    it RUNNING already, and MLflow's exit handler would end it FINISHED if it was made the active run. `outer` is
    the active run before (a parent), left alone; the run is found by this process's stamp and its name."""
    current = mlflow.active_run()
    if current is not None and (outer is None or current.info.run_id != outer.info.run_id):
        _end_run(current.info.run_id, status)
    keep = {outer.info.run_id} if outer is not None else set()
    c = client()
    for r in c.search_runs([experiment_id], "attributes.status = 'RUNNING'"):
        if r.info.run_id not in keep and r.info.run_name == run_name and r.data.tags.get(PROCESS_TAG) == stamp:
            c.set_terminated(r.info.run_id, status)


def _end_run(run_id: str, status: str) -> None:
    """End the fluent run `status`; when the store cannot be written (its disk full too) a FAILED or KILLED run is
    left as it is with one line on stderr (the next top-level run ends it KILLED), so the first error stands."""
    try:
        mlflow.end_run(status=status)
    except Exception as err:  # MlflowException / sqlite3.OperationalError: "database or disk is full"
        if status == "FINISHED":
            raise
        print(f"regbench: run {run_id} could not be ended {status} in {tracking_uri()}: {type(err).__name__}: "
              f"{str(err).splitlines()[0][:200]}", file=sys.stderr)  # fmt: skip


@contextmanager
def attach(run_id: str) -> Iterator[RunLogger]:
    """Log into the existing run `run_id` from another process (rank 0 of a data-parallel fit); the process that
    started the run (`run`) sets its final status."""
    configure()
    mlflow.start_run(run_id=run_id)
    try:
        yield RunLogger(run_id)
    finally:
        mlflow.end_run()


def get_run(run_id: str) -> Any:
    """The MLflow run `run_id`; LookupError naming it and the tracking URI when there is no such run."""
    try:
        return client().get_run(run_id)
    except mlflow.exceptions.MlflowException as err:
        raise LookupError(f"no run {run_id!r} in {tracking_uri()} ({err.message}); pass a run_id printed by "
                          "regbench, with the MLFLOW_TRACKING_URI it was logged to") from None  # fmt: skip


def load_meta(run_id: str) -> dict[str, Any]:
    """The run's `regbench_meta.json`; refused (UnsafeModelError) for a model logged in an old pickle format."""
    from harness.tracking.logged_model import check_format

    configure()
    with tempfile.TemporaryDirectory() as tmp:  # removed afterwards (without a destination MLflow leaves it)
        try:
            path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=META_ARTIFACT, dst_path=tmp)
        except Exception as err:  # MlflowException, missing run, missing artifact
            raise LookupError(
                f"run {run_id!r} has no logged regbench model in {tracking_uri()} ({type(err).__name__}: {err}). "
                "Pass the run_id printed by `regbench train` (or a study's cell run), and the same "
                "MLFLOW_TRACKING_URI it was logged to."
            ) from None
        meta = json.loads(Path(path).read_text())
    check_format(meta, f"run {run_id}")
    return meta


def load_model(run_id: str, kind: str, meta: Mapping[str, Any] | None = None) -> Any:
    """The logged model (an nn.Module for torch runs, the plugin's predictor for sklearn runs), rebuilt from the
    files of its `data/regbench/` folder without unpickling anything (`harness.tracking.logged_model.load`). The
    model is the run's `MODEL_NAME_TAG` one (runs logged before models were named: `model`). With `meta` (the
    run's `regbench_meta.json`), the model's own copy must agree with it on what defines the model."""
    from harness.tracking import logged_model

    os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "false"  # no MLflow loader of ours may unpickle either
    configure()
    with tempfile.TemporaryDirectory() as tmp:
        where = f"{logged_model_name(run_id)}/data/{logged_model.DATA_FOLDER}"
        try:
            folder = mlflow.artifacts.download_artifacts(run_id=run_id, dst_path=tmp, artifact_path=where)
        except Exception as err:  # MlflowException / OSError: no such artifact
            raise logged_model.UnsafeModelError(f"run {run_id} has no {where} folder of a regbench model "
                                                f"({type(err).__name__}); re-train it") from None  # fmt: skip
        own = logged_model.read_meta(Path(folder))
        if own["kind"] != kind:
            raise ValueError(f"run {run_id} holds a {own['kind']} model, not a {kind} one")
        differ = [k for k in logged_model.DEFINING if meta is not None and own.get(k) != meta.get(k)]
        if differ:
            raise ValueError(f"run {run_id}: its {META_ARTIFACT} and its logged model's copy disagree on "
                             f"{', '.join(differ)} (e.g. model {meta.get('model')!r} vs {own.get('model')!r}); "
                             "refusing to score with either")  # fmt: skip
        return logged_model.load(Path(folder))


def logged_model_name(run_id: str) -> str:
    """The name of the run's logged model (`MODEL_NAME_TAG`; `model` for runs logged before models were named)."""
    try:
        return client().get_run(run_id).data.tags.get(MODEL_NAME_TAG, "model")
    except Exception:  # MlflowException: no such run; download_artifacts then says so
        return "model"


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
               status: str = "FAILED", description: str = "") -> str:  # fmt: skip
    """Create a run holding only tags (and `description`, its note in the UI), ended at once with `status` (e.g. a
    benchmark cell that could not run)."""
    all_tags = {"git_sha": git_sha(), **tags, **({PARENT_TAG: parent_run_id} if parent_run_id else {}),
                **({NOTE_TAG: description} if description else {})}  # fmt: skip
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

    def metrics(self, values: Mapping[str, float], step: int | None = None) -> None:
        for key, value in values.items():
            if value is not None and value == value:  # drop NaN
                self._client.log_metric(self.run_id, key, float(value), step=step or 0)

    def tags(self, values: Mapping[str, Any]) -> None:
        set_tags(self.run_id, values)

    def text(self, text: str, name: str) -> None:
        self._client.log_text(self.run_id, text, name)

    def description(self, markdown: str) -> None:
        """The run's description (`mlflow.note.content`), shown as Markdown on its page in the UI."""
        self._client.set_tag(self.run_id, NOTE_TAG, markdown)

    def ui_table(self, frame: Any, name: str) -> None:
        """A pandas DataFrame as an MLflow table (`name` ending in .json, the format of `mlflow.log_table`), which
        the UI shows as a table. Written directly because `log_table` appends to an existing file, and a reused run
        must get the new table, not both."""
        if not name.endswith(".json"):
            raise ValueError(f"an MLflow table is a .json artifact, not {name!r}")
        self.text(frame.to_json(orient="split", index=False, date_format="iso"), name)
        logged = json.loads(self._client.get_run(self.run_id).data.tags.get(MLFLOW_LOGGED_ARTIFACTS, "[]"))
        entry = {"path": name, "type": "table"}
        if entry not in logged:
            self._client.set_tag(self.run_id, MLFLOW_LOGGED_ARTIFACTS, json.dumps([*logged, entry]))

    def table(self, frame: Any, name: str) -> None:
        """A pandas DataFrame as a CSV artifact."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(name).name
            frame.to_csv(path, index=False)
            folder = str(Path(name).parent) if Path(name).parent != Path(".") else None
            self._client.log_artifact(self.run_id, str(path), folder)


def _reusable_run(experiment_id: str, tags: Mapping[str, str]) -> str | None:
    """The newest top-level, ended run of the experiment carrying all of `tags`, or None."""
    query = " AND ".join([*(f"tags.`{k}` = '{v}'" for k, v in tags.items()), "attributes.status != 'RUNNING'"])
    found = [r for r in client().search_runs([experiment_id], query, order_by=["attributes.start_time DESC"])
             if PARENT_TAG not in r.data.tags]  # fmt: skip
    return found[0].info.run_id if found else None


@contextmanager
def client_run(experiment: str, run_name: str, tags: Mapping[str, Any] | None = None,
               reuse: tuple[str, ...] = ()) -> Iterator[ClientRun]:  # fmt: skip
    """A top-level run driven through the client (see `ClientRun`); adopts MLFLOW_RUN_ID like `run`. With `reuse`
    (names of `tags`), the newest ended top-level run of the experiment with the same values of those tags is
    reopened instead of creating a new one (so re-running a benchmark keeps one benchmark run, by any entry point:
    under `mlflow run` the launched run is then nested under the reopened one, with a note). It ends FINISHED,
    or FAILED/KILLED on error."""
    experiment_id = ensure_experiment(experiment)
    str_tags = {k: str(v) for k, v in {"git_sha": git_sha(), PROCESS_TAG: process_stamp(), **(tags or {})}.items()}
    close_abandoned_runs(experiment_id)
    c = client()
    launched = os.environ.pop("MLFLOW_RUN_ID", None)
    reopened = _reusable_run(experiment_id, {k: str_tags[k] for k in reuse}) if reuse else None
    if reopened and launched:  # `mlflow run` opened a run of its own: nest it under the reused one, and say so
        set_tags(launched, {PARENT_TAG: reopened, NOTE_TAG: f"Launched by `mlflow run`; the results are in the "
                            f"reopened run {reopened} (`{run_name}`), which this re-run reused."})  # fmt: skip
    if reopened:
        c.update_run(reopened, status="RUNNING", name=run_name)
        set_tags(reopened, str_tags)
        run_id = reopened
    elif launched:
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
