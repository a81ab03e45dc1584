"""The documentation: `mkdocs build --strict` (a broken link, a page missing from the nav or a settings table the
hook cannot generate fails), the README's size as a landing page, and every command example in the README and
the docs run as written.

Command examples are the fenced `bash` blocks of README.md and docs/**/*.md. Each page's blocks run in order in
one `bash -e` shell (so a variable set in one block is seen by the next) in a fresh temporary folder, with its own
MLflow store (`mlflow.db` there), caches and Ray folder, the venv's programs first on PATH (the README activates
the venv) and `REGBENCH_DATA` as the environment gives it. The README's first block is not run again: a fast test
checks that its commands (comments dropped) are among the quick start's, which its page's test runs. Blocks that
cannot run in a test (set-up, servers, multi-minute jobs) are `console` blocks whose first line says why:
`# not run by tests: <reason>`. What the README's and the tutorials' commands leave in the folder must be ignored
by git (they are run in a clone).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FENCE = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```", re.M | re.S)
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").rglob("*.md"))]


def blocks(page: Path, language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(page.read_text()) if lang == language]


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    """Not `-q`: MkDocs counts the warnings that strict mode turns into failure only when it logs them."""
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    settings = (tmp_path / "site" / "reference" / "settings" / "index.html").read_text()
    for name in ("train.max_epochs", "model.k", "data.n", "data.genome"):  # generated, never typed
        assert f"<code>{name}</code>" in settings, name


def test_readme_is_a_landing_page() -> None:
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    assert max(map(len, text.splitlines())) <= 200  # no table cells running to hundreds of characters


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_commands_not_run_say_why(page: Path) -> None:
    for body in blocks(page, "console") + blocks(page, "shell") + blocks(page, "sh"):
        assert body.startswith("# not run by tests: "), f"{page.name}: a shell block that no test runs: {body[:80]!r}"


def commands(body: str) -> list[str]:
    """A block's command lines, each without its trailing `  # comment`."""
    return [line.split("  #")[0].strip() for line in body.splitlines() if line.strip()]


def test_readme_quick_start_is_the_quick_starts_commands() -> None:
    """So the README's first block need not run again: the quick start's test runs these commands."""
    quick = {c for body in blocks(ROOT / "docs" / "tutorials" / "quickstart.md", "bash") for c in commands(body)}
    readme = commands(blocks(README, "bash")[0])
    assert len(readme) >= 4 and set(readme) <= quick, sorted(set(readme) - quick)


RUN = [p for p in PAGES if blocks(p, "bash") and p.name != "plugins.md"]  # plugins.md: tests/test_plugin_guide.py


@pytest.mark.slow
@pytest.mark.parametrize("page", RUN, ids=lambda p: str(p.relative_to(ROOT)))
def test_command_examples_run_as_written(page: Path, tmp_path: Path) -> None:
    bash = blocks(page, "bash")[1:] if page == README else blocks(page, "bash")  # [0]: the quick start's commands
    script = "set -euo pipefail\n" + "\n".join(bash)
    ray_tmp = tempfile.mkdtemp(prefix="rd", dir="/tmp")
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "RAY_TMPDIR": ray_tmp, "VIRTUAL_ENV": str(BIN.parent)}
    env.pop("MLFLOW_TRACKING_URI")  # the store a reader gets: mlflow.db in the working folder
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    subprocess.run(["rm", "-rf", ray_tmp], check=False)
    assert done.returncode == 0, f"{page.name}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    if page == README or page.parent.name == "tutorials":  # run in a clone, what they leave is ignored
        ours = Path(env["REGBENCH_CACHE"])  # conftest's cache folder, not the reader's
        left = [f"{p.name}/" if p.is_dir() else p.name for p in tmp_path.iterdir() if p != ours]
        ignored = subprocess.run(["git", "check-ignore", "--no-index", *left], cwd=ROOT, capture_output=True,
                                 text=True).stdout.split()  # fmt: skip
        assert sorted(set(left) - set(ignored)) == [], f"{page.name}: outputs that .gitignore does not ignore"
