"""A failed cell's stored reason: the underlying error's first line, without Ray's wrapper or terminal codes."""

from __future__ import annotations

import re

ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")  # colour and cursor codes Ray puts in its error headers
LIMIT = 500  # characters of a reason (a tag value)


def plain(text: str) -> str:
    """`text` without terminal escape codes."""
    return ANSI.sub("", text)


def reason_of(err: BaseException) -> str:
    """`Type: message` of the error under any Ray wrappers (`RayTaskError.cause`): its first non-empty line,
    without terminal codes, at most `LIMIT` characters."""
    seen = {id(err)}
    while isinstance(getattr(err, "cause", None), BaseException) and id(err.cause) not in seen:
        err = err.cause
        seen.add(id(err))
    lines = [line.strip() for line in plain(str(err)).splitlines() if line.strip()]
    return (f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__)[:LIMIT]
