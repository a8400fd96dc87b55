"""Frame sources: video files and streams, cameras, images. Each is a context manager that
yields :class:`~annotate.types.Frame` objects and knows its :class:`~annotate.types.SourceInfo`."""

from __future__ import annotations

import glob
import re
from pathlib import Path

from annotate.errors import SourceError, SourceNotFoundError, UsageError
from annotate.sources.base import Source, SourceBase

__all__ = [
    "Source",
    "SourceBase",
    "camera_index",
    "check_exists",
    "input_paths",
    "is_image",
    "open_source",
]

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".jp2", ".pbm", ".pgm", ".ppm",
     ".pnm", ".pxm", ".sr", ".ras", ".exr", ".hdr", ".pic", ".avif"}
)  # fmt: skip
STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "rtmps://", "http://", "https://", "udp://",
                  "tcp://", "srt://")  # fmt: skip
_CAMERA = re.compile(r"^(?:camera(?::(\d+))?|(\d+))$", re.IGNORECASE)


def camera_index(spec: str) -> int | None:
    """``camera`` → 0, ``camera:2`` → 2, ``1`` → 1; anything else → None."""
    match = _CAMERA.match(spec.strip())
    if not match:
        return None
    return int(match.group(1) or match.group(2) or 0)


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def input_paths(spec: str) -> list[Path]:
    """Files a spec reads, so outputs can be checked against them; empty for cameras/URLs."""
    if camera_index(spec) is not None or spec.lower().startswith(STREAM_SCHEMES):
        return []
    path = Path(spec)
    if path.is_dir():
        return sorted(p for p in path.iterdir() if is_image(p))
    if glob.has_magic(spec) and not path.exists():
        return [Path(p) for p in sorted(glob.glob(spec))]
    return [path]


def check_exists(spec: str) -> None:
    """Fail fast on a missing input file, before a model is loaded or downloaded."""
    if camera_index(spec) is not None or spec.lower().startswith(STREAM_SCHEMES):
        return
    if Path(spec).exists():
        return
    if not glob.has_magic(spec):
        raise SourceNotFoundError(f"input {spec} does not exist")
    if not glob.glob(spec):
        raise SourceNotFoundError(f"no image files match {spec}")


def open_source(
    spec: str,
    start: float | None = None,
    end: float | None = None,
    reconnect: int = 5,
    threads: int = 0,
    hwdec: str = "none",
) -> Source:
    """Open a source from what the user typed.

    ``camera``, ``camera:N`` or ``N`` is a camera; ``rtsp://``/``http://``… a stream opened by
    FFmpeg (live unless it has a known duration); a directory or a glob, its images sorted by
    name; an image file; else a video file. ``start``/``end`` (seconds) cut a video file.

    Raises:
        SourceNotFoundError: nothing at that path.
        SourceError: it exists but cannot be opened.
    """
    index = camera_index(spec)
    if index is not None:
        from annotate.sources.camera import CameraSource

        _no_span(spec, start, end)
        return CameraSource(index)
    if spec.lower().startswith(STREAM_SCHEMES):
        from annotate.sources.stream import StreamSource
        from annotate.sources.video import VideoSource

        video = VideoSource(spec, start, end, hwdec=hwdec)
        if not video.info.live:
            return video
        _no_span(spec, start, end)
        return StreamSource(video, reconnect)

    from annotate.sources.images import ImageSource

    path = Path(spec)
    if path.is_dir():
        images = input_paths(spec)
        if not images:
            raise SourceNotFoundError(f"directory {spec} has no image files")
        _no_span(spec, start, end)
        return ImageSource(images, spec)
    if not path.exists() and glob.has_magic(spec):
        images = [p for p in input_paths(spec) if is_image(p) and p.is_file()]
        if not images:
            raise SourceNotFoundError(f"no image files match {spec}")
        _no_span(spec, start, end)
        return ImageSource(images, spec)
    if not path.exists():
        raise SourceNotFoundError(f"input {spec} does not exist")
    if not path.is_file():
        raise SourceError(f"input {spec} is not a regular file")
    if path.suffix.lower() == ".toml":  # FFmpeg would say only that it has no video stream
        raise UsageError(
            f"{spec} is a TOML file, not a video; to run the sources it lists, use --sources {spec}"
        )
    if is_image(path):
        _no_span(spec, start, end)
        return ImageSource([path], spec)
    from annotate.sources.video import VideoSource

    return VideoSource(spec, start, end, threads, hwdec)


def _no_span(spec: str, start: float | None, end: float | None) -> None:
    if start is not None or end is not None:
        raise UsageError(f"--start/--duration/--end need a video file; {spec} is not one")
