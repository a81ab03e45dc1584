"""`regbench plugin check NAME`: the contract checks the built-in plugins pass, run on any registered model or
task (`harness.contract`), printed as a table; exit 1 when a check fails."""

from __future__ import annotations

import argparse

EPILOG = """\
examples:
  regbench plugin check kmer_attention
  regbench plugin check my_cnn --plugins my_cnn.py
  regbench plugin check enhancers.synthetic --set data.n=200

A model is built on random batches of four task shapes (forward, gradients, padding), its settings and search
space are checked against their declared ranges, and its tiny variant trains for one epoch on the synthetic task
of each input kind, then is stored and reloaded. A task is built twice in empty caches: its splits, arrays, ids,
disjoint splits (either strand), digest, labels and metrics are checked."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plugin", help="check a model or task plugin against the contract",
                       description="Tools for model and task plugins.")  # fmt: skip
    commands = p.add_subparsers(dest="plugin_command", required=True, metavar="SUBCOMMAND")
    check = commands.add_parser(
        "check",
        help="run the contract checks on a registered model or task",
        description="Run the contract checks on model or task NAME and print one row per check (check, result, "
        "detail). Exit status 1 when any check fails; the detail names the shape or value at fault.",
        epilog=EPILOG,
    )
    check.add_argument("name", metavar="NAME", help="a registered model or task (see `regbench models`, `tasks`)")
    check.add_argument("--set", dest="overrides", action="append", default=[], metavar="data.KEY=VALUE",
                       help="a data option of the task to check (repeatable), e.g. data.n=200")  # fmt: skip
    check.add_argument("--seed", type=int, default=0, help="seed of the random batches (default 0)")
    check.set_defaults(func=run_check)


def run_check(args: argparse.Namespace) -> int:
    from harness.config import ConfigError, parse_overrides
    from harness.plugins import MODELS, TASKS, load_plugins

    load_plugins()
    overrides = parse_overrides(args.overrides)
    if overrides["model"] or overrides["train"]:
        raise ConfigError("--set takes data.* options of a task here; a model is checked with its tiny settings")
    if args.name in MODELS:
        if overrides["data"]:
            raise ConfigError(f"--set data.* applies to a task; {args.name} is a model")
        from harness.contract.model_checks import model_checks

        checks = model_checks(MODELS.get(args.name), args.seed)
        kind = "model"
    elif args.name in TASKS:
        from harness.contract.task_checks import task_checks

        checks = task_checks(args.name, overrides["data"], args.seed)
        kind = "task"
    else:
        import difflib

        from harness.registry import UnknownNameError

        near = difflib.get_close_matches(args.name, [*MODELS.names(), *TASKS.names()], n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(near)}?" if near else ""
        raise UnknownNameError(f"{args.name!r} is neither a registered model nor a task.{hint} "
                               "See `regbench models` and `regbench tasks`")  # fmt: skip
    from harness.contract import run, table

    results = run(checks)
    print(table(results))
    failed = [r.check for r in results if r.outcome == "FAIL"]
    passed = sum(r.outcome == "pass" for r in results)
    skipped = len(results) - passed - len(failed)
    verdict = f"FAILED: {', '.join(failed)}" if failed else "passes the contract"
    print(f"{kind} {args.name}: {passed} passed, {len(failed)} failed, {skipped} skipped — {verdict}")
    return 1 if failed else 0
