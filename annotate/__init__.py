"""annotate: run an object detector over camera, video or image frames and draw what it finds.

The package is a library with a thin CLI on top (``annotate.cli``). Importing it is cheap:
OpenCV, ONNX Runtime and PyAV load only when a stage that needs them runs.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from annotate.types import Detections, Frame, SourceInfo

try:
    __version__ = version("annotate-video")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = ["Detections", "Frame", "SourceInfo", "__version__"]
