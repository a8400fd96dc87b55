"""YOLOX input preparation: BGR, raw 0–255, top-left letterbox on a 114 canvas."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

PAD_VALUE = 114


@dataclass(frozen=True)
class Letterbox:
    """How a source image was placed on the model's canvas; undoes it for boxes."""

    ratio: float
    source_width: int
    source_height: int


def letterbox(
    image: npt.NDArray[np.uint8], input_hw: tuple[int, int]
) -> tuple[npt.NDArray[np.float32], Letterbox]:
    """Resize keeping aspect ratio, paste at the top-left of a 114-filled canvas.

    Returns the ``(1, 3, H, W) float32`` blob and the :class:`Letterbox` to map boxes back.
    """
    import cv2

    in_h, in_w = input_hw
    h, w = image.shape[:2]
    ratio = min(in_h / h, in_w / w)
    new_w, new_h = max(1, int(w * ratio)), max(1, int(h * ratio))
    canvas = np.full((in_h, in_w, 3), PAD_VALUE, dtype=np.uint8)
    # INTER_LINEAR is what YOLOX itself uses; the model's scores were measured with it.
    canvas[:new_h, :new_w] = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    blob = np.ascontiguousarray(canvas.transpose(2, 0, 1)[None], dtype=np.float32)
    return blob, Letterbox(ratio, w, h)
