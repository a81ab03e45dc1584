"""The plugin contract as runnable checks, shared by `regbench plugin check` and the test suite.

Each check is a function that returns a one-line detail when the plugin passes, raises `ContractError` naming the
shape or value at fault when it does not, and `CheckSkipped` with the reason when it does not apply (e.g. padding
on a feature-table model). `model_checks` / `task_checks` list them for one plugin; `run` turns any exception into
a failed row, so a broken plugin gives a table, not a traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

Outcome = Literal["pass", "FAIL", "skip"]


class ContractError(AssertionError):
    """A plugin breaks the contract; the message names the check's subject and the shape or value at fault."""


class CheckSkipped(Exception):
    """A check does not apply to this plugin; the message says why."""


def expect(condition: object, message: str) -> None:
    """Raise a ContractError with `message` unless `condition` holds (kept under `python -O`, unlike assert)."""
    if not condition:
        raise ContractError(message)


@dataclass(frozen=True)
class CheckResult:
    check: str
    outcome: Outcome
    detail: str


Check = tuple[str, Callable[[], str]]  # (name, run) — run returns the detail of a pass


def run(checks: Iterable[Check]) -> list[CheckResult]:
    """Run every check; an exception fails its row with the exception's first line (the type when not a
    ContractError), and the next check still runs."""
    results = []
    for name, fn in checks:
        try:
            results.append(CheckResult(name, "pass", fn()))
        except CheckSkipped as skip:
            results.append(CheckResult(name, "skip", str(skip)))
        except Exception as err:
            results.append(CheckResult(name, "FAIL", one_line(err)))
    return results


def one_line(err: BaseException) -> str:
    """`err` as one line: its message's first line, prefixed by the type unless it is a ContractError."""
    text = (str(err).strip().splitlines() or [""])[0]
    return text if isinstance(err, ContractError) else f"{type(err).__name__}: {text}"


def table(results: list[CheckResult]) -> str:
    """The results as an aligned `check  result  detail` table."""
    width = max([len("check"), *(len(r.check) for r in results)])
    lines = [f"{'check':<{width}}  result  detail"]
    lines += [f"{r.check:<{width}}  {r.outcome:<6}  {r.detail}" for r in results]
    return "\n".join(lines)
