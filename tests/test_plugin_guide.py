"""docs/plugins.md, followed as written: every fenced block, in order, in an empty folder.

`bash` blocks run (each as one `bash -eo pipefail` script; every command must succeed); `python` / `yaml` blocks
with `title="FILE"` are saved as FILE. Any other block fails the test, so the guide cannot show a command that is
not run. The guide's `pip install -e` goes into a throwaway virtual environment layered over this one (its
packages through a `.pth` file), offline and without build isolation; a check after the run confirms that this
environment's site-packages did not change.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"
FENCE = re.compile(r"^```(\w*)([^\n]*)\n(.*?)^```\s*$", re.S | re.M)
TITLE = re.compile(r'title="([^"]+)"')


def blocks() -> list[tuple[str, str, str]]:
    """`(language, title, body)` of every fenced block of the guide, in order."""
    return [(m[1], (TITLE.search(m[2]) or [None, ""])[1], m[3]) for m in FENCE.finditer(GUIDE.read_text())]


def layered_venv(root: Path) -> Path:
    """A virtual environment at `root` that sees this environment's packages and has its own `pip` and `regbench`
    commands; returns its bin folder."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120)
    bin_dir = root / "bin"
    python = bin_dir / "python"
    inner = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                           capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    outer = sysconfig.get_paths()["purelib"]
    Path(inner, "_outer_env.pth").write_text(f"import site; site.addsitedir({outer!r})\n")
    scripts = {"pip": "from pip._internal.cli.main import main", "regbench": "from harness.cli import main"}
    for name, line in scripts.items():
        (bin_dir / name).write_text(f"#!{python}\nimport sys\n{line}\nsys.exit(main())\n")
        (bin_dir / name).chmod(0o755)
    return bin_dir


def test_the_guide_has_runnable_blocks_only() -> None:
    found = blocks()
    assert {lang for lang, _, _ in found} <= {"bash", "python", "yaml"}, [b[:2] for b in found]
    assert all(title for lang, title, _ in found if lang != "bash"), 'a file block without title="FILE"'
    commands = [line for lang, _, body in found if lang == "bash" for line in body.splitlines() if line.strip()]
    assert {c.split()[0] for c in commands} == {"regbench", "pip"}, commands


@pytest.mark.slow
def test_the_guide_runs_as_written(tmp_path: Path) -> None:
    outer = Path(sysconfig.get_paths()["purelib"])
    before = sorted(p.name for p in outer.iterdir())
    bin_dir = layered_venv(tmp_path / "venv")
    work = tmp_path / "work"
    work.mkdir()
    ray_tmp = tempfile.mkdtemp(prefix="rb", dir="/tmp")  # Ray's socket paths must stay short
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "VIRTUAL_ENV": str(bin_dir.parent),
           "PIP_NO_INDEX": "1", "PIP_NO_BUILD_ISOLATION": "0", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
           "RAY_TMPDIR": ray_tmp}  # fmt: skip
    outputs: dict[str, str] = {}
    try:
        for _, title, body in blocks():
            if title:
                (work / title).write_text(body)
                continue
            out = subprocess.run(["bash", "-eo", "pipefail", "-c", body], cwd=work, env=env, capture_output=True,
                                 text=True, timeout=900, check=False)  # fmt: skip
            assert out.returncode == 0, f"{body}\n---\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
            outputs[body] = out.stdout
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert sorted(p.name for p in outer.iterdir()) == before, "the guide's pip install reached this environment"
    board = (work / "reports" / "my_cnn_vs_builtins" / "leaderboard.md").read_text()
    row = next(line for line in board.splitlines() if "| my_cnn |" in line)  # scored, not a failed row
    assert "| auroc |" in row and "plugin from regbench-my-cnn==0.1.0" in row and "failed" not in row, board
