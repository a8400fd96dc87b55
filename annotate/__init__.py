"""annotate: run an object detector over camera, video or image frames and draw what it finds.

The package is a library with a thin CLI on top (``annotate.cli``). Importing it is cheap:
numpy, OpenCV, ONNX Runtime and PyAV load only when something that needs them is used.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from annotate.types import Detections, Frame, SourceInfo

try:
    __version__ = version("annotate-video")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = ["Detections", "Frame", "SourceInfo", "__version__"]


def __getattr__(name: str) -> Any:
    """``annotate.Detections`` and friends, imported on first use (PEP 562)."""
    if name in ("Detections", "Frame", "SourceInfo"):
        from annotate import types

        return getattr(types, name)
    raise AttributeError(f"module 'annotate' has no attribute {name!r}")
