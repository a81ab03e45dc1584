"""ResourceMonitor on CPU (this machine has no NVML) and, when present, on CUDA."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest
import torch

from harness.training.resources import ResourceMonitor, gpu_available_via_nvml, peak_rss_mb


def test_cpu_monitor_times_block_and_omits_gpu_keys() -> None:
    with ResourceMonitor(device="cpu") as monitor:
        time.sleep(0.05)
    summary = monitor.summary()
    assert summary["wall_time_s"] >= 0.05
    assert summary["peak_rss_mb"] > 0
    assert set(summary) == {"wall_time_s", "peak_rss_mb"}


def test_big_allocation_raises_peak_rss() -> None:
    before = peak_rss_mb()
    with ResourceMonitor(device="cpu") as monitor:
        block = np.ones(int((before + 64) * 2**20 / 8))  # more than the process has ever held: a new peak
        block[::4096] += 1.0
    assert monitor.summary()["peak_rss_mb"] > before + 32
    del block


@pytest.mark.skipif(gpu_available_via_nvml(), reason="NVML is present here")
def test_missing_nvml_degrades_silently(capfd: pytest.CaptureFixture[str]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the pynvml deprecation warning must be filtered, not emitted
        assert gpu_available_via_nvml() is False
        with ResourceMonitor(device="cuda" if torch.cuda.is_available() else "cpu") as monitor:
            pass
    assert "gpu_peak_used_mb" not in monitor.summary()
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_peak_grows_with_allocation() -> None:
    with ResourceMonitor(device="cuda") as small:
        torch.zeros(1024, device="cuda")
    with ResourceMonitor(device="cuda") as big:
        tensor = torch.zeros(64 * 2**20 // 4, device="cuda")  # 64 MiB
        torch.cuda.synchronize()
    del tensor
    assert big.summary()["cuda_peak_allocated_mb"] >= small.summary()["cuda_peak_allocated_mb"] + 63
    if gpu_available_via_nvml():
        assert big.summary()["gpu_peak_used_mb"] > 0
