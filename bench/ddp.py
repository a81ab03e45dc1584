"""Data-parallel training on Ray Train workers: training sequences/s of 1 vs 2 workers (one torch thread each), for
basset and kmer_attention, as a ratio, in one run.

Both counts go through the same path (`harness.training.workers`' Ray Train `TorchTrainer`, gloo on CPU, each worker
one CPU and `train.threads=1`) on `enhancers.synthetic` (200 bp), global batch 64, epochs of `--steps` batches: one
fit of an untimed warm-up epoch and `--epochs` timed ones; a count is the median of the timed epochs' rates on rank
0 (global rows / its epoch's training time). `--rounds` rounds interleave the 1- and 2-worker counts, so a change in
the machine's load falls on both; the ratio is given per round and as the median. Numbers are under whatever load
the machine has: the load average is printed before and after — on a shared 2-core machine two workers compete
with everything else (Ray's own processes included), so the ratio is a lower bound of what an idle machine gives.

`--launcher torch` runs the same `fit` on processes started by `torch.multiprocessing` with a gloo group of their
own and no Ray: the difference from `--launcher ray` is what Ray's own processes (its daemons, the Train
controller's actors) cost the workers on this machine.

    .venv/bin/python bench/ddp.py [--models basset kmer_attention] [--steps 20] [--epochs 3] [--rounds 2]
        [--launcher ray|torch]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

MODELS = ("basset", "kmer_attention")


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _epoch_rates(model: str, n: int, epochs: int) -> list[float]:
    """This rank's fit of a warm-up epoch and `epochs` timed ones (no early stopping): each timed epoch's training
    sequences/s (global rows / this rank's epoch time)."""
    from harness.training.fit import fit
    from harness.training.run import RunRequest, load_data

    train = {"threads": 1, "progress": False, "batch_size": 64, "prefetch": 2, "patience": 0}
    request = RunRequest("enhancers.synthetic", model, {"train": train, "data": {"n": n}}, max_epochs=1 + epochs)
    run = request.resolve()
    splits = load_data(run).splits
    result = fit(run.task, run.plugin, run.hp, run.cfg, splits=splits)
    return [len(splits["train"]) / row["epoch_time_s"] for row in result.history[1:]]  # epoch 1: warm-up


def _ray_worker(config: dict[str, Any]) -> None:
    """A Ray Train worker; rank 0 writes its epochs' rates to `config["out"]`."""
    import ray.train

    os.environ.update(config["env"])
    rates = _epoch_rates(config["model"], config["n"], config["epochs"])
    if ray.train.get_context().get_world_rank() == 0:
        Path(config["out"]).write_text(json.dumps(rates))


def _torch_worker(rank: int, world: int, port: int, config: dict[str, Any]) -> None:
    """A `torch.multiprocessing` worker in a gloo group of `world` on loopback; rank 0 writes as `_ray_worker`."""
    import torch
    from torch import distributed as dist

    os.environ.update(config["env"], MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    if world > 1:
        dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        rates = _epoch_rates(config["model"], config["n"], config["epochs"])
    finally:
        if world > 1:
            dist.destroy_process_group()
    if rank == 0:
        Path(config["out"]).write_text(json.dumps(rates))


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rate(model: str, workers: int, args: argparse.Namespace, storage: str) -> float:
    """Training sequences/s of `model` on `workers` workers: the median of `args.epochs` timed epochs."""
    from harness.training.workers import worker_env

    out = Path(storage) / f"{model}-{workers}.json"
    n = int(args.steps * 64 / 0.8) + 200  # enhancers.synthetic trains on 80 % (val/test get the rest)
    config = {"model": model, "n": n, "epochs": args.epochs, "out": str(out), "env": worker_env()}
    if args.launcher == "torch":
        import torch.multiprocessing

        torch.multiprocessing.spawn(_torch_worker, args=(workers, _free_port(), config), nprocs=workers)
    else:
        from ray.train import RunConfig, ScalingConfig
        from ray.train.torch import TorchConfig, TorchTrainer

        TorchTrainer(
            _ray_worker,
            train_loop_config=config,
            torch_config=TorchConfig(backend="gloo"),
            scaling_config=ScalingConfig(num_workers=workers, resources_per_worker={"CPU": 1}),
            run_config=RunConfig(storage_path=storage, name=f"{model}-{workers}"),
        ).fit()
    return statistics.median(json.loads(out.read_text()))


def compare(args: argparse.Namespace, storage: str) -> None:
    """The table: per model and round the 1- and 2-worker rates and their ratio, then the median ratio."""
    print(f"{'model':<16}{'round':>6}{'1 worker':>10}{'2 workers':>11}{'ratio':>8}   (training sequences/s)")
    for model in args.models:
        ratios = []
        for round_ in range(1, args.rounds + 1):
            one, two = rate(model, 1, args, storage), rate(model, 2, args, storage)
            ratios.append(two / one)
            print(f"{model:<16}{round_:>6}{one:>10.1f}{two:>11.1f}{two / one:>7.2f}×", flush=True)
        print(f"{model:<16}{'median':>6}{'':>21}{statistics.median(ratios):>7.2f}×", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--steps", type=int, default=20, help="steps of global batch 64 per epoch")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per count (their median)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds of 1 then 2 workers")
    parser.add_argument("--launcher", choices=("ray", "torch"), default="ray")
    args = parser.parse_args(argv)
    from harness.tuning.ray_connection import init_local_ray, local_ray_auth

    with tempfile.TemporaryDirectory(prefix="ray", dir="/tmp") as tmp:
        os.environ["RAY_TMPDIR"] = tmp
        os.environ.setdefault("REGBENCH_CACHE", str(Path(tmp) / "cache"))
        print(f"load average before: {loadavg()}; cores: {os.cpu_count()}; launcher: {args.launcher}")
        if args.launcher == "torch":
            compare(args, tmp)
        else:
            local_ray_auth()
            import ray

            init_local_ray(num_cpus=2)
            try:
                compare(args, tmp)
            finally:
                ray.shutdown()
    print(f"load average after: {loadavg()}")


if __name__ == "__main__":
    main()
