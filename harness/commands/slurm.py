"""`regbench slurm`: run a study's benchmark as a Slurm batch job (`deploy/slurm/regbench.sbatch`): `submit` writes
the job script with the chosen resources and runs `sbatch`; `close-runs` is the job script's last step."""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "slurm" / "regbench.sbatch"
EPILOG = """examples:
  regbench slurm submit studies/enhancers.yaml --nodes 2 --gpus-per-node 4 --time 12:00:00 --partition gpu --requeue
  regbench slurm submit studies/smoke.yaml --dry-run   # write slurm/smoke/job.sbatch and show the sbatch command
  regbench slurm submit studies/smoke.yaml --benchmark-args='--cells-in-flight 2'

Run it from a folder every node shares: the MLflow store (mlflow.db, mlartifacts/), optuna.db, Tune's .ray/ and
the job's files (slurm/<study>/) go there. With MLFLOW_TRACKING_URI=http(s)://... the job logs to that server
instead of starting one. Resubmitting the same study resumes it: finished cells are reused."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("slurm", help="run a study's benchmark as a Slurm job (Ray head + workers, MLflow server)",
                       description="Slurm batch jobs of `regbench benchmark` on a Ray cluster spanning the "
                       "allocation (deploy/slurm/regbench.sbatch).", epilog=EPILOG)  # fmt: skip
    commands = p.add_subparsers(dest="slurm_command", required=True, metavar="SUBCOMMAND")
    s = commands.add_parser(
        "submit",
        help="write the job script for STUDY and submit it with sbatch",
        description="Write slurm/<study>/job.sbatch (deploy/slurm/regbench.sbatch with these resources) and submit "
        "it: a Ray head on the allocation's first node, a Ray worker on each other node (token auth), an MLflow "
        "tracking server over the store in this folder, then `regbench benchmark --ray-address`. SIGTERM (the "
        "time limit's warning --grace seconds before it, scancel, pre-emption) ends the benchmark's runs KILLED; "
        "with --requeue a job stopped before its time limit requeues itself and resumes. Prints `job_id: <id>` last.",
        epilog=EPILOG,
    )
    s.add_argument("study", type=Path, help="study YAML file, e.g. studies/smoke.yaml")
    s.add_argument("--nodes", type=int, default=1, metavar="N", help="nodes, one Ray node each (default 1)")
    s.add_argument("--gpus-per-node", type=int, default=0, metavar="G", help="GPUs per node (default 0)")
    s.add_argument("--cpus-per-node", type=int, default=None, metavar="C",
                   help="CPUs per node (default: whole nodes, sbatch --exclusive)")  # fmt: skip
    s.add_argument("--time", default=None, metavar="T", help="time limit, e.g. 2:00:00 (default: the partition's)")
    s.add_argument("--partition", default=None, metavar="P", help="partition (default: the cluster's default)")
    s.add_argument("--grace", type=int, default=120, metavar="S",
                   help="seconds before the time limit the job is told to stop (default 120)")  # fmt: skip
    s.add_argument("--requeue", action="store_true", help="requeue the job when stopped before its end; it resumes")
    s.add_argument("--dry-run", action="store_true", help="write the script and print the sbatch command only")
    s.add_argument("--benchmark-args", default="", metavar="'OPTIONS'",
                   help="passed on to `regbench benchmark`, e.g. --benchmark-args='--no-resume'")  # fmt: skip
    s.set_defaults(func=submit)
    c = commands.add_parser(
        "close-runs",
        help="end KILLED the runs of STUDY left RUNNING by processes that are gone (used by the job script)",
        description="End KILLED every RUNNING run of the study's experiment whose process is gone from this host, "
        "and the runs nested under it: what a job stopped by a plain scancel leaves, since its tracking server "
        "stops with the benchmark. With --after PID it starts with the job, ignores SIGTERM and acts once PID "
        "has exited, so that its imports are done before Slurm's KillWait runs out.",
    )
    c.add_argument("study", type=Path, help="study YAML file")
    c.add_argument("--after", type=int, default=None, metavar="PID", help="wait until process PID has exited")
    c.set_defaults(func=close_runs)


def _positive(name: str, value: int | None, least: int) -> None:
    if value is not None and value < least:
        raise ValueError(f"--{name}={value} must be >= {least}")


def _last_line(done: subprocess.CompletedProcess[str]) -> str:
    """What a failed Slurm client said last, else its exit status."""
    lines = done.stderr.strip().splitlines()
    return lines[-1] if lines else f"exit {done.returncode}"


def _partitions() -> list[str]:
    """The cluster's partition names (`sinfo`)."""
    done = subprocess.run(["sinfo", "--noheader", "--format=%R"], capture_output=True, text=True, timeout=60)
    if done.returncode:
        raise OSError(f"sinfo failed: {_last_line(done)}")
    return sorted(set(done.stdout.split()))


def sbatch_lines(name: str, args: argparse.Namespace, out: Path) -> list[str]:
    """The `#SBATCH` options of the job."""
    lines = [f"--job-name=regbench-{name}", f"--nodes={args.nodes}", "--ntasks-per-node=1",
             f"--cpus-per-task={args.cpus_per_node}" if args.cpus_per_node else "--exclusive",
             f"--signal=B:TERM@{args.grace}", f"--output={out}", "--open-mode=append",
             "--requeue" if args.requeue else "--no-requeue"]  # fmt: skip
    if args.gpus_per_node:
        lines.append(f"--gpus-per-node={args.gpus_per_node}")
    if args.time:
        lines.append(f"--time={args.time}")
    if args.partition:
        lines.append(f"--partition={args.partition}")
    return [f"#SBATCH {line}" for line in lines]


def job_script(name: str, args: argparse.Namespace, out: Path) -> str:
    """The template with its `#SBATCH` lines replaced by this job's, and its settings (this Python's scripts first
    on PATH, grace, requeue) after them."""
    if not TEMPLATE.is_file():
        raise FileNotFoundError(f"job script template {TEMPLATE} is missing: run regbench from its source checkout")
    shebang, *body = TEMPLATE.read_text().splitlines()
    settings = [f"export PATH={shlex.quote(str(Path(sys.executable).parent))}:\"$PATH\"",
                f"export REGBENCH_SLURM_GRACE={args.grace}",
                f"export REGBENCH_SLURM_REQUEUE={int(args.requeue)}"]  # fmt: skip
    kept = [line for line in body if not line.startswith("#SBATCH")]
    return "\n".join([shebang, *sbatch_lines(name, args, out), *settings, *kept]) + "\n"


def submit(args: argparse.Namespace) -> int:
    from harness.benchmark.study_file import load_study
    from harness.paths import input_file

    input_file(args.study, "study file")
    for name, least in (("nodes", 1), ("gpus-per-node", 0), ("cpus-per-node", 1), ("grace", 1)):
        _positive(name, getattr(args, name.replace("-", "_")), least)
    if args.time is not None and not re.fullmatch(r"[0-9:-]+", args.time):
        raise ValueError(f"--time={args.time!r} is not a Slurm time (minutes, MM:SS, HH:MM:SS or D-HH:MM:SS)")
    study = load_study(args.study)
    if not args.dry_run:
        if shutil.which("sbatch") is None:
            raise FileNotFoundError("sbatch is not on PATH: run `regbench slurm submit` on a Slurm login node")
        if args.partition is not None:
            known = _partitions()
            if args.partition not in known:
                raise ValueError(f"--partition={args.partition!r} is not a partition of this cluster "
                                 f"(sinfo: {', '.join(known) or 'none'})")  # fmt: skip
    folder = Path("slurm") / args.study.stem
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "job.sbatch"
    script.write_text(job_script(study.name, args, (folder / "job-%j.out").resolve()))
    command = ["sbatch", "--parsable", str(script), str(args.study.resolve()), *shlex.split(args.benchmark_args)]
    if args.dry_run:
        print(f"wrote {script}\n{shlex.join(command)}")
        return 0
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if done.returncode:
        raise OSError(f"sbatch refused {script}: {_last_line(done)}")
    job_id = done.stdout.strip().split(";")[0]
    print(f"submitted {script} as job {job_id}; output: {folder / f'job-{job_id}.out'}")
    print(f"stop it: scancel --batch --signal=TERM {job_id} (its runs end KILLED; plain scancel also works)")
    print(f"job_id: {job_id}")
    return 0


def close_runs(args: argparse.Namespace) -> int:
    if args.after is not None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a plain scancel signals every process of the job
    from harness.benchmark.study_file import load_study
    from harness.tracking import store

    name = load_study(args.study).name
    while args.after is not None and Path(f"/proc/{args.after}").exists():  # until it has exited and been reaped
        time.sleep(0.2)
    store.close_abandoned_runs(store.ensure_experiment(name))  # prints how many it closed, if any
    return 0
