"""Plugins from outside the repository: `--plugins`, `$REGBENCH_PLUGINS`, a study file's `plugins:`, installed entry
points; their origin on every run; their logged models reloaded; broken ones refused in one line."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from harness import plugins
from harness.paths import TOOL_CACHES
from harness.tracking import store
from tests.outside_plugin import write_model, write_task
from tests.test_bad_inputs import assert_clean_error, run
from tests.test_home_untouched import written_under

BIN = Path(sys.executable).parent
TINY_TRAIN = ["--task", "enhancers.synthetic", "--max-epochs", "1", "--set", "data.n=200", "--set",
              "train.progress=false"]  # fmt: skip


@pytest.fixture(autouse=True)
def fresh_registries() -> Iterator[None]:
    """Whatever a test registers from outside is forgotten afterwards (its modules too)."""
    plugins.load_plugins()
    saved = (dict(plugins.MODELS._entries), dict(plugins.TASKS._entries), dict(plugins._Loaded.sources),
             dict(plugins._Loaded.by_path), list(plugins._Loaded.broken))  # fmt: skip
    yield
    for source in set(plugins._Loaded.sources) - set(saved[2]):
        sys.modules.pop(plugins._Loaded.sources[source].module, None)
    plugins.MODELS._entries, plugins.TASKS._entries = saved[0], saved[1]
    plugins._Loaded.sources, plugins._Loaded.by_path, plugins._Loaded.broken = saved[2], saved[3], saved[4]


def test_listed_with_origin_from_option_and_env(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    path = write_model(tmp_path / "a", "outside_a")
    listed = run(["models", "--plugins", str(path)], capsys)
    assert listed.code == 0, listed.text
    line = next(x for x in listed.text.splitlines() if x.startswith("outside_a "))
    assert f"[from {path} sha256:" in line
    other = write_model(tmp_path / "b", "outside_b")
    monkeypatch.setenv("REGBENCH_PLUGINS", f"{other}{os.pathsep}")
    listed = run(["models"], capsys)
    assert "outside_b " in listed.text and "outside_a " in listed.text  # the earlier --plugins stays loaded


def test_an_outside_task_lists_and_trains(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_task(tmp_path, "outside.gata")
    listed = run(["tasks", "--plugins", str(path)], capsys)
    assert f"outside GATA task  [from {path} sha256:" in listed.text, listed.text
    done = run(["train", "--plugins", str(path), "--task", "outside.gata", "--model", "kmer_logreg",
                "--set", "train.progress=false"], capsys)  # fmt: skip
    assert done.code == 0, done.text
    run_id = re.search(r"^run_id: (\w+)$", done.text, re.M).group(1)
    tags = MlflowClient(store.tracking_uri()).get_run(run_id).data.tags
    assert tags["regbench.plugin_source"] == plugins.TASKS.entry("outside.gata").origin


def _package(folder: Path) -> Path:
    (folder / "pkg_plugin").mkdir(parents=True)
    write_model(folder / "pkg_plugin", "outside_pkg", file="__init__")
    return folder / "pkg_plugin"


def test_a_package_folder_is_a_plugin(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    listed = run(["models", "--plugins", str(_package(tmp_path))], capsys)
    assert "outside_pkg " in listed.text and "sha256:" in listed.text, listed.text


BROKEN = {
    "missing": (None, ["does-not-exist.py", "no such file or folder"]),
    "not-python": ({"write": "notes.txt"}, ["notes.txt", "not Python"]),
    "no-init": ({"folder": True}, ["not a Python package"]),
    "registers-nothing": ({"replace": {"register_model(ModelPlugin(": "(dict("}}, ["registers no model or task"]),
    "raises-at-import": ({"replace": {"import os\n": "import os\nraise RuntimeError('no GPU driver')\n"}},
                         ["RuntimeError: no GPU driver", ".py:4)"]),
    "built-in-name": ({"name": "kmer_logreg"}, ["model 'kmer_logreg' is already registered (built-in)"]),
    "setting-without-default": ({"replace": {"def build(io, *, width)": "def build(io, *, width, depth)"}},
                                ["keyword-only parameter(s) ['depth'] have no declared default"]),
    "module-name-taken": ({"file": "json"}, ["the module name 'json' is already taken"]),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_plugin_is_one_line_before_anything_runs(case: str, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    how, named = BROKEN[case]
    how = how or {}
    if case == "missing":
        path = tmp_path / "does-not-exist.py"
    elif "write" in how:
        path = tmp_path / how["write"]
        path.write_text("print('hello')\n")
    elif "folder" in how:
        path = tmp_path / "plain_folder"
        path.mkdir()
    else:
        path = write_model(tmp_path, how.get("name", f"outside_{case.replace('-', '_')}"), file=how.get("file", ""),
                           replace=how.get("replace"))  # fmt: skip
    outcome = run(["train", "--plugins", str(path), "--model", "kmer_logreg", *TINY_TRAIN], capsys)
    assert outcome.code == 2
    assert_clean_error(outcome, str(path.name), *named)
    assert len(outcome.text.strip().splitlines()) == 1, outcome.text
    assert "kmer_logreg" not in plugins.MODELS or plugins.MODELS.entry("kmer_logreg").origin == "built-in"


def test_a_clash_with_the_study_file_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_model(tmp_path, "basset", file="mine")
    study = tmp_path / "study.yaml"
    study.write_text("tasks: [enhancers.synthetic]\nmodels: [basset]\nplugins:\n  - mine.py\n")
    outcome = run(["benchmark", "--study", str(study), "--no-progress"], capsys)
    assert outcome.code == 2
    assert_clean_error(outcome, "study.yaml:4", "mine.py", "model 'basset' is already registered (built-in)")


@pytest.mark.slow
def test_trained_tagged_and_scored_from_its_logged_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_model(tmp_path / "plug", "outside_train")
    done = run(["train", "--plugins", str(path), "--model", "outside_train", *TINY_TRAIN], capsys)
    assert done.code == 0, done.text
    run_id = re.search(r"^run_id: (\w+)$", done.text, re.M).group(1)
    source = MlflowClient(store.tracking_uri()).get_run(run_id).data.tags["regbench.plugin_source"]
    assert source == plugins.MODELS.entry("outside_train").origin and source.startswith(f"{path} sha256:")
    exported = tmp_path / "test.tsv"
    assert run(["export", "--task", "enhancers.synthetic", "--set", "data.n=200", "--split", "test", "--out",
                str(exported)], capsys).code == 0  # fmt: skip
    plugins.MODELS._entries.pop("outside_train")  # a new process: the plugin is not loaded, its file unchanged
    plugins._Loaded.sources.pop(str(path))
    plugins._Loaded.by_path.clear()
    sys.modules.pop("outside_train")
    scored = run(["predict", "--run", run_id, "--input", str(exported), "--output", str(tmp_path / "s.tsv")], capsys)
    assert scored.code == 0, scored.text
    assert len((tmp_path / "s.tsv").read_text().splitlines()) == len(exported.read_text().splitlines())
    plugins.MODELS._entries.pop("outside_train")
    plugins._Loaded.sources.pop(str(path))
    sys.modules.pop("outside_train")
    path.write_text(path.read_text() + "\n# edited\n")
    refused = run(["predict", "--run", run_id, "--input", str(exported), "--output", str(tmp_path / "t.tsv")], capsys)
    assert_clean_error(refused, "'outside_train' comes from the outside plugin", source, "--plugins")


ENTRY_PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "{name}"
version = "0.3.1"

[project.entry-points."regbench.models"]
{model} = "{module}"
"""


def _install(tmp_path: Path, name: str, module: str, source: str, target: Path) -> None:
    """Build and install a package whose entry point `regbench.models` names `module` into `target`."""
    project = tmp_path / name
    (project / module).mkdir(parents=True)
    (project / module / "__init__.py").write_text(source)
    (project / "pyproject.toml").write_text(ENTRY_PYPROJECT.format(name=name, model=module, module=module))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "--target", str(target), str(project)], check=True, capture_output=True, timeout=300)  # fmt: skip


@pytest.mark.slow
def test_installed_entry_points_good_and_broken(tmp_path: Path) -> None:
    target = tmp_path / "site"
    write_model(tmp_path / "src", "outside_installed")
    _install(tmp_path, "outside-models", "outside_installed", (tmp_path / "src/outside_installed.py").read_text(),
             target)  # fmt: skip
    _install(tmp_path, "broken-models", "broken_models", "raise ImportError('needs a CUDA build of torch')\n", target)
    env = {**os.environ, "PYTHONPATH": str(target), "REGBENCH_CACHE": str(tmp_path / "cache")}
    (tmp_path / "outside_installed").mkdir()  # a project folder of the module's name where regbench runs (Ray
    # workers and `python -m` put the working folder first on sys.path): not imported as an empty namespace package
    listed = subprocess.run([sys.executable, "-m", "harness.cli", "models"], env=env, capture_output=True, text=True,
                            timeout=300, cwd=tmp_path)  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert "outside CNN  [from outside-models==0.3.1]" in listed.stdout
    assert ("broken plugin entry point broken_models = broken_models (broken-models==0.3.1): ImportError: needs a "
            "CUDA build of torch") in listed.stdout  # fmt: skip
    # the broken one does not stop a command that does not use it (here one that uses its installed neighbour)
    done = subprocess.run([str(BIN / "regbench"), "train", "--model", "outside_installed", *TINY_TRAIN], env=env,
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    run_id = done.stdout.strip().splitlines()[-1].removeprefix("run_id: ")
    tags = MlflowClient(store.tracking_uri()).get_run(run_id).data.tags
    assert tags["regbench.plugin_source"] == "outside-models==0.3.1"
    unknown = subprocess.run([str(BIN / "regbench"), "train", "--model", "broken_models", *TINY_TRAIN], env=env,
                             capture_output=True, text=True, timeout=300)  # fmt: skip
    assert unknown.returncode == 2 and "Traceback" not in unknown.stderr
    assert "unknown model 'broken_models'" in unknown.stderr and "needs a CUDA build" in unknown.stderr


@pytest.mark.slow
def test_benchmark_on_local_ray_ships_the_plugin_and_reruns_when_it_changes(tmp_path: Path, ray_tmp: str) -> None:
    """The benchmarks run with an empty HOME and no tool-cache variables set: Ray, Tune, the trials and the reports
    write nothing under it."""
    path = write_model(tmp_path / "plug", "outside_bench")
    study = tmp_path / "study.yaml"
    study.write_text("name: outside\ntasks: [enhancers.synthetic]\nmodels: [outside_bench]\n"
                     "plugins: [plug/outside_bench.py]\ntrials: 2\nmax_epochs: 1\ntiny: true\nshortcuts: false\n"
                     "set: {data.n: 200}\n")  # fmt: skip
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in TOOL_CACHES and not k.startswith("XDG_")}
    env |= {"RAY_TMPDIR": ray_tmp, "HOME": str(home)}  # without TOOL_CACHES: earlier tests of this process set some
    argv = [str(BIN / "regbench"), "benchmark", "--study", str(study), "--no-progress"]

    def bench() -> str:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    first = bench()
    origin = f"{path} sha256:"
    assert "1 cells (1 ran, 0 reused, 0 failed, 0 unable)" in first
    assert f"plugin from {origin}" in (tmp_path / "reports/outside/leaderboard.md").read_text()
    client = MlflowClient(store.tracking_uri())
    runs = client.search_runs([client.get_experiment_by_name("outside").experiment_id])
    worked = [r for r in runs if r.data.tags["regbench.kind"] in ("trial", "refit")]
    assert sorted(r.data.tags["regbench.kind"] for r in worked) == ["refit", "trial", "trial"]
    assert all(r.data.tags["regbench.plugin_source"].startswith(origin) for r in worked)
    assert all(r.data.tags.get("ray_trial_id") for r in worked)  # each one a Ray Tune trial, in a Ray worker
    assert "1 cells (0 ran, 1 reused, 0 failed, 0 unable)" in bench()
    path.write_text(path.read_text().replace("padding=4", "padding=4, bias=False"))
    assert "1 cells (1 ran, 0 reused, 0 failed, 0 unable)" in bench()  # another digest: the old cell is not reused
    assert written_under(home) == []


def test_the_public_api_is_one_small_module() -> None:
    """What `harness.api` exports is the promise to plugin authors: changing it must be deliberate (and documented);
    the outside plugin of these tests imports nothing else of regbench."""
    import ast

    import harness.api

    assert harness.api.__all__ == [
        "Batch", "ConfigError", "Dataset", "Encoder", "IOSpec", "ModelPlugin", "Predictor", "SeqDataset", "Seqs",
        "Setting", "Settings", "SplitTask", "Splits", "Task", "binary_metrics", "register_model", "register_task",
    ]  # fmt: skip
    assert all(hasattr(harness.api, name) for name in harness.api.__all__)
    from tests.outside_plugin import MODEL

    imported = {n.module for n in ast.walk(ast.parse(MODEL)) if isinstance(n, ast.ImportFrom)}
    assert {m for m in imported if m and m.startswith("harness")} == {"harness.api"}
