"""Annotated still images, written under their source names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from annotate.compat import opencv_silenced
from annotate.errors import OutputError, OutputPathError
from annotate.sinks import SinkBase
from annotate.types import Detections, Frame


def _encode(suffix: str, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8] | None:
    """The encoded image, or ``None`` where OpenCV cannot write colour images of this type
    (its own error lines are silenced: ours says it in one line)."""
    import cv2

    with opencv_silenced():
        try:
            ok, data = cv2.imencode(suffix, image)
        except cv2.error:
            return None
    return data if ok else None


def check_image_type(path: Path) -> None:
    """Refuse, before any work, an image type OpenCV cannot write in colour."""
    if _encode(path.suffix, np.zeros((8, 8, 3), np.uint8)) is None:
        raise OutputPathError(
            f"cannot write {path}: OpenCV cannot write colour images as "
            f"'{path.suffix}'; use .png or .jpg"
        )


def write_image(path: Path, image: npt.NDArray[np.uint8]) -> None:
    data = _encode(path.suffix or ".png", image)
    if data is None:
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
