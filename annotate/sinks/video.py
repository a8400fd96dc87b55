"""Annotated video out through PyAV's own FFmpeg (OpenCV's pip wheels cannot write H.264)."""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from annotate.errors import OutputError, OutputPathError
from annotate.sinks import SinkBase
from annotate.types import Detections, Frame, VideoInfo

log = logging.getLogger("annotate")

#: Containers we write, by extension; all of them carry H.264.
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
DEFAULT_TIME_BASE = Fraction(1, 90_000)


def check_video_path(path: Path) -> None:
    if path.suffix.lower() not in CONTAINERS:
        raise OutputPathError(
            f"cannot write video to {path}: unsupported extension "
            f"'{path.suffix or '(none)'}'; use one of {', '.join(CONTAINERS)}"
        )


def even_size(width: int, height: int) -> tuple[int, int]:
    """4:2:0 chroma needs even dimensions; odd sizes get one pixel of edge padding."""
    return width + width % 2, height + height % 2


class VideoSink(SinkBase):
    """Writes H.264 (libx264, yuv420p) at the source's size and rate.

    Each frame keeps its source timestamp, so non-integer and variable frame rates and camera
    timing survive. Odd sizes are padded by one pixel on the right/bottom (edge-replicated),
    which keeps every box in source pixels.
    """

    def __init__(
        self,
        path: Path,
        info: VideoInfo,
        codec: str = "libx264",
        crf: int = 23,
        preset: str = "veryfast",
    ) -> None:
        import av

        check_video_path(path)
        self.path = path
        self.info = info
        self.frames = 0
        self._last_pts = -1
        self._closed = False
        self.time_base = info.time_base or DEFAULT_TIME_BASE
        fmt = CONTAINERS[path.suffix.lower()]
        options = {"movflags": "+faststart"} if fmt in ("mp4", "mov") else {}
        try:
            self.container: Any = av.open(str(path), "w", format=fmt, options=options)
        except (OSError, av.FFmpegError) as e:
            raise OutputError(f"cannot write {path}: {getattr(e, 'strerror', None) or e}") from None
        self.width, self.height = even_size(info.width, info.height)
        if (self.width, self.height) != (info.width, info.height):
            log.info(
                "Padding output to %dx%d: H.264 4:2:0 needs even dimensions",
                self.width, self.height,
            )  # fmt: skip
        self.stream = self.container.add_stream(codec, rate=info.fps)
        self.stream.width, self.stream.height = self.width, self.height
        self.stream.pix_fmt = "yuv420p"
        self.stream.codec_context.time_base = self.time_base
        self.stream.options = {"crf": str(crf), "preset": preset}

    def _pts(self, frame: Frame) -> int:
        seconds = frame.time if frame.time is not None else frame.index / float(self.info.fps)
        pts = round(Fraction(seconds) / self.time_base)
        # Timestamps must rise strictly; duplicates (rare, broken files) are nudged forward.
        pts = max(pts, self._last_pts + 1)
        self._last_pts = pts
        return pts

    def write(self, frame: Frame, annotated: npt.NDArray[np.uint8], detections: Detections) -> None:
        import av

        image = annotated
        h, w = image.shape[:2]
        if (w, h) != (self.width, self.height):
            if w > self.width or h > self.height:
                raise OutputError(
                    f"frame {frame.index} is {w}x{h} but {self.path} was opened at "
                    f"{self.width}x{self.height}; the source changed size mid-stream"
                )
            image = np.pad(image, ((0, self.height - h), (0, self.width - w), (0, 0)), mode="edge")
        out = av.VideoFrame.from_ndarray(image, format="bgr24")
        out.pts = self._pts(frame)
        out.time_base = self.time_base
        try:
            for packet in self.stream.encode(out):
                self.container.mux(packet)
        except OSError as e:
            raise OutputError(f"cannot write {self.path}: {e.strerror or e}") from None
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder and finalise the container; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            for packet in self.stream.encode(None):
                self.container.mux(packet)
        finally:
            self.container.close()
