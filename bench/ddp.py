"""Data-parallel training on Ray Train workers: training sequences/s of 1 vs 2 workers (one torch thread each), for
basset and kmer_attention, as a ratio, in one run.

Both counts go through the same path (`harness.training.workers`' Ray Train `TorchTrainer`, gloo on CPU, each worker
one CPU and `train.threads=1`) on `enhancers.synthetic` (200 bp), global batch 64, one epoch of `--steps` batches
after an untimed warm-up epoch in the same workers; the rate is rank 0's (global rows / its training time). Numbers
are under whatever load the machine has: the load average is printed before and after — on a shared 2-core machine
two workers compete with everything else, so the ratio is a lower bound of what an idle machine gives.

    .venv/bin/python bench/ddp.py [--models basset kmer_attention] [--steps 20]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

MODELS = ("basset", "kmer_attention")


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _measure(config: dict[str, Any]) -> None:
    """A Ray Train worker: a warm-up epoch, then a timed one; rank 0 writes the sequences/s to `config["out"]`."""
    import ray.train

    from harness.training.fit import fit
    from harness.training.run import RunRequest, load_data

    os.environ.update(config["env"])
    train = {"threads": 1, "progress": False, "batch_size": 64, "prefetch": 2}
    request = RunRequest("enhancers.synthetic", config["model"], {"train": train, "data": {"n": config["n"]}},
                         max_epochs=1)  # fmt: skip
    run = request.resolve()
    splits = load_data(run).splits
    fit(run.task, run.plugin, run.hp, run.cfg, splits=splits)  # warm-up: kernels, allocator, gloo buffers
    result = fit(run.task, run.plugin, run.hp, run.cfg, splits=splits)
    if ray.train.get_context().get_world_rank() == 0:
        Path(config["out"]).write_text(str(result.throughput))


def rate(model: str, workers: int, steps: int, storage: str) -> float:
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from harness.training.workers import worker_env

    out = Path(storage) / f"{model}-{workers}.txt"
    n = int(steps * 64 / 0.8) + 200  # enhancers.synthetic trains on 80 % (val/test get the rest)
    TorchTrainer(
        _measure,
        train_loop_config={"model": model, "n": n, "out": str(out), "env": worker_env()},
        torch_config=TorchConfig(backend="gloo"),
        scaling_config=ScalingConfig(num_workers=workers, resources_per_worker={"CPU": 1}),
        run_config=RunConfig(storage_path=storage, name=f"{model}-{workers}"),
    ).fit()
    return float(out.read_text())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args(argv)
    from harness.tuning.ray_connection import init_local_ray, local_ray_auth

    with tempfile.TemporaryDirectory(prefix="ray", dir="/tmp") as tmp:
        os.environ["RAY_TMPDIR"] = tmp
        os.environ.setdefault("REGBENCH_CACHE", str(Path(tmp) / "cache"))
        local_ray_auth()
        import ray

        print(f"load average before: {loadavg()}; cores: {os.cpu_count()}")
        init_local_ray(num_cpus=2)
        try:
            print(f"{'model':<16}{'1 worker':>10}{'2 workers':>11}{'ratio':>8}   (training sequences/s)")
            for model in args.models:
                one, two = rate(model, 1, args.steps, tmp), rate(model, 2, args.steps, tmp)
                print(f"{model:<16}{one:>10.1f}{two:>11.1f}{two / one:>7.2f}×", flush=True)
        finally:
            ray.shutdown()
    print(f"load average after: {loadavg()}")


if __name__ == "__main__":
    main()
