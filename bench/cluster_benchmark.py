"""Slot utilisation and wall time of a 12-cell benchmark on a 2-node Ray cluster, new scheduler vs cell after cell.

Starts, on loopback and with token auth, a Ray head and a worker node (`--cpus-per-node` CPUs each) with
`ray start`, and an `mlflow server`; runs the same 12-cell study file (3 tasks × 4 small real models — no `tiny`
variants — 2 trials, 2 evaluation seeds) twice through `regbench benchmark --ray-address`: with the scheduler's
default (every cell in flight, trials and refits packed by Ray) and with `--cells-in-flight 1` (the old cell after
cell order); prints each one's `slot_utilization` and `benchmark_wall_time_s` (read back from its benchmark run), on
how many nodes its refits ran, and the ratios. Everything it starts is stopped by PID at the end.

    REGBENCH_DATA=../shared/data .venv/bin/python bench/cluster_benchmark.py [--trials 2] [--max-epochs 2]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BIN = Path(sys.executable).parent
STUDY = """\
name: {name}
description: 3 tasks × 4 small real models, for bench/cluster_benchmark.py
tasks: [enhancers.synthetic, enhancers.ienhancer2l, epi.synthetic]
models: [kmer_logreg, kmer_attention, speid, gc_length]
seeds: [0, 1]
trials: {trials}
max_epochs: {epochs}
concurrency: 2
shortcuts: false
set: {{train.patience: 0}}
task_set:
  enhancers.synthetic: {{data.n: 1000}}
  epi.synthetic: {{data.enhancer_window: 400, data.promoter_window: 300}}
model_set:
  speid: {{model.n_kernels: 32, model.hidden: 16, model.dense: 64}}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop_naming(text: str) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != os.getpid():
                with contextlib.suppress(OSError):
                    if text in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                        os.kill(int(entry.name), sig)
        time.sleep(1)


def _cluster(tmp: Path, cpus: int) -> tuple[str, str, dict[str, str]]:
    """Start the head, the worker and the MLflow server; returns (ray address, tracking URI, environment)."""
    token = tmp / "auth_token"
    fd = os.open(token, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(32))
    env = {**os.environ, "RAY_TMPDIR": str(tmp), "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN_PATH": str(token)}  # fmt: skip
    if env.get("REGBENCH_DATA"):  # the benchmarks run in `tmp`: a relative data root would point elsewhere
        env["REGBENCH_DATA"] = str(Path(env["REGBENCH_DATA"]).resolve())
    port, mlflow_port = _free_port(), _free_port()
    subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{tmp}/mlflow.db", "--artifacts-destination",
         f"{tmp}/artifacts", "--host", "127.0.0.1", "--port", str(mlflow_port), "--workers", "2"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    start = [str(BIN / "ray"), "start", "--node-ip-address=127.0.0.1", f"--num-cpus={cpus}", "--disable-usage-stats"]
    subprocess.run([*start, "--head", f"--port={port}", f"--temp-dir={tmp}", "--include-dashboard=false"], env=env,
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    subprocess.run([*start, f"--address=127.0.0.1:{port}"], env=env, check=True, capture_output=True, timeout=120)
    uri = f"http://127.0.0.1:{mlflow_port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(f"{uri}/health", timeout=2)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    return f"127.0.0.1:{port}", uri, {**env, "MLFLOW_TRACKING_URI": uri}


def _benchmark_metrics(uri: str, experiment: str) -> dict[str, float]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    (run,) = client.search_runs([exp.experiment_id], "tags.`regbench.kind` = 'benchmark'")
    refits = client.search_runs([exp.experiment_id], "tags.`regbench.kind` = 'refit'", max_results=5000)
    nodes = {r.data.tags.get("ray_node_id") for r in refits}
    return {**run.data.metrics, "refits": len(refits), "refit_nodes": len(nodes)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--max-epochs", type=int, default=2)
    parser.add_argument("--cpus-per-node", type=int, default=1)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="cb", dir="/tmp"))  # short: Ray's socket paths must stay < 108 bytes
    try:
        address, uri, env = _cluster(tmp, args.cpus_per_node)
        results = {}
        for label, extra in (("scheduler", []), ("cell after cell", ["--cells-in-flight", "1"])):
            name = "cluster-new" if not extra else "cluster-old"
            study = tmp / f"{name}.yaml"
            study.write_text(STUDY.format(name=name, trials=args.trials, epochs=args.max_epochs))
            argv = [str(BIN / "regbench"), "benchmark", "--study", str(study), "--ray-address", address,
                    "--storage", f"sqlite:///{tmp}/optuna.db", "--no-progress", "--report-dir", str(tmp / name),
                    *extra]  # fmt: skip
            done = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=tmp)
            if done.returncode:
                print(done.stderr[-3000:], file=sys.stderr)
                return 1
            metrics = _benchmark_metrics(uri, name)
            results[label] = metrics
            used = metrics.get("slot_utilization", float("nan"))
            print(
                f"{label:>16}: wall {metrics['benchmark_wall_time_s']:.0f} s, slot utilization {used:.0%}, "
                f"cells finished {metrics.get('n_finished', 0):.0f}, failed {metrics.get('n_failed', 0):.0f}, "
                f"{metrics['refits']:.0f} refits on {metrics['refit_nodes']:.0f} nodes"
            )
        new, old = results["scheduler"], results["cell after cell"]
        print(f"wall time old / new: {old['benchmark_wall_time_s'] / new['benchmark_wall_time_s']:.2f}x; "
              f"utilization new − old: {new['slot_utilization'] - old['slot_utilization']:+.0%}")  # fmt: skip
    finally:
        _stop_naming(str(tmp))
    print(f"load average: {' '.join(f'{v:.1f}' for v in os.getloadavg())} ({os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
