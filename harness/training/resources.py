"""Resource accounting for a block of work: wall time, peak host memory, peak GPU memory.

Peak RSS is the block's own, also in a reused worker process (Ray trials, refits, cells run one after another):
- on Linux, the kernel's high-water mark `VmHWM` of /proc/self/status, reset to the current RSS on entry by
  writing "5" to /proc/self/clear_refs (Linux >= 4.0), so no spike is missed and nothing is sampled;
- where that file cannot be written, the current RSS (/proc/self/statm) sampled every `interval_s` by a background
  thread (a spike shorter than the interval can be missed);
- without /proc (macOS), `ru_maxrss`, the process's lifetime peak up to the end of the block.
Monitors may nest (an embedding step inside a training run): a reset on entering an inner block first folds the
peak so far into every enclosing block, so an outer block's peak still covers the whole of it.
GPU memory comes from two sources when a CUDA device is in use: PyTorch's allocator peak
(`torch.cuda.max_memory_allocated`, reset on entry) and the device-wide used memory from NVML (all processes,
including the CUDA context), sampled by a background thread. Without a GPU or NVML those keys are simply absent.
"""

from __future__ import annotations

import contextlib
import os
import resource
import sys
import threading
import time
import warnings
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

import torch

_MB = 2**20
_STATUS, _CLEAR_REFS, _STATM = Path("/proc/self/status"), Path("/proc/self/clear_refs"), Path("/proc/self/statm")


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


def _lifetime_peak_mb() -> float:
    """Peak RSS over the process's life, in MiB (ru_maxrss: KiB on Linux, bytes on macOS)."""
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / _MB if sys.platform == "darwin" else maxrss / 1024


def _hwm_mb() -> float | None:
    """The kernel's RSS high-water mark (`VmHWM`) in MiB, None without /proc."""
    try:
        status = _STATUS.read_text()
    except OSError:
        return None
    found = next((line for line in status.splitlines() if line.startswith("VmHWM:")), None)
    return int(found.split()[1]) / 1024 if found else None


def _current_rss_mb() -> float | None:
    """The current RSS in MiB (/proc/self/statm), None without /proc."""
    try:
        return int(_STATM.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / _MB
    except (OSError, ValueError, IndexError):
        return None


def _reset_hwm() -> bool:
    """Reset `VmHWM` to the current RSS (/proc/self/clear_refs "5"); False where the kernel does not allow it."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


class _PeakTracker:
    """The RSS peak of each open block of this process (see the module docstring for the three ways)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._carried: dict[int, float] = {}  # open block -> its peak before the latest reset (MiB)
        self._resettable: bool | None = None  # unknown until the first block opens

    def open(self, key: int) -> str:
        """Start tracking block `key`; returns how: "hwm", "sampled" or "lifetime"."""
        with self._lock:
            hwm = _hwm_mb()
            if hwm is None:
                return "lifetime"
            if self._resettable is not False:
                for other in self._carried:
                    self._carried[other] = max(self._carried[other], hwm)
                self._resettable = _reset_hwm()
            if not self._resettable:
                return "sampled"
            self._carried[key] = 0.0
            return "hwm"

    def close(self, key: int) -> float:
        """The peak of block `key` since it opened (hwm mode), in MiB."""
        with self._lock:
            return max(self._carried.pop(key, 0.0), _hwm_mb() or 0.0)

    def peak_mb(self) -> float:
        """The peak since the outermost open block began (its reset), else since the process started."""
        with self._lock:
            hwm = _hwm_mb() if self._resettable else None
            return max([hwm, *self._carried.values()]) if hwm is not None else _lifetime_peak_mb()


_TRACKER = _PeakTracker()


def peak_rss_mb() -> float:
    """Peak resident set size in MiB: where the kernel lets VmHWM be reset (Linux), since the outermost open
    `ResourceMonitor` block began (with none open, since the last one began); else over the process's life."""
    return _TRACKER.peak_mb()


class _RssSampler:
    """Background thread recording the peak of the current RSS every `interval_s` (where VmHWM cannot be reset)."""

    def __init__(self, interval_s: float) -> None:
        self._interval_s = interval_s
        self._stop = threading.Event()
        self.peak_mb = _current_rss_mb() or 0.0
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.peak_mb = max(self.peak_mb, _current_rss_mb() or 0.0)

    def stop(self) -> float:
        """Stop the thread; returns the peak including a last sample."""
        self._stop.set()
        self._thread.join()
        return max(self.peak_mb, _current_rss_mb() or 0.0)


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
    CPU. `interval_s`: NVML (and, where VmHWM cannot be reset, RSS) sampling period. After the block, `summary()`
    gives `wall_time_s`, `peak_rss_mb` (the block's own peak) and, when measured, `cuda_peak_allocated_mb` and
    `gpu_peak_used_mb`. `rss_source` says how the RSS peak was measured: "hwm", "sampled" or "lifetime".
    """

    def __init__(self, device: torch.device | str | None = None, interval_s: float = 0.2) -> None:
        if device is None:
            device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
        self.device = torch.device(device)
        self.interval_s = interval_s
        self._nvml: ModuleType | None = None
        self._sampler: _NvmlSampler | None = None
        self._rss_sampler: _RssSampler | None = None
        self._summary: dict[str, float] = {}
        self.rss_source = ""

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
        self.rss_source = _TRACKER.open(id(self))
        if self.rss_source == "sampled":
            self._rss_sampler = _RssSampler(self.interval_s)
        index = self._cuda_index()
        if index is not None:
            torch.cuda.reset_peak_memory_stats(index)
            self._start_nvml(index)
        self._t0 = time.perf_counter()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        summary = {"wall_time_s": time.perf_counter() - self._t0, "peak_rss_mb": self._rss_peak()}
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

    def _rss_peak(self) -> float:
        if self.rss_source == "hwm":
            return _TRACKER.close(id(self))
        if self._rss_sampler is not None:
            peak, self._rss_sampler = self._rss_sampler.stop(), None
            return peak
        return _lifetime_peak_mb()

    def elapsed_s(self) -> float:
        """Wall seconds since the block began (while it runs)."""
        return time.perf_counter() - self._t0

    def summary(self) -> dict[str, float]:
        """Measurements of the last completed block (empty before the block has ended)."""
        return dict(self._summary)
