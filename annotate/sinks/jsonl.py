"""Detections as JSON Lines, one record per frame, flushed as it goes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from annotate.sinks import SinkBase
from annotate.sinks.text import TextOutput
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
        self.out = TextOutput(path)
        self.path = self.out.path

    def write(self, frame: Frame, annotated: npt.NDArray[np.uint8], detections: Detections) -> None:
        item = record(frame, detections)
        if self.extra is not None:
            item.update(self.extra())
        self.out.write(json.dumps(item, ensure_ascii=False) + "\n")

    def close(self) -> None:
        self.out.close()
