"""The `regbench` command line. Subcommands live in `harness.commands.*`."""

from __future__ import annotations

import _thread
import argparse
import importlib
import signal
import sys
import textwrap
import threading
from types import FrameType

# Each module registers its subcommands; it must import heavy libraries (torch, mlflow, ...) only inside the
# functions that run a command, so that `regbench --help` stays fast (tests/test_cli_startup.py).
COMMAND_MODULES = (
    "listing", "train", "predict", "export", "audit", "transfer", "study", "benchmark", "report", "compare",
    "interpret", "lm", "plugin", "new", "slurm", "variants",
)  # fmt: skip


EPILOG = """\
examples:
  regbench train --task enhancers.synthetic --model kmer_attention --max-epochs 3
  regbench export --task enhancers.synthetic --split test --out test.tsv
  regbench evaluate --run RUN_ID --input test.tsv
  regbench benchmark --study studies/smoke.yaml

`regbench COMMAND --help` describes a command, with examples."""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Wraps descriptions and epilog prose to the terminal's width; keeps paragraphs with indented lines (examples,
    lists) as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = []
        for paragraph in text.split("\n\n"):
            if any(line[:1].isspace() for line in paragraph.splitlines()):
                paragraphs.append(textwrap.indent(paragraph, indent))
            else:
                paragraphs.append(textwrap.fill(" ".join(paragraph.split()), width, initial_indent=indent,
                                                subsequent_indent=indent))  # fmt: skip
        return "\n\n".join(paragraphs)


def _use_formatter(parser: argparse.ArgumentParser) -> None:
    """Give `parser` and every subcommand parser below it the `HelpFormatter`."""
    parser.formatter_class = HelpFormatter
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _use_formatter(child)


def _add_plugins_option(parser: argparse.ArgumentParser) -> None:
    """`--plugins PATH` (repeatable) on `parser`, or on each command below it: outside plugins loaded before the
    command resolves any task or model name (`harness.plugins.load_plugins`)."""
    children = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for action in children:
        for child in action.choices.values():
            _add_plugins_option(child)
    if not children and "--plugins" not in parser._option_string_actions:
        parser.add_argument(
            "--plugins",
            action="append",
            default=[],
            metavar="PATH",
            help="a plugin: a .py file or a package folder (repeatable; also $REGBENCH_PLUGINS)",
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="regbench",
        description="Benchmark deep-learning models on regulatory-DNA tasks, tracked in MLflow.",
        epilog=EPILOG,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"harness.commands.{name}").register(sub)
    _add_plugins_option(parser)
    _use_formatter(parser)
    return parser


def user_errors() -> tuple[type[BaseException], ...]:
    """Errors caused by input or setup, reported as one line instead of a traceback."""
    from harness.config import ConfigError
    from harness.data.encode import InvalidSequenceError
    from harness.paths import DataNotFoundError
    from harness.registry import UnknownNameError

    return (ConfigError, UnknownNameError, DataNotFoundError, InvalidSequenceError, LookupError, OSError,
            ValueError)  # fmt: skip


# An interrupt raised inside the tracking store's database code can leave its SQLite transaction open: every later
# write (ending the runs KILLED) then waits out SQLite's 20-s busy timeout and fails. There it is delivered again
# every INTERRUPT_RETRY_S until the call has returned.
DATABASE_MODULES = ("sqlalchemy.", "mlflow.store.")
INTERRUPT_RETRY_S = 0.05


def _interrupt(signum: int, frame: FrameType | None) -> None:
    if _inside(frame, DATABASE_MODULES):
        retry = threading.Timer(INTERRUPT_RETRY_S, _thread.interrupt_main, (signum,))
        retry.daemon = True
        retry.start()
        return
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _inside(frame: FrameType | None, modules: tuple[str, ...]) -> bool:
    """Whether `frame` or a frame that called it runs code of one of `modules` (prefixes of module names)."""
    while frame is not None:
        if frame.f_globals.get("__name__", "").startswith(modules):
            return True
        frame = frame.f_back
    return False


def main(argv: list[str] | None = None) -> int:
    """Run one command. SIGTERM (`kill PID`, a batch scheduler, `timeout`) and SIGINT (Ctrl-C, also for a background
    job, which a shell starts with SIGINT ignored) end it: the open runs end KILLED and finished work is kept."""
    args = build_parser().parse_args(argv)
    if getattr(args, "ray_address", "") is None and "ray" not in sys.modules:  # a command that starts a local Ray
        from harness.tuning.ray_connection import local_ray_auth

        local_ray_auth()
    in_main = threading.current_thread() is threading.main_thread()  # only there may a signal handler be set
    signals = (signal.SIGTERM, signal.SIGINT)  # SIGINT too: a shell's background job starts with it ignored
    previous = {s: signal.signal(s, _interrupt) for s in signals} if in_main else {}
    try:
        if args.plugins:
            from harness.plugins import load_plugins

            load_plugins(args.plugins)
        return int(args.func(args) or 0)
    except user_errors() as err:
        print(f"regbench {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"regbench {args.command}: interrupted", file=sys.stderr)
        if argv is None:  # the program itself, not a caller's: leave now (see `_leave`)
            _leave(130)
        return 130
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _leave(code: int) -> None:
    """Exit at once after an interrupt, once the runs are closed: run the exit handlers, flush, then `os._exit`.
    Finalising the interpreter with Ray's core worker loaded took 8 s more (measured on 2 loaded cores), which
    `timeout -s INT`, a batch scheduler's grace period or a second Ctrl-C would cut short."""
    import atexit
    import os

    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
