"""A text output written line by line to a file, or to stdout for ``-``: the JSON Lines and
MOT sinks share it, so both treat ``-`` and a reader that goes away the same way."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import IO

from annotate.errors import OutputError, StopRequested


class TextOutput:
    """Each :meth:`write` is flushed, so an interrupted run leaves whole lines."""

    def __init__(self, path: Path | str, encoding: str = "utf-8") -> None:
        self.path = str(path)
        self.own = self.path != "-"
        try:
            # Held open for the whole run; the sink's close() closes it.
            self._file: IO[str] = (
                open(path, "w", encoding=encoding)  # noqa: SIM115
                if self.own
                else sys.stdout
            )
        except OSError as e:
            raise OutputError(f"cannot write {path}: {e.strerror}") from None
        self._closed = False

    def write(self, text: str) -> None:
        try:
            self._file.write(text)
            self._file.flush()
        except BrokenPipeError:
            if self.own:
                raise OutputError(f"cannot write {self.path}: broken pipe") from None
            # `annotate run … --json - | head`: the reader has gone; stop like other CLIs do.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise StopRequested("stdout closed") from None
        except OSError as e:
            raise OutputError(f"cannot write {self.path}: {e.strerror}") from None

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.own:
            try:
                self._file.close()
            except OSError as e:
                raise OutputError(
                    f"cannot write {self.path}: {e.strerror}; it is incomplete "
                    f"(records for frames before the error)"
                ) from None
