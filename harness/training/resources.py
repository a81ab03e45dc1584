"""Resource accounting for a block of work: wall time, peak host memory, peak GPU memory.

Peak RSS comes from `resource.getrusage(RUSAGE_SELF).ru_maxrss`: the kernel's high-water mark for this process,
available on Linux and macOS without parsing /proc or sampling (so no spike is missed). It cannot be reset, so it
is the peak over the process's life up to the end of the block; in a fresh trial / cell process that is the
cell's peak. GPU memory comes from two sources when a CUDA device is in use: PyTorch's allocator peak
(`torch.cuda.max_memory_allocated`, reset on entry) and the device-wide used memory from NVML (all processes,
including the CUDA context), sampled by a background thread. Without a GPU or NVML those keys are simply absent.
"""

from __future__ import annotations

import contextlib
import resource
import sys
import threading
import time
import warnings
from types import ModuleType, TracebackType
from typing import Any

import torch

_MB = 2**20


def _pynvml() -> ModuleType | None:
    """Import pynvml lazily, silencing its deprecation notice; None when it is not installed."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The pynvml package is deprecated", category=FutureWarning)
        try:
            import pynvml
        except ImportError:
            return None
    return pynvml


def gpu_available_via_nvml() -> bool:
    """True when NVML loads and reports at least one GPU."""
    nvml = _pynvml()
    if nvml is None:
        return False
    try:
        nvml.nvmlInit()
    except nvml.NVMLError:
        return False
    try:
        return nvml.nvmlDeviceGetCount() > 0
    except nvml.NVMLError:
        return False
    finally:
        nvml.nvmlShutdown()


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (ru_maxrss: KiB on Linux, bytes on macOS)."""
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / _MB if sys.platform == "darwin" else maxrss / 1024


class _NvmlSampler:
    """Background thread recording the peak of NVML `memory.used` (bytes) of one device every `interval_s`."""

    def __init__(self, nvml: ModuleType, handle: Any, interval_s: float) -> None:
        self._nvml, self._handle, self._interval_s = nvml, handle, interval_s
        self._stop = threading.Event()
        self.peak_bytes = 0
        self._sample()
        self._thread = threading.Thread(target=self._run, name="nvml-sampler", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        self.peak_bytes = max(self.peak_bytes, int(self._nvml.nvmlDeviceGetMemoryInfo(self._handle).used))

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self._sample()
            except self._nvml.NVMLError:
                return

    def stop(self) -> None:
        """Stop the thread and take a last sample."""
        self._stop.set()
        self._thread.join()
        with contextlib.suppress(self._nvml.NVMLError):
            self._sample()


def _nvml_handle(nvml: ModuleType, index: int) -> Any:
    """NVML handle of CUDA device `index`, matched by UUID (robust to CUDA_VISIBLE_DEVICES), else by index."""
    try:
        return nvml.nvmlDeviceGetHandleByUUID(f"GPU-{torch.cuda.get_device_properties(index).uuid}")
    except (nvml.NVMLError, AttributeError, RuntimeError):
        return nvml.nvmlDeviceGetHandleByIndex(index)


class ResourceMonitor:
    """Context manager measuring wall time, peak RSS and, on a CUDA device, peak GPU memory of its block.

    `device`: the torch device the work runs on; None means the current CUDA device when CUDA is available, else
    CPU. `interval_s`: NVML sampling period. After the block, `summary()` gives `wall_time_s`, `peak_rss_mb` and,
    when measured, `cuda_peak_allocated_mb` and `gpu_peak_used_mb`.
    """

    def __init__(self, device: torch.device | str | None = None, interval_s: float = 0.2) -> None:
        if device is None:
            device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
        self.device = torch.device(device)
        self.interval_s = interval_s
        self._nvml: ModuleType | None = None
        self._sampler: _NvmlSampler | None = None
        self._summary: dict[str, float] = {}

    def _cuda_index(self) -> int | None:
        if self.device.type != "cuda" or not torch.cuda.is_available():
            return None
        return self.device.index if self.device.index is not None else torch.cuda.current_device()

    def _start_nvml(self, index: int) -> None:
        nvml = _pynvml()
        if nvml is None:
            return
        try:
            nvml.nvmlInit()
        except nvml.NVMLError:
            return
        self._nvml = nvml
        try:
            self._sampler = _NvmlSampler(nvml, _nvml_handle(nvml, index), self.interval_s)
        except nvml.NVMLError:
            self._sampler = None

    def __enter__(self) -> ResourceMonitor:
        self._summary = {}
        index = self._cuda_index()
        if index is not None:
            torch.cuda.reset_peak_memory_stats(index)
            self._start_nvml(index)
        self._t0 = time.perf_counter()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        summary = {"wall_time_s": time.perf_counter() - self._t0, "peak_rss_mb": peak_rss_mb()}
        index = self._cuda_index()
        if index is not None:
            summary["cuda_peak_allocated_mb"] = torch.cuda.max_memory_allocated(index) / _MB
        if self._sampler is not None:
            self._sampler.stop()
            summary["gpu_peak_used_mb"] = self._sampler.peak_bytes / _MB
            self._sampler = None
        if self._nvml is not None:
            with contextlib.suppress(self._nvml.NVMLError):
                self._nvml.nvmlShutdown()
            self._nvml = None
        self._summary = summary

    def summary(self) -> dict[str, float]:
        """Measurements of the last completed block (empty before the block has ended)."""
        return dict(self._summary)
