"""CLI start-up: wall time of `regbench --help`, of every `regbench <cmd> --help`, and from process start until
`regbench train` begins loading data. Prints a table of wall-time medians (min–max) and CPU-time medians (user +
system of the child: on a busy machine the steadier number); with --before REV also the times of that revision
and the wall-time ratio before/now.

    .venv/bin/python bench/startup.py [--repeat 5] [--commands train,study] [--imports 25] [--before 0d11b47]

How each time is taken. Every measurement is a fresh `python -m harness.cli ...` subprocess with the tree under
test first on PYTHONPATH, timed from just before the fork until it exits (the help rows) or until it first opens
a file under $REGBENCH_DATA (the train row). For the latter the child installs an audit hook (`sys.addaudithook`,
event "open") before importing the CLI, prints `time.monotonic()` (a system-wide clock, comparable across
processes) at the first open of a data file, and ends the process with `os._exit(0)`. This marks the data load
whatever the code path looks like, so it measures an old revision the same way. The run is
`regbench train --task enhancers.ienhancer2l --model kmer_attention` (its FASTA files are read on first use, no
cache), against a fresh copy of an already-initialised SQLite MLflow store, in a temporary folder; it needs
$REGBENCH_DATA (default ../shared/data). One untimed warm-up precedes the --repeat timed runs of each row.
Note that PYTHONDONTWRITEBYTECODE=1 in the environment makes every run compile the project's own sources.

--imports N: one more train run under `-X importtime`, cut at the same data open; prints the N largest imports
of third-party packages by the project module (harness.*, models.*, tasks.*) that imported them first, i.e. what
to defer. --before REV extracts REV with `git archive` (no git state changes) into a temporary folder, removed
at the end.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT_PACKAGES = ("harness", "models", "tasks")
TRAIN_ARGS = ("train", "--task", "enhancers.ienhancer2l", "--model", "kmer_attention", "--max-epochs", "1")
MARK = "REGBENCH_STARTUP_DATA_OPEN"

# Runs in the child: the audit hook, then the CLI. argv[1:] are the regbench arguments.
DATA_PROBE = f"""
import os, sys, time
_root = os.environ["REGBENCH_DATA"].rstrip(os.sep) + os.sep
def _hook(event, args):
    if event == "open" and isinstance(args[0], str) and args[0].startswith(_root):
        os.write(2, f"{MARK} {{time.monotonic()!r}} {{args[0]}}\\n".encode())
        os._exit(0)
sys.addaudithook(_hook)
from harness.cli import main
sys.exit(main(sys.argv[1:]))
"""


@dataclass
class Tree:
    """A source tree under test and the scratch folder its runs use."""

    label: str
    root: Path
    scratch: Path
    store: Path = field(init=False)

    def __post_init__(self) -> None:
        self.store = self.scratch / "pristine.db"


def child_env(tree: Tree, run_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(tree.root),
        MLFLOW_TRACKING_URI=f"sqlite:///{run_dir / 'mlflow.db'}",
        REGBENCH_CACHE=str(run_dir / "cache"),
    )
    return env


def fresh_run_dir(tree: Tree) -> Path:
    run_dir = Path(tempfile.mkdtemp(dir=tree.scratch))
    shutil.copyfile(tree.store, run_dir / "mlflow.db")
    return run_dir


def init_store(tree: Tree) -> None:
    """An initialised (migrated) SQLite MLflow store, copied fresh for every train run."""
    code = f"import mlflow; mlflow.MlflowClient('sqlite:///{tree.store}').search_experiments()"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, cwd=tree.scratch)


@dataclass(frozen=True)
class Sample:
    """One timed run: wall seconds, and CPU seconds (user + system) of the child, less sensitive to other load."""

    wall: float
    cpu: float


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_help(tree: Tree, args: Sequence[str]) -> Sample:
    """`regbench ARGS` (a --help) in a fresh process."""
    cmd = [sys.executable, "-m", "harness.cli", *args]
    cpu, start = children_cpu(), time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=tree.scratch, env=child_env(tree, tree.scratch))
    sample = Sample(time.monotonic() - start, children_cpu() - cpu)
    if out.returncode != 0 or "usage:" not in out.stdout:
        raise RuntimeError(f"{tree.label}: regbench {' '.join(args)} failed ({out.returncode}):\n{out.stderr[-2000:]}")
    return sample


def run_until_data(tree: Tree, extra: Sequence[str] = ()) -> tuple[Sample, str]:
    """From fork until `regbench train` first opens a data file; and the child's stderr."""
    run_dir = fresh_run_dir(tree)
    cmd = [sys.executable, *extra, "-c", DATA_PROBE, *TRAIN_ARGS]
    try:
        cpu, start = children_cpu(), time.monotonic()
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=run_dir, env=child_env(tree, run_dir))
        cpu = children_cpu() - cpu
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    marks = [line for line in out.stderr.splitlines() if line.startswith(MARK)]
    if not marks:
        raise RuntimeError(f"{tree.label}: train never opened a file under $REGBENCH_DATA:\n{out.stderr[-3000:]}")
    return Sample(float(marks[0].split()[1]) - start, cpu), out.stderr


def measure(fn: Callable[[], Sample], repeat: int) -> list[Sample]:
    fn()  # warm-up: file cache, lazily created folders
    return [fn() for _ in range(repeat)]


@dataclass
class ImportNode:
    name: str
    cumulative_us: int
    children: list[ImportNode] = field(default_factory=list)


def parse_importtime(stderr: str) -> list[ImportNode]:
    """The import tree from `-X importtime` lines (post-order; indentation = depth); returns the roots."""
    pending: list[tuple[int, ImportNode]] = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        _, cumulative, name = line.removeprefix("import time:").split("|")
        depth = (len(name) - len(name.lstrip())) // 2
        node = ImportNode(name.strip(), int(cumulative))
        while pending and pending[-1][0] > depth:
            node.children.insert(0, pending.pop()[1])
        pending.append((depth, node))
    return [node for _, node in pending]


def is_project(name: str) -> bool:
    return name.split(".")[0] in PROJECT_PACKAGES


def third_party_imports(roots: list[ImportNode]) -> list[tuple[str, str, float]]:
    """(project module that imported it first, third-party package, cumulative ms), largest first.

    A third-party import at depth 0 after the first project import came from a function at run time (a deferred
    import, e.g. in a command's `run()`); its importer is shown as `(run time)`.
    """
    rows = []

    def walk(node: ImportNode) -> None:
        for child in node.children:
            if is_project(child.name):
                walk(child)
            else:
                rows.append((node.name, child.name, child.cumulative_us / 1000))

    seen_project = False
    for root in roots:
        if is_project(root.name):
            seen_project = True
            walk(root)
        elif seen_project:
            rows.append(("(run time)", root.name, root.cumulative_us / 1000))
    return sorted(rows, key=lambda r: -r[2])


def command_names() -> list[str]:
    """The subcommands of this tree's parser, in registration order."""
    from harness.cli import build_parser

    parser = build_parser()
    return list(next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices)


def rows_for(commands: Sequence[str]) -> list[tuple[str, Sequence[str] | None]]:
    """(row label, --help arguments or None for the train-until-data row)."""
    return [("regbench --help", ["--help"]), *((f"regbench {c} --help", [c, "--help"]) for c in commands),
            ("train: start → data load", None)]  # fmt: skip


Times = dict[str, list[Sample]]


def measure_tree(tree: Tree, rows: list[tuple[str, Sequence[str] | None]], repeat: int) -> Times:
    init_store(tree)
    times: Times = {}
    for label, args in rows:
        try:
            if args is None:
                times[label] = measure(lambda: run_until_data(tree)[0], repeat)
            else:
                times[label] = measure(lambda a=args: time_help(tree, a), repeat)
        except RuntimeError as err:
            if tree.root == ROOT:
                raise
            times[label] = []  # e.g. a command the old revision does not have
            print(f"  {tree.label}: {label}: not measured: {str(err).splitlines()[0]}", file=sys.stderr, flush=True)
            continue
        print(f"  {tree.label}: {label}: {fmt(times[label])}", file=sys.stderr, flush=True)
    return times


def wall(samples: list[Sample]) -> float:
    return statistics.median(s.wall for s in samples)


def fmt(samples: list[Sample] | None) -> str:
    """`median wall (min–max) / median cpu`, in seconds."""
    if not samples:
        return "—"
    walls = [s.wall for s in samples]
    cpu = statistics.median(s.cpu for s in samples)
    return f"{wall(samples):.2f} ({min(walls):.2f}–{max(walls):.2f}) / {cpu:.2f}"


def print_table(rows: list[tuple[str, Sequence[str] | None]], now: Times, before: Times | None, rev: str) -> None:
    header = ["seconds: wall median (min–max) / CPU median", "now"]
    if before is not None:
        header += [f"at {rev}", "wall before / now"]
    lines = []
    for label, _ in rows:
        line = [label, fmt(now[label])]
        if before is not None:
            old = before.get(label)
            line += [fmt(old), f"{wall(old) / wall(now[label]):.1f}×" if old else "—"]
        lines.append(line)
    widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]
    for r in [header, ["-" * w for w in widths], *lines]:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())


def export_revision(rev: str, dest: Path) -> Path:
    """REV's files (git archive: nothing in the repository changes) under DEST/src."""
    src = dest / "src"
    src.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    return src


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per row (default 5), after one warm-up")
    parser.add_argument("--commands", default="", help="comma-separated subcommands for the `<cmd> --help` rows "
                        "(default: every subcommand of the parser)")  # fmt: skip
    parser.add_argument("--imports", type=int, default=0, metavar="N",
                        help="also list the N largest third-party imports before the data load")  # fmt: skip
    parser.add_argument("--before", metavar="REV", help="also measure git revision REV (e.g. 0d11b47)")
    args = parser.parse_args()
    data = Path(os.environ.get("REGBENCH_DATA", ROOT.parent / "shared" / "data")).resolve()
    if not (data / "ienhancer2l").is_dir():
        sys.exit(f"bench/startup.py: {data}/ienhancer2l not found; set REGBENCH_DATA (e.g. ../shared/data)")
    os.environ["REGBENCH_DATA"] = str(data)
    commands = args.commands.split(",") if args.commands else command_names()
    rows = rows_for(commands)
    with tempfile.TemporaryDirectory(prefix="regbench-startup-") as tmp:
        now = Tree("now", ROOT, Path(tmp) / "now")
        now.scratch.mkdir()
        times = measure_tree(now, rows, args.repeat)
        before = None
        if args.before:
            old = Tree(args.before, export_revision(args.before, Path(tmp)), Path(tmp) / "before")
            old.scratch.mkdir()
            before = measure_tree(old, rows, args.repeat)
        print_table(rows, times, before, args.before or "")
        if args.imports:
            _, stderr = run_until_data(now, ["-X", "importtime"])
            print("\nlargest third-party imports before the data load (first importer; -X importtime, one run):")
            for module, package, ms in third_party_imports(parse_importtime(stderr))[: args.imports]:
                print(f"  {ms:8.0f} ms  {package:<28} imported by {module}")


if __name__ == "__main__":
    main()
