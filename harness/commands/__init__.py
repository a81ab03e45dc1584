"""CLI subcommands; each module has `register(subparsers)` that adds its parser with `func=run`.

`register` and the module's top level import only the standard library and light harness modules (config, paths,
registry); torch, mlflow, ray, optuna, pandas, matplotlib, sklearn, transformers and the plugin packages are
imported inside the function that runs the command, so that `regbench --help` starts in a fraction of a second.
`tests/test_cli_startup.py` checks this for every module in `harness.cli.COMMAND_MODULES`.
"""

from harness.paths import use_project_caches

use_project_caches()  # before any command imports matplotlib or torch: their caches go under $REGBENCH_CACHE
