"""Cameras through ``cv2.VideoCapture``, stamped with the real capture clock."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from fractions import Fraction
from typing import Any, Protocol

import numpy as np

from annotate.compat import opencv_silenced
from annotate.errors import SourceError
from annotate.sources.live import LatestFrame, LiveSource
from annotate.types import Frame, SourceInfo

log = logging.getLogger("annotate")


class Capture(Protocol):
    """The part of ``cv2.VideoCapture`` we use; tests stand in a file-fed device here."""

    def isOpened(self) -> bool: ...  # noqa: N802 - OpenCV's name
    def read(self) -> tuple[bool, np.ndarray | None]: ...
    def get(self, prop: int) -> float: ...
    def release(self) -> None: ...


def open_capture(index: int) -> Capture:
    import cv2

    # OpenCV logs every backend it tries when a camera is missing; our error says it better.
    with opencv_silenced():
        return cv2.VideoCapture(index)


class CameraSource(LiveSource):
    """A live camera, read on its own thread.

    ``time`` is seconds since the first frame by the monotonic clock at capture, so a recording
    made at 12 FPS plays back at real speed whatever the driver claims; ``index`` counts
    captured frames, so frames dropped for being stale show as gaps.
    """

    def __init__(
        self,
        index: int = 0,
        open_device: Callable[[int], Capture] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        import cv2

        super().__init__()
        self.name = f"camera:{index}"
        self.clock = clock
        # Looked up at call time so a stand-in device can be swapped in for the whole CLI.
        self.capture: Any = (open_device or open_capture)(index)
        if not self.capture.isOpened():
            raise SourceError(
                f"cannot open camera {index}: no camera at that index, or another program is "
                "using it (try camera:1, or check permissions)"
            )
        ok, image = self.capture.read()
        self._started = clock()
        if not ok or image is None:
            self.capture.release()
            raise SourceError(f"camera {index} opened but sends no frames")
        self._slot.put(Frame(0, 0.0, image, self.name, captured=self._started))
        fps = self.capture.get(cv2.CAP_PROP_FPS)
        self.info = SourceInfo(
            width=image.shape[1],
            height=image.shape[0],
            fps=Fraction(fps).limit_denominator(1001) if fps and fps > 0 else Fraction(30),
            frames=None,
            time_base=Fraction(1, 1_000_000),
            live=True,
        )

    def produce(self, slot: LatestFrame, stop: threading.Event) -> None:
        index = 1
        while not stop.is_set():
            ok, image = self.capture.read()
            now = self.clock()
            if not ok or image is None:
                log.warning("%s stopped sending frames after %d frames", self.name, index)
                return
            slot.put(Frame(index, now - self._started, image, self.name, captured=now))
            index += 1

    def release(self) -> None:
        self.capture.release()
