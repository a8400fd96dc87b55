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
    for number in (signal.SIGINT, signal.SIGTERM):
        # One ignored when the program started stays ignored (``nohup``, a script's
        # ``annotate … &``), as POSIX programs keep it.
        if signal.getsignal(number) is not signal.SIG_IGN:
            signal.signal(number, _starting)
    from annotate.cli import main as run_command  # installs the run's own handlers first thing

    return run_command()
