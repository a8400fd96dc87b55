"""Detections as JSON Lines, one record per frame, flushed as it goes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from annotate.sinks import SinkBase
from annotate.sinks.text import TextOutput
from annotate.types import Detections, Frame, Meta


def record(frame: Frame, detections: Detections, landmarks: bool = False) -> dict[str, Any]:
    """The JSON object for one frame; boxes in source pixels, rounded to 0.01 px.

    With tracking, each detection also has ``track_id`` (``null`` until its track is
    confirmed) and ``predicted`` (a box the tracker predicted on a frame not detected).
    """
    return {
        "frame": frame.index,
        "source": frame.source,
        "time": None if frame.time is None else round(frame.time, 6),
        "width": frame.width,
        "height": frame.height,
        "detections": detections.to_records(landmarks),
        # A counter's counts and events; with --blur, the boxes hidden ("hidden").
        **detections.meta.get(Meta.RECORD, {}),
    }


class JsonLinesSink(SinkBase):
    """Writes to a file, or to stdout for ``-``. Each line is written whole and flushed, so an
    interrupted run leaves a file that ends on a complete record."""

    pixels = False  # boxes and frames as they are, never the drawing

    def __init__(
        self, path: Path | str, source: str | None = None, landmarks: bool = False
    ) -> None:
        self.out = TextOutput(path)
        self.path = self.out.path
        #: The source's name in a run of several, for each record's ``source``.
        self.source = source
        self.landmarks = landmarks

    def write(self, frame: Frame, annotated: npt.NDArray[np.uint8], detections: Detections) -> None:
        line = record(frame, detections, self.landmarks)
        if self.source is not None:
            line["source"] = self.source
        self.out.write(json.dumps(line, ensure_ascii=False) + "\n")

    def close(self) -> None:
        self.out.close()
