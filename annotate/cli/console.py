"""Everything the CLI prints to the terminal: logs, errors, progress bars, tables."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    from rich.console import Console

    from annotate.models import KnownModel
    from annotate.pipeline.many import SourceResult

log = logging.getLogger("annotate")

_console: Console | None = None


def stderr_console() -> Console:
    """One stderr console for logs and the progress bar, so lines print above the bar."""
    global _console
    from rich.console import Console

    # While the bar is live, Rich stands a proxy in for sys.stderr; the console behind the bar
    # must still be the one that prints, or lines land in the middle of the bar.
    stderr = getattr(sys.stderr, "rich_proxied_file", sys.stderr)
    if _console is None or _console.file is not stderr:
        _console = Console(stderr=True, highlight=False, soft_wrap=True)
    return _console


class FrameProgressBar:
    """The progress bar for terminals: frames, FPS and ETA, or a counter if the length is
    unknown. Not used when stderr is not a terminal, so CI logs stay clean."""

    def start(self, total: int | None) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        counter = [BarColumn(), MofNCompleteColumn()] if total else [TextColumn("{task.completed}")]
        eta = [TextColumn("ETA"), TimeRemainingColumn()] if total else []
        self._bar = Progress(
            TextColumn("frames"),
            *counter,
            TextColumn("{task.fields[fps]} FPS"),
            TimeElapsedColumn(),
            *eta,
            console=stderr_console(),
            transient=True,
        )
        self._task = self._bar.add_task("annotating", total=total, fps="-")
        self._started = time.perf_counter()
        self._bar.start()

    def update(self, frames: int) -> None:
        fps = frames / max(time.perf_counter() - self._started, 1e-9)
        self._bar.update(self._task, completed=frames, fps=f"{fps:.1f}")

    def stop(self) -> None:
        self._bar.stop()


class SourcesProgress:
    """One progress line per source of a multi-source run, in one Rich display: each line
    its frames, FPS and, for live sources, the frames dropped as stale."""

    def __init__(self, console: Console | None = None) -> None:
        from rich.progress import Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(
            TextColumn("{task.description}"),
            TextColumn("{task.completed} frames"),
            TextColumn("{task.fields[fps]} FPS"),
            TimeElapsedColumn(),
            console=console or stderr_console(),
            transient=True,
        )
        self._started = False

    def __call__(self, name: str) -> _SourceLine:
        return _SourceLine(self, name)

    def _add(self, name: str) -> int:
        if not self._started:
            self._bar.start()
            self._started = True
        return int(self._bar.add_task(printable(name), total=None, fps="-"))

    def stop(self) -> None:
        if self._started:
            self._bar.stop()


class _SourceLine:
    """What one source's pipeline reports to :class:`SourcesProgress`."""

    def __init__(self, owner: SourcesProgress, name: str) -> None:
        self._owner, self._name = owner, name
        self._task = -1
        self._started = 0.0

    def start(self, total: int | None) -> None:
        self._task = self._owner._add(self._name)
        self._started = time.perf_counter()

    def update(self, frames: int) -> None:
        fps = frames / max(time.perf_counter() - self._started, 1e-9)
        self._owner._bar.update(self._task, completed=frames, fps=f"{fps:.1f}")  # type: ignore[arg-type]

    def stop(self) -> None:
        pass  # the line stays until the whole display stops


def download(entry: KnownModel) -> Path:
    """Fetch a known model on first use, with a progress bar on terminals."""
    from annotate.models.store import pull

    console = stderr_console()
    if not console.is_terminal:
        return pull(entry)
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TransferSpeedColumn,
    )

    with Progress(
        TextColumn(entry.name),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("download", total=entry.size)
        return pull(entry, lambda done, total: bar.update(task, completed=done, total=total))


def printable(text: str) -> str:
    """Control characters (a file name can hold ESC sequences) shown as escapes, never sent to
    the terminal; Rich itself passes ESC through."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class ConsoleHandler(logging.Handler):
    """Diagnostics to stderr: plain lines, warnings marked. Text goes through ``rich.Text`` so
    control characters in file names cannot reach the terminal."""

    def emit(self, record: logging.LogRecord) -> None:
        from rich.text import Text

        console = stderr_console()
        message = printable(record.getMessage())
        if record.levelno >= logging.ERROR:
            console.print(Text("Error: ", style="bold red") + Text(message))
        elif record.levelno >= logging.WARNING:
            console.print(Text("Warning: ", style="yellow") + Text(message))
        else:
            console.print(Text(message))


def setup_logging(quiet: bool = False, verbose: bool = False) -> None:
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    log.handlers[:] = [ConsoleHandler()]
    log.setLevel(level)
    log.propagate = False


def print_error(message: str) -> None:
    """``Error: …`` on one line of stderr."""
    from rich.text import Text

    stderr_console().print(Text("Error: ", style="bold red") + Text(printable(message)))


def print_counts(counts: dict[str, Any]) -> None:
    """The lines' and zones' final counts as a table on stderr."""
    from rich.table import Table

    table = Table(title="Counts", title_justify="left")
    for column in ("line / zone", "in / now", "out / entered", "by class"):
        table.add_column(column)
    for name, c in counts["lines"].items():
        by_class = ", ".join(f"{k} {v['in']} in, {v['out']} out" for k, v in c["by_class"].items())
        table.add_row(printable(name), str(c["in"]), str(c["out"]), printable(by_class) or "–")
    for name, c in counts["zones"].items():
        by_class = ", ".join(f"{k} {v}" for k, v in c["by_class"]["entered"].items())
        table.add_row(
            printable(name),
            f"{c['now']} now",
            f"{c['entered']} entered",
            printable(by_class) or "–",
        )
    stderr_console().print(table)


def print_sources(results: Sequence[SourceResult]) -> None:
    """One row per source of a multi-source run, on stderr."""
    from rich.table import Table

    table = Table(title="Sources", title_justify="left")
    for column in ("source", "frames", "FPS", "detected", "dropped", "tracks", "ended"):
        table.add_column(column)
    for r in results:
        s = r.summary
        if s is None:
            table.add_row(printable(r.name), "0", "–", "–", "–", "–", printable(r.error or ""))
            continue
        ended = r.error or s.stopped or "done"
        table.add_row(
            printable(r.name),
            str(s.frames),
            f"{s.fps:.1f}",
            str(s.detected),
            str(s.dropped),
            "–" if s.tracks is None else str(s.tracks),
            printable(ended),
        )
    stderr_console().print(table)
