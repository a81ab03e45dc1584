"""A progress bar over a study's trials, driven from the `TrialService`'s `JobStatus`: trials ended, failed, and
the best value so far."""

from __future__ import annotations

import math
from typing import Any

from tqdm.auto import tqdm

from harness.tuning.jobs import JobStatus


class TrialProgress:
    """One tick per ended (completed, stopped or failed) trial; shows the best `metric` seen. A context manager."""

    def __init__(self, total: int, metric: str, desc: str, enabled: bool = True) -> None:
        self.metric = metric
        self.bar = tqdm(total=total, desc=desc, unit="trial", leave=False, disable=not enabled)

    def show(self, status: JobStatus) -> None:
        self.bar.update(status.ended - self.bar.n)
        best = f"{status.best:.4f}" if math.isfinite(status.best) else "—"
        self.bar.set_postfix({f"best {self.metric}": best, "failed": status.failed}, refresh=False)

    def __enter__(self) -> TrialProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.close()
