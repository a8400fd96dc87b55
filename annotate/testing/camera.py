"""A stand-in capture device fed from a video file at its real frame rate: the camera path's
code (``CameraSource`` reading ``cv2.VideoCapture``) runs as it does with a webcam."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any


class FileCamera:
    """A stand-in capture device: frames from a video file, released at the file's real rate,
    behind the same ``cv2.VideoCapture`` interface a webcam has."""

    def __init__(self, path: Path, threads: int = 0) -> None:
        """``threads``: FFmpeg's decoding threads (0: OpenCV's default, one per core). Many
        stand-ins in one process take 1, as a real camera's frames cost no decoder pool."""
        import cv2

        params = [cv2.CAP_PROP_N_THREADS, threads] if threads else []
        self._cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, params)
        self.fps = self._cap.get(cv2.CAP_PROP_FPS)
        self._start: float | None = None
        self._n = 0
        self.released = False

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return self._cap.isOpened()

    def read(self) -> tuple[bool, Any]:
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self._n / self.fps
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        self._n += 1
        return self._cap.read()

    def get(self, prop: int) -> float:
        return self._cap.get(prop)

    def release(self) -> None:
        self.released = True
        self._cap.release()
