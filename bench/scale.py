"""Training at Genomic Benchmarks ensembl scale: cached load, epoch time, sequences/s and peak RSS per model and size,
and the memory of a 2-trial concurrent study (are the splits shared between the trial processes, or copied?).

Data: `enhancers.synthetic` with `data.lengths=ensembl` (lengths 100–573 bp, mean 270, sd 123) at `--fractions` of
154,842 sequences, built once into the node's split cache (`harness.data.split_cache`; the build time is printed).
Per (model, size), a fresh process — what a trial is — loads the task from the cache (timed), makes the model's
inputs, and trains one epoch: in full when it has at most `--max-steps` steps, else `--max-steps` steps whose time is
extrapolated to the epoch (marked `extrap.`). `kmer_logreg` (sklearn) is one full fit. Peak RSS is the process's
`VmHWM`; PSS (proportional set size, /proc/PID/smaps) counts each shared page once across processes.

The study: `regbench study --trials 2 --concurrency 2 --max-epochs 1` at `--study-fraction`; while it runs, every
process mapping the split-cache folder is sampled (/proc/PID/smaps): its RSS and PSS in total and of the mapped split
files alone. Two trials sharing one copy of the splits show split PSS ≈ split RSS / 2 each.

    PYTHONPATH=. nice -n 10 python bench/scale.py [--fractions 0.1 1.0] [--models kmer_attention basset kmer_logreg]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ENSEMBL_N = 154_842
MODELS = ("kmer_attention", "basset", "kmer_logreg")
_KB = 1024


def data_options(fraction: float) -> dict[str, Any]:
    return {"n": max(50, round(fraction * ENSEMBL_N)), "lengths": "ensembl"}


def smaps(pid: int, marker: str) -> dict[str, float]:
    """MB of RSS and PSS of process `pid`: all of it, and of the mappings whose path contains `marker`."""
    out = {"rss": 0.0, "pss": 0.0, "split_rss": 0.0, "split_pss": 0.0}
    mine = False
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()
            if not head[0].endswith(":"):  # a mapping's header line: address perms offset dev inode [path]
                mine = marker in line
                continue
            if head[0] in ("Rss:", "Pss:"):
                mb = int(head[1]) / _KB
                key = head[0][:-1].lower()
                out[key] += mb
                if mine:
                    out[f"split_{key}"] += mb
    return out


def peak_rss_mb() -> float:
    """This process's peak RSS (`VmHWM`, reset by exec; `ru_maxrss` would carry over the forking parent's peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / _KB
    raise OSError("no VmHWM in /proc/self/status")


def worker(model: str, fraction: float, max_steps: int, threads: int) -> dict[str, Any]:
    """One trial-like process: load from the cache, featurize, train one epoch (or `max_steps`, extrapolated)."""
    start = time.perf_counter()
    from harness.plugins import make_task
    from harness.training.fit import fit
    from harness.training.run import RunRequest, load_data

    import_s = time.perf_counter() - start
    task = make_task("enhancers.synthetic", data_options(fraction))
    task.splits()
    load_s = time.perf_counter() - start - import_s
    run = RunRequest(task.name, model, {"train": {"threads": threads}}, max_epochs=1).resolve(task=task)
    start = time.perf_counter()
    splits = load_data(run).splits
    inputs_s = time.perf_counter() - start
    train = splits["train"]
    row: dict[str, Any] = {"n_train": len(train), "import_s": import_s, "load_s": load_s, "inputs_s": inputs_s}
    if not run.plugin.is_torch:
        start = time.perf_counter()
        fit(task, run.plugin, run.hp, run.cfg, splits=splits)
        seconds = time.perf_counter() - start
        row |= {"epoch_s": seconds, "seq_per_s": len(train) / seconds, "steps": 0, "extrapolated": False}
    else:
        batch = run.cfg.batch_size
        steps_per_epoch = -(-len(train) // batch)
        steps = min(steps_per_epoch, max_steps)
        part = train if steps == steps_per_epoch else train.subset(np.arange(steps * batch))
        val = splits["val"].subset(np.arange(min(len(splits["val"]), 256)))  # the epoch's scoring kept small
        result = fit(task, run.plugin, run.hp, run.cfg, splits={"train": part, "val": val})
        seconds = float(result.history[0]["epoch_time_s"])
        row |= {"epoch_s": seconds * steps_per_epoch / steps, "seq_per_s": len(part) / seconds, "steps": steps,
                "extrapolated": steps < steps_per_epoch}  # fmt: skip
    row["peak_rss_mb"] = peak_rss_mb()
    row |= {f"end_{k}_mb": v for k, v in smaps(os.getpid(), "/splits/").items()}
    return row


def build(fraction: float) -> float:
    """Generate, split and store the data of `fraction` in the split cache; seconds (≈0 when already cached)."""
    from harness.plugins import make_task

    start = time.perf_counter()
    make_task("enhancers.synthetic", data_options(fraction)).splits()
    return time.perf_counter() - start


def study(fraction: float, model: str, workdir: Path, interval_s: float = 0.5) -> tuple[dict[int, dict], float]:
    """Run a 2-trial, 2-concurrent study and sample every process mapping the split cache; (peaks per pid, s)."""
    sets = [f"--set=data.{k}={v}" for k, v in data_options(fraction).items()]
    cmd = [sys.executable, "-m", "harness.cli", "study", "--task", "enhancers.synthetic", "--model", model,
           "--trials", "2", "--concurrency", "2", "--max-epochs", "1", *sets]  # fmt: skip
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}"}
    cache = Path(os.environ.get("REGBENCH_CACHE", Path.home() / ".cache" / "regbench")).resolve()
    marker = str(cache / "splits" / "enhancers.synthetic-")  # this task's folders only, not other runs' on the node
    peaks: dict[int, dict[str, float]] = {}
    start = time.perf_counter()
    log = open(workdir / "study.log", "w")  # noqa: SIM115 (closed below, after the process ends)
    proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    while proc.poll() is None:
        for pid in _mapping(marker):
            try:
                sample = smaps(pid, marker)
            except OSError:  # ended between the scan and the read
                continue
            best = peaks.setdefault(pid, {k: 0.0 for k in sample} | {"cmd": _cmdline(pid)})
            for key, value in sample.items():
                best[key] = max(best[key], value)
        time.sleep(interval_s)
    log.close()
    if proc.returncode:
        raise SystemExit(f"study failed (rc {proc.returncode}); see {workdir / 'study.log'}")
    return peaks, time.perf_counter() - start


def _mapping(marker: str) -> list[int]:
    """Pids of this user's processes with a mapping under `marker`."""
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and entry.name != str(os.getpid()):
            try:
                if marker in Path(f"/proc/{entry.name}/maps").read_text():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:60]
    except OSError:
        return "?"


def _uptime() -> str:
    return os.popen("uptime").read().strip()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fractions", nargs="+", type=float, default=[0.1, 1.0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--max-steps", type=int, default=200, help="torch steps measured per epoch at most")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a study trial's: cpus_per_trial)")
    parser.add_argument("--study-fraction", type=float, default=0.1, help="size of the 2-trial study; 0 skips it")
    parser.add_argument("--study-model", default="kmer_logreg")
    parser.add_argument("--worker", nargs=2, metavar=("MODEL", "FRACTION"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker[0], float(args.worker[1]), args.max_steps, args.threads)))
        return
    print(f"start: {_uptime()}", flush=True)
    rows = []
    for fraction in args.fractions:
        seconds = build(fraction)
        n = data_options(fraction)["n"]
        print(f"data {fraction:g} ({n:,} seqs): generated + split + cached in {seconds:.1f} s (≈0 when it was cached "
              f"already); {_uptime()}", flush=True)  # fmt: skip
        for model in args.models:
            cmd = [sys.executable, __file__, "--worker", model, str(fraction), "--max-steps", str(args.max_steps),
                   "--threads", str(args.threads)]  # fmt: skip
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode:
                print(f"  {model} @ {fraction:g} failed:\n{done.stderr[-2000:]}", flush=True)
                continue
            row = {"model": model, "fraction": fraction, **json.loads(done.stdout.strip().splitlines()[-1])}
            rows.append(row)
            print(f"  {model} @ {fraction:g}: {json.dumps(row)}; {_uptime()}", flush=True)
    print(f"\nthreads={args.threads}, batch 64, max {args.max_steps} torch steps measured per epoch")
    header = (
        f"{'model':<16}{'size':>7}{'train':>9}{'import s':>9}{'load s':>8}{'inputs s':>9}{'epoch s':>16}{'seq/s':>8}"
    )
    print(header + f"{'peak RSS MB':>13}{'PSS MB':>8}")
    for r in rows:
        epoch = f"{r['epoch_s']:.1f}" + (" extrap." if r["extrapolated"] else "")
        print(f"{r['model']:<16}{r['fraction']:>7.1%}{r['n_train']:>9,}{r['import_s']:>9.1f}{r['load_s']:>8.2f}"
              f"{r['inputs_s']:>9.2f}{epoch:>16}{r['seq_per_s']:>8.0f}{r['peak_rss_mb']:>13.0f}"
              f"{r['end_pss_mb']:>8.0f}")  # fmt: skip
    print(
        "import s: harness + torch imports; load s: the task's splits mapped from the cache (verified); inputs s: "
        "the model's inputs (k-mer spectra for kmer_logreg); extrap.: epoch time extrapolated from the measured steps"
    )
    if args.study_fraction:
        build(args.study_fraction)
        with tempfile.TemporaryDirectory() as tmp:
            peaks, seconds = study(args.study_fraction, args.study_model, Path(tmp))
        n = data_options(args.study_fraction)["n"]
        print(f"\n2-trial concurrent study, {args.study_model} @ {n:,} seqs, {seconds:.0f} s; processes mapping the "
              f"split cache (peaks while it ran):")  # fmt: skip
        print(f"{'pid':>8}  {'process':<44}{'RSS MB':>8}{'PSS MB':>8}{'split RSS':>10}{'split PSS':>10}")
        for pid, p in sorted(peaks.items()):
            print(f"{pid:>8}  {p['cmd'][:43]:<44}{p['rss']:>8.0f}{p['pss']:>8.0f}{p['split_rss']:>10.1f}"
                  f"{p['split_pss']:>10.1f}")  # fmt: skip
        print("split RSS/PSS: the memory-mapped split files alone; PSS ≈ RSS / k when k processes share the pages")
    print(f"end: {_uptime()}")


if __name__ == "__main__":
    main()
