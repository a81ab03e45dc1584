"""The one concrete Task type: named, fixed splits loaded once, plus the task's metric function."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from harness.data.splits import SPLIT_NAMES, splits_digest
from harness.spec import Dataset, IOSpec, Task

__all__ = ["SPLIT_NAMES", "SplitTask", "splits_digest"]


@dataclass
class SplitTask(Task):
    """A task whose `load()` returns `{"train", "val", "test"}` datasets; loaded lazily, once."""

    name: str
    io: IOSpec
    primary_metric: str
    split_protocol: str
    synthetic: bool
    load: Callable[[], Mapping[str, Dataset]]
    metric_fn: Callable[[np.ndarray, np.ndarray], dict[str, float]]
    description: str = ""
    _splits: dict[str, Dataset] | None = field(default=None, repr=False)

    def splits(self) -> Mapping[str, Dataset]:
        if self._splits is None:
            loaded = dict(self.load())
            missing = [s for s in SPLIT_NAMES if s not in loaded]
            if missing:
                raise ValueError(f"task {self.name}: loader returned no {', '.join(missing)} split")
            self._splits = loaded
        return self._splits

    def metrics(self, y_true: np.ndarray, y_score: np.ndarray) -> dict[str, float]:
        return self.metric_fn(y_true, y_score)

    def digest(self) -> str:
        return splits_digest(self.splits())
