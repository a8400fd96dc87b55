"""One way to do what the supported versions of PyAV and OpenCV spell differently, and to
import PyAV safely beside OpenCV.

PyAV 16 (the oldest supported) to 18 decode container and stream tags strictly unless
``av.open`` is given ``metadata_errors``; PyAV 19 removed that argument (passing it is a
``TypeError``) and no longer fails on tags that are not UTF-8. Every input is opened here so
that damaged or foreign tags never stop a run on either.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any


def import_av() -> Any:
    """PyAV, imported after OpenCV. Both wheels bundle their own FFmpeg libraries; with PyAV's
    loaded first, OpenCV's Qt window (``--show``) hangs in ``cv2.namedWindow`` (seen with
    PyAV 18 and OpenCV 5.0 wheels on Linux), so every import of PyAV goes through here."""
    import importlib

    importlib.import_module("cv2")  # first, see above (a plain import would be re-sorted)
    return importlib.import_module("av")


@functools.cache
def _takes_metadata_errors() -> bool:
    av = import_av()

    major = int(av.__version__.split(".")[0])
    return major < 19


def open_input(url: str, **kwargs: Any) -> Any:
    """``av.open(url)`` for reading, with undecodable tags replaced instead of fatal."""
    av = import_av()

    if _takes_metadata_errors():
        kwargs["metadata_errors"] = "replace"
    return av.open(url, **kwargs)


@contextlib.contextmanager
def opencv_silenced() -> Iterator[None]:
    """OpenCV's own log lines off for a moment, where our error says it better.

    The wheel of OpenCV 4.8 has only ``cv2.setLogLevel``, that of 5.0 only
    ``cv2.utils.logging``.
    """
    import cv2

    logging: Any = getattr(cv2.utils, "logging", None)
    module: Any = cv2
    get_level, set_level = (
        (logging.getLogLevel, logging.setLogLevel)
        if logging
        else (module.getLogLevel, module.setLogLevel)
    )
    level = get_level()
    set_level(0)  # LOG_LEVEL_SILENT in every version
    try:
        yield
    finally:
        set_level(level)
