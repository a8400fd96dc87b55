"""The ``annotate`` program's first lines: a Ctrl-C or SIGTERM while the command is still
importing its modules ends it with one line and 130/143, never an import traceback."""

import os
import signal
import sys


def _starting(signum: int, _frame: object) -> None:
    sys.stderr.write("Error: interrupted while starting\n")
    sys.stderr.flush()
    os._exit(128 + signum)  # nothing is open yet: no output to finalise


def main() -> int:
    from annotate.signals import install  # signal, contextlib and threading: nothing heavy

    install({signal.SIGINT: _starting, signal.SIGTERM: _starting})
    from annotate.cli import main as run_command  # installs the run's own handlers first thing

    return run_command()
