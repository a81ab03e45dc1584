"""ResourceMonitor's RSS peak is the block's own: a block after a big (freed) allocation reports a smaller peak,
an enclosing block keeps the peak of what ran before a nested one, and without a resettable VmHWM the RSS is
sampled."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest

from harness.training import resources
from harness.training.resources import ResourceMonitor

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="per-block peaks need /proc")
BIG_MB = 256


def _touch_big() -> None:
    """Allocate, touch and free BIG_MB MiB (numpy returns a block this large to the OS on free)."""
    block = np.ones(BIG_MB * 2**20 // 8)
    block[::512] += 1.0
    del block


def test_a_block_after_a_big_allocation_reports_a_smaller_peak() -> None:
    with ResourceMonitor(device="cpu") as big:
        _touch_big()
    with ResourceMonitor(device="cpu") as small:
        np.ones(2**20).sum()
    assert big.rss_source == small.rss_source == "hwm"
    assert small.summary()["peak_rss_mb"] < big.summary()["peak_rss_mb"] - BIG_MB / 2
    assert resources.peak_rss_mb() < big.summary()["peak_rss_mb"] - BIG_MB / 2  # since the last block began


def test_an_enclosing_block_keeps_the_peak_before_a_nested_one() -> None:
    with ResourceMonitor(device="cpu") as outer:
        _touch_big()
        with ResourceMonitor(device="cpu") as inner:  # resets VmHWM: the outer block's peak is carried over
            pass
        assert resources.peak_rss_mb() >= inner.summary()["peak_rss_mb"] + BIG_MB / 2
    assert outer.summary()["peak_rss_mb"] >= inner.summary()["peak_rss_mb"] + BIG_MB / 2


def test_without_clear_refs_the_rss_is_sampled(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(resources, "_CLEAR_REFS", tmp_path / "absent" / "clear_refs")  # not writable
    monkeypatch.setattr(resources, "_TRACKER", resources._PeakTracker())
    with ResourceMonitor(device="cpu", interval_s=0.01) as big:
        block = np.ones(BIG_MB * 2**20 // 8)
        block[::512] += 1.0
        time.sleep(0.1)
        del block
    with ResourceMonitor(device="cpu", interval_s=0.01) as small:
        pass
    assert big.rss_source == small.rss_source == "sampled"
    assert small.summary()["peak_rss_mb"] < big.summary()["peak_rss_mb"] - BIG_MB / 2
