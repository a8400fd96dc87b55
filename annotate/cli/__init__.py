"""The ``annotate`` command: one module per command over shared option declarations
(:mod:`annotate.cli.options`); the library raises typed errors and :func:`main` alone turns
them into a one-line message and an exit code."""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType
from typing import Any

import typer

from annotate.cli import batch, bench, models, providers, run  # noqa: F401 - they register commands
from annotate.cli.app import app
from annotate.cli.console import print_error, printable
from annotate.errors import AnnotateError, Interrupted
from annotate.signals import RECEIVED, install

__all__ = ["app", "main"]

EXIT_INTERRUPTED = 130


#: Signals received, so an error a signal caused inside a C extension's start-up (ONNX
#: Runtime turns a KeyboardInterrupt during its import into ImportError) is still reported
#: as the interruption it was, and a run whose signal was swallowed still stops.
_received = RECEIVED


def _in_importlib(frame: FrameType | None) -> bool:
    """Is the main thread inside the import machinery's own code? An exception raised
    there can land in a weakref callback of a module lock, where Python prints "Exception
    ignored" with a traceback and drops it. The run then acts on :data:`RECEIVED` at its
    next frame instead."""
    return frame is not None and frame.f_code.co_filename.startswith("<frozen importlib")


def _terminated(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    if not _in_importlib(frame):
        raise Interrupted(signal.Signals(signum).name, 128 + signum)


def _interrupted(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    if not _in_importlib(frame):
        raise KeyboardInterrupt


def _usage_error_class() -> type[Exception]:
    """Click's UsageError, whether Typer uses Click or its own vendored copy."""
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


def main(argv: list[str] | None = None) -> int:
    """Console entry point: every error becomes one ``Error:`` line and its exit code
    (2 usage, 1 runtime, 130 Ctrl-C, 128+N for signal N)."""
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        # From the first moment, so a SIGTERM during start-up ends with 143 like one mid-run,
        # and Ctrl-C is Python's KeyboardInterrupt again (annotate._entry held it while
        # the modules were imported). Given back at the end, for a caller in the same process.
        previous = install({signal.SIGTERM: _terminated, signal.SIGINT: _interrupted})
    try:
        return _main(argv)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _main(argv: list[str] | None) -> int:
    from annotate.cli.options import optional_values

    _received.clear()
    usage_error = _usage_error_class()
    argv = optional_values(sys.argv[1:] if argv is None else argv)
    try:
        command = typer.main.get_command(app)
        result = command.main(args=argv, prog_name="annotate", standalone_mode=False)
    except usage_error as e:
        ctx = getattr(e, "ctx", None)
        if type(e).__name__ == "NoArgsIsHelpError" and ctx is not None:
            print(ctx.get_help(), file=sys.stderr)
            return 2
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        print(printable(f"Error: {e.format_message()}{hint}"), file=sys.stderr)  # type: ignore[attr-defined]
        return 2
    except AnnotateError as e:
        print_error(str(e))
        return e.exit_code
    except typer.Exit as e:
        return e.exit_code
    except (typer.Abort, KeyboardInterrupt):  # Click turns Ctrl-C into Abort
        print_error("interrupted")
        return EXIT_INTERRUPTED
    except Interrupted as e:
        print_error(f"interrupted by {e.name}")
        return e.exit_code
    except ImportError:
        if not _received:
            raise
        print_error("interrupted")
        return 128 + _received[0]
    finally:
        received, _received[:] = list(_received), []
    code = result if isinstance(result, int) else 0
    if received and not code:  # the signal's exception was swallowed after the last frame
        print_error(f"interrupted by {signal.Signals(received[0]).name}")
        return 128 + received[0]
    return code
