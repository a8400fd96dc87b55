"""Detections as JSON Lines, one record per frame, flushed as it goes."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from annotate.errors import OutputError, StopRequested
from annotate.sinks import SinkBase
from annotate.types import Detections, Frame


def record(frame: Frame, detections: Detections) -> dict[str, Any]:
    """The JSON object for one frame; boxes in source pixels, rounded to 0.01 px.

    With tracking, each detection also has ``track_id`` (``null`` until its track is
    confirmed) and ``predicted`` (a box the tracker predicted on a frame not detected).
    """
    out = {
        "frame": frame.index,
        "source": frame.source,
        "time": None if frame.time is None else round(frame.time, 6),
        "width": frame.width,
        "height": frame.height,
        "detections": [
            {
                "label": detections.class_name(c),
                "class_id": int(c),
                "score": round(float(s), 4),
                "box": [round(float(v), 2) for v in box],
            }
            for box, s, c in zip(detections.xyxy, detections.scores, detections.class_ids.tolist())
        ],
    }
    if detections.tracker_id is not None:
        predicted = (detections.predicted if detections.predicted is not None
                     else np.zeros(len(detections), bool))  # fmt: skip
        for item, track, guess in zip(out["detections"], detections.tracker_id.tolist(),
                                      predicted.tolist()):  # fmt: skip
            item["track_id"] = track if track > 0 else None
            item["predicted"] = guess
    return out


class JsonLinesSink(SinkBase):
    """Writes to a file, or to stdout for ``-``. Each line is written whole and flushed, so an
    interrupted run leaves a file that ends on a complete record."""

    def __init__(
        self,
        path: Path | str,
        extra: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.extra = extra  # more keys for each record (counts and events of lines/zones)
        self.path = str(path)
        self._own = self.path != "-"
        try:
            # Held open for the whole run; close() (via the pipeline's ExitStack) closes it.
            self._file: IO[str] = (
                open(path, "w", encoding="utf-8")  # noqa: SIM115
                if self._own
                else sys.stdout
            )
        except OSError as e:
            raise OutputError(f"cannot write {path}: {e.strerror}") from None
        self._closed = False

    def write(self, frame: Frame, annotated: npt.NDArray[np.uint8], detections: Detections) -> None:
        item = record(frame, detections)
        if self.extra is not None:
            item.update(self.extra())
        line = json.dumps(item, ensure_ascii=False)
        try:
            self._file.write(line + "\n")
            self._file.flush()
        except BrokenPipeError:
            if self._own:
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
        if self._own:
            try:
                self._file.close()
            except OSError as e:
                raise OutputError(f"cannot write {self.path}: {e.strerror}; it is incomplete "
                                  f"(records for frames before the error)") from None  # fmt: skip
