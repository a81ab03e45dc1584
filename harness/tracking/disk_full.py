"""A full disk while a run writes its files: an error that names the full folder, not a bare `[Errno 28]`."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # no space, over quota, over the file-size limit


def is_full(err: BaseException) -> bool:
    return isinstance(err, OSError) and err.errno in FULL


def local_path(uri: str) -> Path | None:
    """The folder of a `file://` (or plain path) artifact URI; None for a remote store."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path))
    return None


def free_bytes(path: Path) -> int | None:
    """Bytes free to this user on `path`'s filesystem (its nearest existing folder), None if unknown."""
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is None:
        return None
    stat = os.statvfs(existing)
    return stat.f_bavail * stat.f_frsize


def disk_full_error(err: OSError, artifact_uri: str) -> OSError:
    """`err` (out of space while writing a run's files) as an OSError naming where: the run's artifact folder or
    the temporary folder MLflow stages files in, whichever is (nearly) full, else both."""
    candidates = [p for p in (local_path(artifact_uri), Path(tempfile.gettempdir())) if p is not None]
    full = [p for p in candidates if (free_bytes(p) or 0) < 1 << 20] or candidates
    where = " or ".join(str(p) for p in full)
    reason = os.strerror(err.errno) if err.errno else str(err)
    named = f" ({err.filename})" if err.filename else ""
    return OSError(err.errno, f"{reason} writing the run's files to {where}{named}; free space there and re-run")
