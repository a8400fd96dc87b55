"""Input preparation: aspect-preserving letterbox on a 114 canvas, per model family.

YOLOX wants BGR, raw 0–255, the image at the top-left; Ultralytics models (YOLOv5/8/11) want
RGB scaled to 0–1, the image centred.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from annotate.types import as_image

PAD_VALUE = 114


@dataclass(frozen=True)
class Letterbox:
    """How a source image was placed on the model's canvas; undoes it for boxes."""

    ratio: float
    source_width: int
    source_height: int
    canvas_hw: tuple[int, int]  # the model input it was pasted on
    pad_x: float = 0.0
    pad_y: float = 0.0


def place(
    image: npt.NDArray[np.uint8], input_hw: tuple[int, int], centered: bool = False
) -> tuple[npt.NDArray[np.uint8], Letterbox]:
    """Resize keeping aspect ratio and paste on a 114-filled ``uint8`` canvas (top-left or
    centred): the part of the letterbox every provider does on the CPU."""
    import cv2

    in_h, in_w = input_hw
    h, w = image.shape[:2]
    ratio = min(in_h / h, in_w / w)
    new_w, new_h = max(1, int(w * ratio)), max(1, int(h * ratio))
    pad_x = (in_w - new_w) // 2 if centered else 0
    pad_y = (in_h - new_h) // 2 if centered else 0
    # INTER_LINEAR is what YOLOX itself uses; the model's scores were measured with it.
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    # The border in one OpenCV call, which releases the GIL (np.full and a slice copy hold
    # it, and many sources letterbox at once in one process).
    canvas = as_image(cv2.copyMakeBorder(
        resized, pad_y, in_h - new_h - pad_y, pad_x, in_w - new_w - pad_x,
        cv2.BORDER_CONSTANT, value=(PAD_VALUE, PAD_VALUE, PAD_VALUE),
    ))  # fmt: skip
    return canvas, Letterbox(ratio, w, h, (in_h, in_w), float(pad_x), float(pad_y))


def letterbox(
    image: npt.NDArray[np.uint8],
    input_hw: tuple[int, int],
    centered: bool = False,
    rgb: bool = False,
    scale: float = 1.0,
) -> tuple[npt.NDArray[np.float32], Letterbox]:
    """:func:`place`, then the ``(1, 3, H, W) float32`` blob the model takes, channels in
    its order and scaled. (A packed model takes the canvas itself: see
    :mod:`annotate.detector.graph`.)"""
    canvas, box = place(image, input_hw, centered)
    if rgb:
        canvas = canvas[:, :, ::-1]
    blob = np.ascontiguousarray(canvas.transpose(2, 0, 1)[None], dtype=np.float32)
    if scale != 1.0:
        blob *= scale
    return blob, box
