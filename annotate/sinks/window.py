"""A desktop window showing the annotated stream."""

from __future__ import annotations

import os
import sys

import numpy as np
import numpy.typing as npt

from annotate.errors import StopRequested
from annotate.sinks import SinkBase
from annotate.types import Detections, Frame

QUIT_KEYS = {ord("q"), ord("Q"), 27}  # q, Esc


def display_problem() -> str | None:
    """Why a window cannot open here, or ``None`` if it can.

    Checked before touching ``cv2.imshow``: OpenCV's Qt backend aborts the whole process when
    there is no display, which no ``try`` can catch.
    """
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return "no display (DISPLAY and WAYLAND_DISPLAY are unset)"
    import cv2

    info = cv2.getBuildInformation()
    gui = info.split("GUI:", 1)[1].split("\n", 1)[0].strip() if "GUI:" in info else ""
    if gui.upper().startswith("NONE"):
        return "this OpenCV build has no GUI support (opencv-python-headless?)"
    return None


class WindowSink(SinkBase):
    """Shows frames; ``q``/Esc or closing the window raises :class:`StopRequested`."""

    def __init__(self, title: str = "annotate") -> None:
        self.title = title
        self._opened = False

    def write(self, frame: Frame, annotated: npt.NDArray[np.uint8], detections: Detections) -> None:
        import cv2

        if self._opened and cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
            raise StopRequested("window closed")
        if not self._opened:
            cv2.namedWindow(self.title, cv2.WINDOW_NORMAL)
            self._opened = True
        cv2.imshow(self.title, annotated)
        if (cv2.waitKey(1) & 0xFF) in QUIT_KEYS:
            raise StopRequested("key pressed")

    def close(self) -> None:
        if self._opened:
            import cv2

            self._opened = False
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
