"""Still images: one file, a directory or a glob, read in name order."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from annotate.errors import SourceError
from annotate.sources.base import SourceBase
from annotate.types import Frame, SourceInfo

log = logging.getLogger("annotate")


def read_image(path: Path) -> np.ndarray:
    """Read as BGR; ``np.fromfile`` + ``imdecode`` also copes with non-ASCII paths on Windows."""
    import cv2

    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise SourceError(f"cannot read {path}: {e.strerror}") from None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise SourceError(f"{path} is not a readable image (empty or damaged file)")
    return image


class ImageSource(SourceBase):
    """Yields each image once; a damaged image among many is skipped with a warning."""

    def __init__(self, paths: Sequence[Path], name: str) -> None:
        self.paths = list(paths)
        self.name = name
        self._first = read_image(self.paths[0]) if len(self.paths) == 1 else None
        first = self._first if self._first is not None else self._first_readable()
        self.info = SourceInfo(
            width=first.shape[1],
            height=first.shape[0],
            fps=Fraction(1),
            frames=len(self.paths),
            still=True,
        )

    def _first_readable(self) -> np.ndarray:
        for path in self.paths:
            try:
                return read_image(path)
            except SourceError:
                continue
        raise SourceError(f"none of the {len(self.paths)} images in {self.name} can be read")

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        for path in self.paths:
            if self._first is not None:
                image, self._first = self._first, None
            else:
                try:
                    image = read_image(path)
                except SourceError as e:
                    if len(self.paths) == 1:
                        raise
                    log.warning("Skipping %s", e)
                    continue
            yield Frame(index, None, image, str(path))
            index += 1

    def close(self) -> None:
        self._first = None
