"""Ray's worker setup hook (`runtime_env["worker_process_setup_hook"]`) for the Rays regbench starts: every Python
worker imports the training stack (torch, mlflow, the plugins, the trial and refit code) as it starts, so a worker
Ray starts ahead of time, or keeps idle after a task, is already warm when a trial actor or a refit lands on it.
"""

from __future__ import annotations

HOOK = "harness.tuning.warm_worker.import_training_stack"


def import_training_stack() -> None:
    """Import what every trial and refit needs before its first line runs."""
    from harness.plugins import load_plugins
    from harness.tuning import refit, trial  # noqa: F401  (torch, mlflow, the run path)

    load_plugins()
