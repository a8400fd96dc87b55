"""A desktop window showing the annotated stream."""

from __future__ import annotations

import math
import os
import sys
import threading

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


class WindowGrid:
    """One window for every source of a multi-source run, a tile each with its name, FPS
    and dropped frames. OpenCV's windows belong to one thread: the sources' pipelines only
    hand over their newest picture, and :meth:`show`, called from the run's main thread,
    draws the grid; ``q``/Esc or closing the window sets :attr:`stop_reason`."""

    TILE_WIDTH = 640  # at most; narrower so that the grid fits 1280 pixels across

    def __init__(self, title: str = "annotate", slots: int = 1) -> None:
        self.title = title
        self.slots = slots  # sources expected: the grid has its final size from the first draw
        self.stop_reason: str | None = None
        self._lock = threading.Lock()
        self._tiles: dict[str, tuple[npt.NDArray[np.uint8] | None, LiveStats]] = {}
        self._changed = False
        self._opened = False
        self._shape: tuple[int, ...] = ()

    def add_source(self, name: str, stats: LiveStats) -> GridTile:
        with self._lock:
            self._tiles[name] = (None, stats)
        return GridTile(self, name)

    def put(self, name: str, image: npt.NDArray[np.uint8]) -> None:
        with self._lock:
            self._tiles[name] = (image, self._tiles[name][1])
            self._changed = True

    def compose(self) -> npt.NDArray[np.uint8]:
        """The grid: tiles of 16:9, each source's picture fitted in, its facts on top."""
        import cv2

        with self._lock:
            tiles = list(self._tiles.items())
            self._changed = False
        count = max(len(tiles), self.slots)
        cols = max(1, math.ceil(math.sqrt(count)))
        rows = max(1, math.ceil(count / cols))
        width = min(self.TILE_WIDTH, 1280 // cols) // 2 * 2
        height = width * 9 // 16 // 2 * 2
        grid = np.zeros((rows * height, cols * width, 3), np.uint8)
        for i, (name, (image, stats)) in enumerate(tiles):
            tile = np.zeros((height, width, 3), np.uint8)
            if image is not None:
                scale = min(width / image.shape[1], height / image.shape[0])
                w, h = max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))
                x, y = (width - w) // 2, (height - h) // 2
                tile[y : y + h, x : x + w] = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
            s = stats.snapshot()
            tile = draw_overlay(tile, [name, f"{s['fps']:.1f} FPS, dropped {s['dropped']}"])
            r, c = divmod(i, cols)
            grid[r * height : (r + 1) * height, c * width : (c + 1) * width] = tile
        return as_image(grid)

    def show(self, wait_ms: int = 30) -> None:
        """Draw the grid if a picture changed, and take keys and a closed window (main thread)."""
        import cv2

        if self.stop_reason is not None:
            return
        if self._opened and cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
            self.stop_reason = "window closed"
            return
        if self._changed or not self._opened:
            shown = self.compose()
            if not self._opened:
                cv2.namedWindow(self.title, cv2.WINDOW_NORMAL)
                self._opened = True
            if shown.shape != self._shape:  # first draw, or more sources than expected joined
                cv2.resizeWindow(self.title, shown.shape[1], shown.shape[0])
                self._shape = shown.shape
            cv2.imshow(self.title, shown)
        if (cv2.waitKey(wait_ms) & 0xFF) in QUIT_KEYS:
            self.stop_reason = "key pressed"

    def close(self) -> None:
        if self._opened:
            import cv2

            self._opened = False
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)

    def __enter__(self) -> WindowGrid:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class GridTile(SinkBase):
    """What one source of a :class:`WindowGrid` writes to."""

    def __init__(self, grid: WindowGrid, name: str) -> None:
        self.grid, self.name = grid, name

    def write(self, frame: Frame, annotated: npt.NDArray[np.uint8], detections: Detections) -> None:
        if self.grid.stop_reason is not None:
            raise StopRequested(self.grid.stop_reason)
        self.grid.put(self.name, annotated)

    def close(self) -> None:
        pass  # the window outlives its sources; the run closes it
