"""A progress bar over a study's trials (Ray Tune callback): trials done, failed, and the best value so far."""

from __future__ import annotations

from typing import Any

from ray import tune
from tqdm.auto import tqdm


class TrialProgress(tune.Callback):
    """Advances one tick per finished (completed, stopped or failed) trial; shows the best `metric` seen."""

    def __init__(self, total: int, metric: str, desc: str) -> None:
        self.total, self.metric, self.desc = total, metric, desc
        self.best = float("-inf")
        self.failed = 0
        self.bar: tqdm | None = None  # made in setup(): the Tuner pickles its callbacks, and a tqdm cannot be

    def setup(self, **info: Any) -> None:
        self.bar = tqdm(total=self.total, desc=self.desc, unit="trial", leave=False)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        value = result.get(self.metric)
        if self.bar is not None and isinstance(value, float) and value > self.best:
            self.best = value
            self.bar.set_postfix({f"best {self.metric}": f"{value:.4f}", "failed": self.failed})

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.failed += 1
        if self.bar is not None:
            self.bar.set_postfix({f"best {self.metric}": f"{self.best:.4f}", "failed": self.failed})
            self.bar.update(1)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        if self.bar is not None:
            self.bar.close()
