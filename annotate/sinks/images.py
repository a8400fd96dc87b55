"""Annotated still images, written under their source names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from annotate.errors import OutputError
from annotate.sinks import SinkBase
from annotate.types import Detections, Frame


def write_image(path: Path, image: npt.NDArray[np.uint8]) -> None:
    import cv2

    ok, data = cv2.imencode(path.suffix or ".png", image)
    if not ok:
        raise OutputError(f"cannot encode {path}: unsupported image type '{path.suffix}'")
    try:
        data.tofile(path)
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror}") from None


class ImageSink(SinkBase):
    """``target`` is a directory (one file per input image, same name) or, for a single
    image, the output file itself."""

    def __init__(self, target: Path, single_file: bool = False) -> None:
        self.target = target
        self.single_file = single_file
        self.written: list[Path] = []
        if not single_file:
            try:
                target.mkdir(exist_ok=True)
            except OSError as e:
                raise OutputError(f"cannot create directory {target}: {e.strerror}") from None

    def write(self, frame: Frame, annotated: npt.NDArray[np.uint8], detections: Detections) -> None:
        if self.single_file:
            path = self.target
        else:
            path = self.target / Path(frame.source).name
            if path in self.written:  # same name from two folders of a glob
                path = path.with_stem(f"{path.stem}-{frame.index}")
        write_image(path, annotated)
        self.written.append(path)

    def close(self) -> None:
        pass
