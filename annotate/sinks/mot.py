"""Tracks in the MOT Challenge text format, which every tracking evaluation tool reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from annotate.sinks import SinkBase
from annotate.sinks.text import TextOutput
from annotate.types import Detections, Frame


class MotSink(SinkBase):
    """One line per confirmed track per frame: ``frame,id,x,y,w,h,score,-1,-1,-1``.

    Frames count from 1 as the format wants (``frame`` in JSON Lines counts from 0); boxes are
    left, top, width, height in source pixels. Boxes the tracker predicted on frames that were
    not detected are written too (their score is the track's last one). Lines are flushed per
    frame, so an interrupted run leaves whole lines; ``-`` is stdout, as for ``--json``.
    """

    pixels = False  # boxes and frames as they are, never the drawing

    def __init__(self, path: Path) -> None:
        self.out = TextOutput(path, encoding="ascii")  # '-': stdout
        self.path = path

    def write(self, frame: Frame, annotated: npt.NDArray[np.uint8], detections: Detections) -> None:
        if detections.track_id is None:
            return
        lines = []
        for box, score, track in zip(
            detections.xyxy.tolist(), detections.scores.tolist(), detections.track_id.tolist()
        ):
            if track > 0:
                x1, y1, x2, y2 = box
                lines.append(
                    f"{frame.index + 1},{track},{x1:.2f},{y1:.2f},{x2 - x1:.2f},"
                    f"{y2 - y1:.2f},{score:.4f},-1,-1,-1\n"
                )
        if lines:
            self.out.write("".join(lines))

    def close(self) -> None:
        self.out.close()
