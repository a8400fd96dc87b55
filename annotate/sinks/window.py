"""A desktop window showing the annotated stream."""

from __future__ import annotations

import os
import sys

import numpy as np
import numpy.typing as npt

from annotate.errors import StopRequested
from annotate.sinks import SinkBase
from annotate.stats import LiveStats
from annotate.types import Detections, Frame, as_image

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


def draw_overlay(image: npt.NDArray[np.uint8], lines: list[str]) -> npt.NDArray[np.uint8]:
    """Stats in the top-left corner on a dimmed panel (on a copy: outputs stay clean)."""
    import cv2

    from annotate.annotators import scale_for

    shown = image.copy()
    scale = 0.55 * scale_for(image)
    thickness = max(1, round(scale * 2))
    sizes = [cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)[0] for t in lines]
    line_h = max(h for _, h in sizes) + round(10 * scale)
    width = max(w for w, _ in sizes) + round(20 * scale)
    height = line_h * len(lines) + round(10 * scale)
    panel = shown[:height, :width]
    panel[:] = (panel * 0.35).astype(np.uint8)
    for i, text in enumerate(lines):
        y = round(10 * scale) + line_h * (i + 1) - round(5 * scale)
        cv2.putText(
            shown,
            text,
            (round(10 * scale), y),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (255, 255, 255),
            thickness,
            cv2.LINE_AA,
        )
    return as_image(shown)


class WindowSink(SinkBase):
    """Shows frames with an overlay of FPS, inference time, provider and dropped frames;
    ``q``/Esc or closing the window raises :class:`StopRequested`."""

    def __init__(self, title: str = "annotate", stats: LiveStats | None = None) -> None:
        self.title = title
        self.stats = stats
        self._opened = False

    def write(self, frame: Frame, annotated: npt.NDArray[np.uint8], detections: Detections) -> None:
        import cv2

        if self._opened and cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
            raise StopRequested("window closed")
        if not self._opened:
            cv2.namedWindow(self.title, cv2.WINDOW_NORMAL)
            height, width = annotated.shape[:2]
            shrink = min(1.0, 1280 / width, 800 / height)  # resizable; starts at a sane size
            cv2.resizeWindow(self.title, round(width * shrink), round(height * shrink))
            self._opened = True
        shown = annotated
        if self.stats is not None:
            s = self.stats.snapshot()
            shown = draw_overlay(
                annotated,
                [
                    f"{s['fps']:.1f} FPS",
                    f"inference {s['inference_ms']:.1f} ms",
                    str(s["provider"]),
                    f"dropped {s['dropped']}",
                ],
            )
        cv2.imshow(self.title, shown)
        if (cv2.waitKey(1) & 0xFF) in QUIT_KEYS:
            raise StopRequested("key pressed")

    def close(self) -> None:
        if self._opened:
            import cv2

            self._opened = False
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
