"""The declared limits of what a user passes: names, counts and how deeply a value may nest.

Names (MLflow experiments, study files' `name`, Optuna study names) become folder names (`reports/NAME`, Ray's
results, MLflow's artifact folders), so they are 1–100 of `A-Z a-z 0-9 . _ -` and not all dots. Counts are
bounded so a typo fails at once instead of inside a worker (`trials: 1000000000000`). Numbers are ASCII digits
only (Python's `int()` also reads Arabic-Indic and other digits). A YAML value (a study file, a `--set` value)
nests at most `MAX_NESTING` levels, far below what makes a YAML parser recurse too deep.
"""

from __future__ import annotations

import argparse
import re

NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")
NAME_RULE = "1-100 characters of A-Z a-z 0-9 . _ - (not all dots)"
MAX_NESTING = 32
COUNTS = {  # inclusive ranges
    "trials": (1, 10_000),
    "max_epochs": (1, 100_000),
    "concurrency": (1, 1_024),
    "seed": (0, 2**32 - 1),  # numpy's seeds are 32-bit
    "workers_per_trial": (1, 1_024),
}
WORKERS_PER_TRIAL = 1  # the default `workers_per_trial` (study files) and `--workers-per-trial`


class LimitError(ValueError):
    """A name, count or value outside its declared limit; the message names it, the value and the limit."""


def check_name(value: str, what: str) -> str:
    """`value` if it is a valid name, else a LimitError naming `what`, the value and the rule."""
    if not isinstance(value, str) or not NAME.fullmatch(value) or not value.strip("."):
        raise LimitError(f"{what} {value!r} is invalid: must be {NAME_RULE}")
    return value


def count_problem(key: str, value: int) -> str | None:
    """Why the count `key=value` is outside `COUNTS[key]`, or None."""
    low, high = COUNTS[key]
    return None if low <= value <= high else f"{key}={value} is invalid: must be an integer in [{low}, {high}]"


def check_count(key: str, value: int, what: str = "") -> None:
    """LimitError unless `value` lies in `COUNTS[key]`; `what` prefixes the message (e.g. `--trials`)."""
    problem = count_problem(key, value)
    if problem:
        raise LimitError(f"{what}: {problem}" if what else problem)


def too_deep(text: str) -> int | None:
    """The 1-based line where flow collections (`[` / `{`) in YAML `text` first nest deeper than `MAX_NESTING`, or
    None (quoted strings are skipped)."""
    depth, line, quote = 0, 1, ""
    for char in text:
        if char == "\n":
            line += 1
        elif quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[{":
            depth += 1
            if depth > MAX_NESTING:
                return line
        elif char in "]}":
            depth = max(0, depth - 1)
    return None


def ascii_int(text: str) -> int:
    """An argparse type: a decimal integer of ASCII digits (an optional sign), e.g. `--trials 8`."""
    if not re.fullmatch(r"[+-]?[0-9]+", text.strip()):
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer of ASCII digits")
    return int(text)
