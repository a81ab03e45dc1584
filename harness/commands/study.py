"""`regbench study`: tune one model on one task (one cell) with Ray Tune + Optuna; prints `parent_run_id: <id>` last."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from harness.commands.train import overrides_from
from harness.limits import WORKERS_PER_TRIAL, ascii_int, check_name

if TYPE_CHECKING:
    from harness.tuning.search import StudyRequest, StudyResult

EPILOG = """examples:
  regbench study --task enhancers.ienhancer2l --model kmer_attention --trials 16 --concurrency 2 --max-epochs 8
  regbench study --task enhancers.synthetic --model kmer_attention --trials 4 --set data.n=500 --set model.k=4
  # on a running Ray cluster (trials log to an MLflow tracking server, not a SQLite file):
  mlflow server --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000 &
  MLFLOW_TRACKING_URI=http://127.0.0.1:5000 regbench study --task enhancers.ienhancer2l --model kmer_attention \\
      --ray-address auto --concurrency 8 --gpus-per-trial 0.5

Re-running the same command resumes the study from its Optuna storage: only the missing trials run.
Settings fixed with --set are not searched."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "study",
        help="hyperparameter study of one model on one task (Ray Tune + Optuna TPE + ASHA), refit of the best",
        description="Search MODEL's hyperparameters on TASK (seeded Optuna TPE via Ray Tune, ASHA early stopping on "
        "the validation metric), refit the best configuration and log it to MLflow: one parent run per study, one "
        "child run per trial, in experiment --experiment (default: the study name).",
        epilog=EPILOG,
    )
    p.add_argument("--task", required=True, help="task name (see `regbench tasks`)")
    p.add_argument("--model", required=True, help="model name (see `regbench models`)")
    p.add_argument("--trials", type=ascii_int, default=8, help="finished trials wanted in the study (default 8)")
    p.add_argument("--concurrency", type=ascii_int, default=1, help="trials running at once (default 1)")
    p.add_argument("--max-epochs", type=ascii_int, default=10,
                   help="epoch budget per trial and for the refit (default 10)")  # fmt: skip
    p.add_argument("--seed", type=ascii_int, default=0, help="seed of the sampler, the splits' training and the refit")
    p.add_argument("--seeds", default=None, metavar="S,S,...",
                   help="evaluation seeds, one refit of the best configuration each (default: --seed)")  # fmt: skip
    p.add_argument("--experiment", default=None, help="MLflow experiment (default: the study name)")
    p.add_argument("--study-name", default=None, help="Optuna study name (default TASK__MODEL__sSEED)")
    p.add_argument(
        "--storage", default=None, help="Optuna storage URL (default: optuna.db beside a SQLite tracking store)"
    )
    p.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="attach to a Ray cluster (auto, host:port or ray://host:port); default: local Ray")  # fmt: skip
    p.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs reserved per trial (default 1)")
    p.add_argument("--gpus-per-trial", type=float, default=0.0, help="GPUs per trial, fractional OK (default 0)")
    p.add_argument("--workers-per-trial", type=ascii_int, default=WORKERS_PER_TRIAL, metavar="N",
                   help="Ray Train workers per trial and refit of a torch model, data-parallel, each holding "
                   f"--cpus-per-trial/--gpus-per-trial (default {WORKERS_PER_TRIAL})")  # fmt: skip
    fixed = "fix a setting: model.*, train.* or data.* (repeatable); fixed settings are not searched"
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=fixed)
    p.add_argument("--sets", default="", metavar="'K=V K=V'", help="several --set items in one string")
    p.set_defaults(func=run)


def spec_from(args: argparse.Namespace) -> StudyRequest:
    from harness.tuning.search import StudyRequest

    return StudyRequest(
        task=args.task, model=args.model, overrides=overrides_from(args), seed=args.seed,
        seeds=parse_seeds(args.seeds), trials=args.trials,
        concurrency=args.concurrency, max_epochs=args.max_epochs, experiment=args.experiment,
        study_name=args.study_name, storage=args.storage, ray_address=args.ray_address,
        cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
        workers_per_trial=args.workers_per_trial,
    )  # fmt: skip


def parse_seeds(text: str | None) -> tuple[int, ...]:
    """`"0,1,2"` → `(0, 1, 2)`; None → `()` (the search seed only)."""
    if text is None:
        return ()
    try:
        seeds = tuple(ascii_int(s) for s in text.split(","))
    except (ValueError, argparse.ArgumentTypeError):
        raise SystemExit(f"regbench study: --seeds {text!r} must be comma-separated integers, e.g. 0,1,2") from None
    if len(set(seeds)) != len(seeds):
        raise SystemExit(f"regbench study: --seeds {text!r} repeats a seed")
    return seeds


def summary(result: StudyResult) -> str:
    """A two-column table of the study's outcome."""
    primary = result.primary_metric
    test = result.test_metrics
    seeds = len(result.refit_run_ids)
    if seeds > 1:
        score = f"{test[f'test_{primary}_mean']:.4f} ± {test[f'test_{primary}_sd']:.4f} (mean ± sd, {seeds} seeds)"
    else:
        ci = (test.get("test_primary_ci_low", float("nan")), test.get("test_primary_ci_high", float("nan")))
        score = f"{test[f'test_{primary}_mean']:.4f} [{ci[0]:.4f}, {ci[1]:.4f}]"
    rows = [
        ("study", result.study_name),
        ("experiment", result.experiment),
        ("trials (new / failed)", f"{result.n_trials} ({result.n_new_trials} / {result.n_failed})"),
        (f"best val_{primary}", f"{result.best_val:.4f}"),
        *((f"  {k}", repr(v)) for k, v in sorted(result.best_params.items())),
        (f"refit test_{primary}", score),
        ("n_params", str(result.n_params)),
        ("trial epochs", str(result.trial_epochs)),
        ("wall time", f"{result.wall_time_s:.1f} s"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def run(args: argparse.Namespace) -> int:
    from harness.tuning.search import StudyFailedError, run_study
    from harness.tuning.trial_service import TrialServiceError

    spec = spec_from(args)
    check_name(spec.name, "study name")  # it names Ray's results folder
    try:
        result = run_study(spec)
    except (StudyFailedError, TrialServiceError) as err:
        print(f"regbench study: {err}", file=sys.stderr)
        return 1
    print(summary(result))
    print(f"parent_run_id: {result.parent_run_id}")
    if result.n_trials < spec.trials:  # trials failed (or their workers were lost): the search is short of budget
        print(f"regbench study: only {result.n_trials} of the {spec.trials} trials asked for finished "
              f"({result.n_failed} failed, see their error.txt); the refit used the best of those. Re-run the same "
              "command to run the missing trials.", file=sys.stderr)  # fmt: skip
        return 1
    return 0
