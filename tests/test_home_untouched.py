"""Nothing is written under the user's home: tool caches (matplotlib, torch inductor, triton) go under
`$REGBENCH_CACHE/tools` (`harness.paths.use_project_caches`), unless the user set them. A benchmark on a local
Ray with an empty HOME: tests/test_outside_plugins.py."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from harness.paths import TOOL_CACHES, use_project_caches

ROOT = Path(__file__).resolve().parents[1]


def regbench(args: list[str], tmp_path: Path) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """`regbench ARGS` in a fresh process with an empty HOME (returned) and no tool-cache variables set."""
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in TOOL_CACHES and not k.startswith("XDG_")}
    env |= {
        "HOME": str(home),
        "REGBENCH_CACHE": str(tmp_path / "cache"),
        "PYTHONPATH": str(ROOT),
        "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
        "RAY_TMPDIR": os.environ.get("RAY_TMPDIR") or tempfile.mkdtemp(prefix="ray-"),
    }  # short: socket paths
    done = subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=work, env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    return home, done


def written_under(home: Path) -> list[str]:
    return sorted(str(p.relative_to(home)) for p in home.rglob("*"))


def test_train_writes_nothing_under_home(tmp_path: Path) -> None:
    home, done = regbench(["train", "--task", "enhancers.synthetic", "--model", "kmer_attention", "--max-epochs", "1",
                           "--set", "data.n=200", "--set", "model.d_model=16", "--set", "model.head_dim=16",
                           "--set", "train.progress=false"], tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert written_under(home) == []
    assert (tmp_path / "cache" / "tools" / "matplotlib").is_dir()  # matplotlib was used, and cached here


def test_a_cache_variable_the_user_set_is_kept(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MPLCONFIGDIR", "/somewhere/mine")
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    use_project_caches()
    assert os.environ["MPLCONFIGDIR"] == "/somewhere/mine"
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "cache" / "tools" / "torchinductor")
