"""The torch thread policy for `train.threads=0` (`fit.default_threads`, measured by `bench/threads.py`)."""

from __future__ import annotations

import pytest
import torch

from harness.plugins import make_task
from harness.training import fit as fit_module
from harness.training.run import RunRequest, load_data


@pytest.mark.parametrize(("cores", "expected"), [(1, 1), (2, 1), (8, None)])
def test_default_threads_follows_the_core_count(monkeypatch: pytest.MonkeyPatch, cores: int, expected: int) -> None:
    monkeypatch.setattr(fit_module.os, "cpu_count", lambda: cores)
    assert fit_module.default_threads() == (expected or torch.get_num_threads())


def test_fit_applies_the_policy_unless_threads_are_set(monkeypatch: pytest.MonkeyPatch) -> None:
    before = torch.get_num_threads()
    monkeypatch.setattr(fit_module.os, "cpu_count", lambda: 2)
    task = make_task("enhancers.synthetic", {"n": 100})
    try:
        for threads, expected in ((0, 1), (2, 2)):
            run = RunRequest(task.name, "gc_length", {"train": {"threads": threads}}, max_epochs=1).resolve(task=task)
            fit_module.fit(task, run.plugin, run.hp, run.cfg, splits=load_data(run).splits)
            assert torch.get_num_threads() == expected
    finally:
        torch.set_num_threads(before)
