"""Faults and fuzz: a store many processes open at once, limits and names, exit codes, disk full, signals,
leftovers, resume across stores. Each case goes through the real CLI (`harness.cli.main`, or `regbench` in a
subprocess where processes or signals are the point) on tiny synthetic work, and must end with a clear one-line
error (exit 2) or succeed as stated; never a traceback."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest

from tests.test_bad_inputs import Outcome, run

REGBENCH = [sys.executable, "-m", "harness.cli"]
TINY_TRAIN = ["train", "--task", "enhancers.synthetic", "--model", "kmer_logreg", "--set", "data.n=200"]


def one_line_error(outcome: Outcome, *names: str) -> None:
    """Exit 2 with a one-line error naming each of `names`, and no traceback."""
    assert outcome.code == 2, outcome.text
    assert "Traceback" not in outcome.text, outcome.text
    lines = [line for line in outcome.text.splitlines() if "error:" in line]
    assert len(lines) == 1, outcome.text
    for name in names:
        assert name in lines[0], f"{name!r} not named in: {lines[0]}"


# --- item 1: the tracking store ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_eight_trains_at_once_on_a_fresh_store_then_four_on_the_same_store(tmp_path: Path) -> None:
    """MLflow's migrations of a fresh SQLite store race without regbench's file lock (before: all 8 failed, and
    every later command on that store too); then 4 at once use the migrated store."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'fresh.db'}"}
    for round_, n in ((1, 8), (2, 4)):  # 8 on the fresh store: the migrations' race; 4 are enough to share it after
        procs = [subprocess.Popen([*REGBENCH, *TINY_TRAIN], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True) for _ in range(n)]  # fmt: skip
        outs = [p.communicate(timeout=600)[0] for p in procs]
        failed = [out for p, out in zip(procs, outs, strict=True) if p.returncode != 0]
        assert not failed, f"round {round_}: {len(failed)} of {n} failed; first:\n{failed[0][-2000:]}"
        assert all("run_id:" in out for out in outs)


@pytest.mark.parametrize(
    "make_uri, named",
    [
        (lambda tmp: f"sqlite:///{tmp / 'no' / 'such' / 'mlflow.db'}", "does not exist"),
        (lambda tmp: (tmp / "junk.db").write_text("not a database " * 100) and f"sqlite:///{tmp / 'junk.db'}",
         "cannot be opened"),
    ],
    ids=["missing-folder", "not-a-database"],
)  # fmt: skip
def test_a_store_that_cannot_open_is_one_line(make_uri, named: str, tmp_path: Path, monkeypatch, capsys) -> None:
    uri = make_uri(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    one_line_error(run(["report", "--experiment", "x", "--out", str(tmp_path / "r")], capsys), uri, named)


# --- item 8: resume never crosses tracking stores ------------------------------------------------------------------


def test_default_optuna_storage_follows_the_tracking_store(tmp_path: Path, monkeypatch) -> None:
    from harness.tuning.study_storage import default_storage

    monkeypatch.chdir(tmp_path)
    wanted = {f"sqlite:///{tmp_path / 'a' / 'mlflow.db'}": f"sqlite:///{tmp_path / 'a' / 'optuna.db'}",
              f"sqlite:///{tmp_path / 'b.db'}": f"sqlite:///{tmp_path / 'b.optuna.db'}",
              "http://127.0.0.1:5000": f"sqlite:///{tmp_path / 'optuna.db'}"}  # fmt: skip
    for uri, storage in wanted.items():
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        assert default_storage() == storage


def test_trials_whose_runs_are_in_another_store_are_not_reused(tmp_path: Path, monkeypatch) -> None:
    import optuna

    from harness.config import ConfigError
    from harness.tracking import store
    from harness.tuning.study_storage import require_trials_in_store

    with store.run("here", "a trial") as log:
        here = log.run_id
    study = optuna.create_study(direction="maximize")
    for run_id in (here, "0123456789abcdef0123456789abcdef"):
        study.add_trial(optuna.trial.create_trial(value=0.5, user_attrs={"mlflow_run_id": run_id}))
    require_trials_in_store(study.trials[:1], "here", "s", "sqlite:///x.db")  # its run is here: reused
    with pytest.raises(ConfigError, match=r"1 finished trial\(s\) whose MLflow runs .*0123456789abcdef.* another"):
        require_trials_in_store(study.trials, "here", "s", "sqlite:///x.db")
    store.client().delete_run(here)  # a deleted run does not count either
    with pytest.raises(ConfigError, match="2 finished trial"):
        require_trials_in_store(study.trials, "here", "s", "sqlite:///x.db")


@pytest.mark.slow
def test_the_same_study_in_one_folder_against_two_fresh_stores(tmp_path: Path, ray_env: dict, monkeypatch,
                                                               capsys) -> None:  # fmt: skip
    """Before: the second store's cell claimed n_trials=2, n_new_trials=0 and held no trial runs (its trials were
    those of the first store's study, through ./optuna.db)."""
    from harness.tracking import store

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAY_TMPDIR", ray_env["RAY_TMPDIR"])
    argv = ["study", "--task", "enhancers.synthetic", "--model", "kmer_logreg", "--trials", "2", "--max-epochs", "1",
            "--set", "data.n=200", "--experiment", "twice"]  # fmt: skip
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / name / 'mlflow.db'}")
        outcome = run(argv, capsys)
        assert outcome.code == 0, outcome.text
        runs = store.search_runs("twice")
        trials = runs[runs["tags.regbench.kind"] == "trial"]
        assert len(trials) == 2 and set(trials["status"]) == {"FINISHED"}, runs[["tags.mlflow.runName", "status"]]
        cell = runs[runs["tags.regbench.kind"] == "cell"].iloc[0]
        assert cell["metrics.n_new_trials"] == 2 and cell["metrics.n_trials"] == 2
        assert (tmp_path / name / "optuna.db").exists()
    assert not (tmp_path / "optuna.db").exists()


# --- item 4: exit codes, failure reasons, retried trials ---------------------------------------------------------

FAILING_STUDY = """\
name: {name}
tasks: [enhancers.synthetic]
models: [kmer_logreg, kmer_attention]
seeds: [0]
trials: 1
max_epochs: 1
tiny: true
shortcuts: false
task_set:
  enhancers.synthetic: {{data.n: 200}}
model_set:
  kmer_logreg: {{model.k: 3}}
  kmer_attention: {{train.lr: 1.0e30, train.grad_clip: 0, train.warmup_frac: 0, train.progress: false}}
"""


@pytest.fixture
def ray_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of a `regbench` that starts its own local Ray in a short temporary folder (Ray's socket
    paths have a length limit), removed afterwards; its store is `tmp_path/mlflow.db`."""
    with tempfile.TemporaryDirectory(prefix="rayf", dir="/tmp") as short:
        yield {**os.environ, "RAY_TMPDIR": short, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}


@pytest.mark.slow
def test_a_benchmark_with_a_failed_cell_exits_1_with_a_plain_reason(tmp_path: Path, ray_env: dict) -> None:
    """Before: exit 0, and a reason that was Ray's header with colour codes. The cell whose trials all raise fails
    (its trial FAILs once: an error in a trial is not retried); the other cell is kept."""
    from harness.tracking import store

    (tmp_path / "fail.yaml").write_text(FAILING_STUDY.format(name="failing"))
    done = subprocess.run([*REGBENCH, "benchmark", "--study", "fail.yaml", "--no-progress"], cwd=tmp_path,
                          env=ray_env, capture_output=True, text=True, timeout=900)  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "2 cells (1 ran, 0 reused, 1 failed, 0 unable)" in done.stdout and "Traceback" not in done.stderr
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cells = store.search_runs("failing", "tags.`regbench.kind` = 'cell'")
    by_model = {row["tags.model"]: row for _, row in cells.iterrows()}
    assert by_model["kmer_logreg"]["status"] == "FINISHED"
    reason = by_model["kmer_attention"]["tags.regbench.skip_reason"]
    assert reason.startswith("StudyFailedError: study") and "no trial completed (1 failed)" in reason, reason
    assert "\x1b" not in reason and "FloatingPointError" in reason
    trials = store.search_runs("failing", "tags.`regbench.kind` = 'trial' AND tags.model = 'kmer_attention'")
    assert list(trials["status"]) == ["FAILED"]  # once, not retried
    assert not len(store.search_runs("failing", "attributes.status = 'RUNNING'"))


Victim = Callable[[pd.DataFrame], int | None]  # the RUNNING trial runs → the PID to kill, None: not yet


def kill_during_a_trial(proc: subprocess.Popen, folder: Path, experiment: str, victim: Victim,
                        interval_s: float = 1.0) -> int | None:  # fmt: skip
    """While `proc` runs (at most 600 s), poll the store `folder/mlflow.db` for the RUNNING trial runs of
    `experiment`; SIGKILL the process `victim(trials)` names (None: not yet) and return its PID."""
    from harness.tracking import store

    killed, deadline = None, time.monotonic() + 600
    while killed is None and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(interval_s)
        if not (folder / "mlflow.db").exists():
            continue
        trials = store.search_runs(experiment, "tags.`regbench.kind` = 'trial' AND attributes.status = 'RUNNING'")
        killed = victim(trials) if len(trials) else None
        if killed is not None:
            os.kill(killed, signal.SIGKILL)
    return killed


@pytest.mark.slow
def test_a_trial_whose_worker_is_killed_is_retried_and_counted(tmp_path: Path, ray_env: dict) -> None:
    """Before: the trial ended KILLED, was not retried, and nothing counted it. The trial is long enough (12 epochs of
    ≥ 1 s) to be seen RUNNING by the 1 s poll, and short enough that its retry finishes soon."""
    from harness.tracking import store
    from harness.tracking.run_owner import PROCESS_TAG

    env = ray_env
    argv = ["study", "--task", "enhancers.synthetic", "--model", "kmer_attention", "--trials", "1", "--max-epochs",
            "12", "--experiment", "killed", "--set", "data.n=600", "--set", "train.progress=false"]  # fmt: skip
    proc = subprocess.Popen([*REGBENCH, *argv], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    os.environ["MLFLOW_TRACKING_URI"] = env["MLFLOW_TRACKING_URI"]

    def trial_process(trials: pd.DataFrame) -> int | None:
        return int(trials[f"tags.{PROCESS_TAG}"].iloc[0].split(":")[1]) if f"tags.{PROCESS_TAG}" in trials else None

    killed = kill_during_a_trial(proc, tmp_path, "killed", trial_process)
    out = proc.communicate(timeout=900)[0]
    assert killed is not None, out
    assert proc.returncode == 0, out
    runs = store.search_runs("killed")
    cell = runs[runs["tags.regbench.kind"] == "cell"].iloc[0]
    assert cell["metrics.n_trials_retried"] == 1 and cell["metrics.n_trials"] == 1
    trials = runs[runs["tags.regbench.kind"] == "trial"]
    assert sorted(trials["status"]) == ["FINISHED", "KILLED"], trials[["tags.mlflow.runName", "status"]]


# --- item 3: limits and names ------------------------------------------------------------------------------------

DEEP = "[" * 3000 + "]" * 3000
STUDY = "name: {name}\ntasks: [enhancers.synthetic]\nmodels: [kmer_logreg]\n{extra}\n"


@pytest.mark.fresh_store  # asserts that a refused command creates no store
@pytest.mark.parametrize(
    "argv, named",
    [
        (["train", "--task", "enhancers.synthetic", "--model", "kmer_logreg", "--set", f"model.k={DEEP}"],
         ["--set model.k", "nests deeper than 32"]),
        ([*TINY_TRAIN, "--experiment", ""], ["experiment ''", "1-100 characters"]),
        ([*TINY_TRAIN, "--experiment", "a/../b"], ["experiment 'a/../b'"]),
        ([*TINY_TRAIN, "--experiment", ".."], ["experiment '..'"]),
        ([*TINY_TRAIN, "--experiment", "x" * 101], ["1-100 characters"]),
        (["train", "--task", "enhancers.synthetic", "--model", "kmer_logreg", "--set", "data.n=٣٠٠"],
         ["data.n='٣٠٠'"]),
        ([*TINY_TRAIN, "--max-epochs", "1", "--set", "train.max_epochs=-1"], ["--max-epochs 1", "train.max_epochs=-1"]),
        ([*TINY_TRAIN, "--seed", "99999999999999999999999"], ["train.seed=99999999999999999999999"]),
        (["study", "--task", "enhancers.synthetic", "--model", "kmer_logreg", "--study-name", "../out"],
         ["study name '../out'"]),
        (["study", "--task", "enhancers.synthetic", "--model", "kmer_logreg", "--trials", "1000000000000"],
         ["trials=1000000000000", "[1, 10000]"]),
        (["study", "--task", "enhancers.synthetic", "--model", "kmer_logreg", "--seeds", "0,99999999999999999999999"],
         ["seed=99999999999999999999999"]),
        (["report", "--experiment", "../etc"], ["--experiment '../etc'"]),
    ],
    ids=["set-deep", "experiment-empty", "experiment-slash", "experiment-dots", "experiment-long", "set-arabic-digits",
         "max-epochs-twice", "seed-huge", "study-name", "trials-huge", "seeds-huge", "report-name"],
)  # fmt: skip
def test_bad_names_and_counts_on_the_command_line(argv: list[str], named: list[str], tmp_path: Path, capsys) -> None:
    one_line_error(run(argv, capsys), *named)
    assert not (tmp_path / "mlflow.db").exists() or "report" in argv  # refused before any run opened


def test_only_ascii_digits_are_numbers_on_the_command_line(capsys) -> None:
    outcome = run(["study", "--task", "enhancers.synthetic", "--model", "kmer_logreg", "--trials", "٣"], capsys)
    assert outcome.code == 2 and "'٣' is not an integer of ASCII digits" in outcome.text


@pytest.mark.fresh_store  # asserts that a refused command creates no store
@pytest.mark.parametrize(
    "name, extra, line, named",
    [
        ("deep", f"set: {{data.n: {DEEP}}}", 4, "nested deeper than 32 levels"),
        ("../outside", "", 1, "name (the MLflow experiment) '../outside' is invalid"),
        ("a/b", "", 1, "'a/b' is invalid"),
        ("ok", "trials: 1000000000000", 4, "trials='1000000000000': must be an integer in [1, 10000]"),
        ("ok", "seeds: [0, 99999999999999999999999]", 4, "seeds entry='99999999999999999999999'"),
        ("ok", "max_epochs: 0", 4, "max_epochs='0'"),
        ("ok", "concurrency: 5000", 4, "concurrency='5000'"),
        ("ok", "set: {data.n: ٣٠٠}", 4, "data.n='٣٠٠'"),
    ],
    ids=["deep", "name-dots", "name-slash", "trials", "seeds", "max-epochs", "concurrency", "arabic-digits"],
)
def test_bad_study_files_name_file_and_line(name, extra, line, named, tmp_path: Path, capsys) -> None:
    path = tmp_path / "study.yaml"
    path.write_text(STUDY.format(name=name, extra=extra))
    one_line_error(run(["benchmark", "--study", str(path)], capsys), f"{path}:{line}:", named)
    assert not (tmp_path / "mlflow.db").exists()


def test_report_without_out_and_refused_runs(tmp_path: Path, monkeypatch, capsys) -> None:
    """`report` without `--out` (before: TypeError); `predict` on a deleted run (before: scored), on a run whose
    two meta copies disagree (before: scored), and on one whose hyperparameters do not fit its plugin (before:
    TypeError from the plugin's build)."""
    import json

    from harness.tracking import store

    monkeypatch.chdir(tmp_path)
    trained = run(TINY_TRAIN, capsys)
    assert trained.code == 0, trained.text
    run_id = re.search(r"^run_id: (\w+)$", trained.text, re.M).group(1)
    reported = run(["report", "--experiment", "regbench", "--no-log"], capsys)
    assert reported.code == 0 and (tmp_path / "reports" / "regbench" / "report.html").is_file(), reported.text

    seqs = tmp_path / "seqs.fa"
    seqs.write_text(">a\n" + "ACGT" * 50 + "\n>b\n" + "TTGA" * 50 + "\n")  # the task's fixed length, 200
    predict = ["predict", "--run", run_id, "--input", str(seqs), "--output", str(tmp_path / "out.tsv")]
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    assert run(predict, capsys).code == 0
    assert not list((tmp_path / "tmp").iterdir())  # before: a tmpXXXXXXXX/regbench_meta.json left per predict
    copies = sorted(tmp_path.glob("mlartifacts/**/regbench_meta.json"))
    own = next(p for p in copies if "data/regbench" in str(p))
    run_copy = next(p for p in copies if p != own)
    original = json.loads(own.read_text())

    run_copy.write_text(json.dumps({**original, "model": "gc_length"}))
    one_line_error(run(predict, capsys), f"run {run_id}", "disagree on model")
    for copy in (own, run_copy):
        copy.write_text(json.dumps({**original, "hp": {**original["hp"], "no_such_setting": 1}}))
    one_line_error(run(predict, capsys), "do not fit plugin kmer_logreg", "no_such_setting")
    for copy in (own, run_copy):
        copy.write_text(json.dumps(original))
    store.client().delete_run(run_id)
    one_line_error(run(predict, capsys), f"run {run_id} is deleted")


@pytest.mark.slow
def test_lm_check_on_a_broken_checkpoint_is_one_line(tmp_path: Path, capsys) -> None:
    """A truncated safetensors file (before: SafetensorError) and a config.json field of the wrong type (before:
    TypeError from torch)."""
    import json
    import shutil

    root = Path(
        os.environ.get("REGBENCH_LM_CHECKPOINTS") or Path(__file__).resolve().parents[2] / "shared" / "lm_checkpoints"
    )
    if not (root / "nt-v2-tiny" / "config.json").is_file():
        pytest.skip(f"no weight-less LM checkpoints at {root} (set REGBENCH_LM_CHECKPOINTS)")
    saved = tmp_path / "saved"
    built = run(["lm", "check", str(root / "nt-v2-tiny"), "--random-init", "--save", str(saved), "--n", "2"], capsys)
    assert built.code == 0, built.text
    weights = saved / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    one_line_error(
        run(["lm", "check", str(saved), "--n", "2"], capsys), f"checkpoint {saved}", "failed to build or load"
    )
    typed = tmp_path / "typed"
    shutil.copytree(root / "nt-v2-tiny", typed)
    config = json.loads((typed / "config.json").read_text())
    (typed / "config.json").write_text(json.dumps({**config, "hidden_size": "wide"}))
    one_line_error(run(["lm", "check", str(typed), "--random-init", "--n", "2"], capsys), f"checkpoint {typed}")


# --- item 5: a full disk -----------------------------------------------------------------------------------------


@pytest.fixture
def full_folder(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs at `tmp_path/full`, filled up (needs root to mount; skipped where it cannot)."""
    full = tmp_path / "full"
    full.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(full)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        with contextlib.suppress(OSError), open(full / "filler", "wb") as filler:
            while True:
                filler.write(b"\0" * 4096)
                filler.flush()
        yield full
    finally:
        subprocess.run(["umount", "-l", str(full)], check=True)


@pytest.mark.parametrize("model", ["kmer_logreg", "kmer_attention"])
def test_a_full_disk_names_the_folder_and_the_run_ends_failed(model: str, full_folder: Path, tmp_path: Path,
                                                               capsys) -> None:  # fmt: skip
    """Before: tracebacks, the weights file lost, the run left RUNNING until the next run closed it. The store
    (mlflow.db) can still be written; its artifact folder is on the full disk."""
    from harness.tracking import store

    (tmp_path / "mlartifacts").symlink_to(full_folder)
    argv = ["train", "--task", "enhancers.synthetic", "--model", model, "--set", "data.n=200", "--max-epochs", "1",
            "--set", "train.progress=false"]  # fmt: skip
    one_line_error(run(argv, capsys), "No space left on device", str(tmp_path / "mlartifacts" / "regbench"))
    runs = store.search_runs("regbench")
    assert list(runs["status"]) == ["FAILED"]
    assert not [p for p in full_folder.rglob("*") if p.name.endswith((".safetensors", ".skops", ".partial"))]


# --- item 6: signals ---------------------------------------------------------------------------------------------

LONG_STUDY = """\
name: {name}
tasks: [enhancers.synthetic]
models: [kmer_attention]
seeds: [0]
trials: 2
max_epochs: 40
tiny: true
shortcuts: false
task_set:
  enhancers.synthetic: {{data.n: 600}}
model_set:
  kmer_attention: {{train.progress: false}}
"""


def train_workers(ray_tmp: str) -> list[int]:
    """PIDs of the Ray Train workers of the Ray whose files are in `ray_tmp` (its processes inherit RAY_TMPDIR)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"RayTrainWorker" in cmdline and f"RAY_TMPDIR={ray_tmp}".encode() in environ:
            pids.append(int(entry.name))
    return pids


@pytest.mark.slow
@pytest.mark.serial  # asserts a wall-clock limit
@pytest.mark.parametrize(("signum", "workers"), [(signal.SIGINT, 1), (signal.SIGTERM, 2)], ids=["SIGINT", "SIGTERM"])
def test_a_signal_ends_a_benchmark_within_10_s_with_nothing_running(signum: int, workers: int, tmp_path: Path,
                                                                     ray_env: dict) -> None:  # fmt: skip
    """Before: `timeout -s INT` did not end it within 10 s (SIGKILLed), its benchmark run left RUNNING. Started as
    a background job of a shell (`&`), which starts it with SIGINT ignored. The SIGINT case is signalled once its
    trial has logged an epoch: exit 130, and the trials and the cell end KILLED (before: a trial stopped this way
    ended FINISHED, by Tune stopping it afterwards), not marked `stopped_by`. The SIGTERM case runs its trials on 2
    Ray Train workers each and is signalled once they train: none of them is left."""
    import shlex
    import time

    from harness.tracking import store

    (tmp_path / "long.yaml").write_text(LONG_STUDY.format(name="long") + f"workers_per_trial: {workers}\n")
    env = ray_env
    command = " ".join(shlex.quote(a) for a in [*REGBENCH, "benchmark", "--study", "long.yaml", "--no-progress"])
    # `wait $!`: the shell exits with regbench's status
    shell = subprocess.Popen(["bash", "-c", f"{command} > out.txt 2>&1 & echo $!; wait $!"], cwd=tmp_path,
                             env=env, stdout=subprocess.PIPE, text=True)  # fmt: skip
    pid = int(shell.stdout.readline())
    os.environ["MLFLOW_TRACKING_URI"] = env["MLFLOW_TRACKING_URI"]
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and shell.poll() is None:
        time.sleep(1)
        if (tmp_path / "mlflow.db").exists():
            trials = store.search_runs("long", "tags.`regbench.kind` = 'trial' AND attributes.status = 'RUNNING'")
            if workers == 1:  # an epoch logged: the trial trains
                ready = "metrics.train_loss" in trials and trials["metrics.train_loss"].notna().any()
            else:
                ready = len(trials) > 0 and len(train_workers(env["RAY_TMPDIR"])) >= workers
            if ready:
                break
    assert shell.poll() is None, (tmp_path / "out.txt").read_text()
    sent = time.monotonic()
    os.kill(pid, signum)
    try:
        shell.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.kill(pid, signal.SIGKILL)  # not left to slow the tests after this one
        pytest.fail(f"still running 60 s after {signal.Signals(signum).name}:\n{(tmp_path / 'out.txt').read_text()}")
    took = time.monotonic() - sent
    out = (tmp_path / "out.txt").read_text()
    assert "interrupted" in out and "Traceback" not in out, out
    assert took <= 10, f"{took:.1f} s"
    runs = store.search_runs("long")
    assert not len(runs[runs["status"] == "RUNNING"]), runs[["tags.mlflow.runName", "status"]]
    bench = runs[runs["tags.regbench.kind"] == "benchmark"]
    assert list(bench["status"]) == ["KILLED"]
    assert not train_workers(env["RAY_TMPDIR"])
    if workers == 1:
        assert shell.returncode == 130, out
        status = runs.groupby("tags.regbench.kind")["status"].apply(set).to_dict()
        assert status["trial"] == status["cell"] == {"KILLED"}, status
        assert "tags.regbench.stopped_by" not in runs.dropna(axis=1, how="all")


# --- item 7: a local Ray's address and folders --------------------------------------------------------------------


@pytest.mark.slow
def test_a_local_ray_listens_on_loopback_and_keeps_its_session_private(ray_env: dict, monkeypatch) -> None:
    """Before: its node address was the machine's outward one, its servers on every interface, its session folder
    0777. (Ray turns `_node_ip_address="127.0.0.1"` into the outward address unless
    RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, which `local_ray_auth` sets before Ray is imported; conftest calls it.)"""
    import ray

    from harness.tuning.ray_connection import ray_connection

    assert os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0"
    monkeypatch.setenv("RAY_TMPDIR", ray_env["RAY_TMPDIR"])
    with ray_connection(None, 1):
        assert [n["NodeManagerAddress"] for n in ray.nodes()] == ["127.0.0.1"]
        gcs_host = ray.get_runtime_context().gcs_address.rsplit(":", 1)[0]
        assert gcs_host == "127.0.0.1"
        sessions = [p for p in Path(ray_env["RAY_TMPDIR"]).glob("session_2*") if p.is_dir()]
        assert sessions and all(p.stat().st_mode & 0o777 == 0o700 for p in sessions)
