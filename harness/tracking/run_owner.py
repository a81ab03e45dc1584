"""Which process opened a run, and whether that process still exists.

Every run regbench opens is tagged `regbench.process` = `host:pid:start`, where `start` is the kernel's boot id
and the process's start tick read from /proc (empty where there is no /proc), so a pid reused after a crash or
a reboot is not mistaken for the process that opened the run. A run still RUNNING whose process on this host is
gone was abandoned (SIGKILL, out of memory, power loss); `harness.tracking.store` ends such runs KILLED. A run opened on
another host is never judged: its process cannot be seen from here.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

PROCESS_TAG = "regbench.process"


def _start_stamp(pid: int) -> str:
    """`bootid-starttick` of process `pid`, or "" if /proc cannot tell (no /proc, or no such process)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    fields = stat[stat.rindex(")") + 2 :].split()  # fields from the 3rd (state) on; the 22nd is the start tick
    return f"{boot}-{fields[19]}"


def process_stamp(pid: int | None = None) -> str:
    """`host:pid:start` of `pid` (default: this process), the value of the `regbench.process` tag."""
    pid = pid or os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_stamp(pid)}"


def process_gone(stamp: str) -> bool:
    """True only when `stamp` names a process of this host that no longer exists (a pid now held by another
    process counts as gone); False for other hosts, malformed or empty stamps, and live processes."""
    host, _, rest = stamp.partition(":")
    pid_text, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    now = _start_stamp(pid)
    if now and start:
        return now != start
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by another user
        return False
    return False
