"""The canvas a frame is letterboxed onto: the model's square, or fitted to the frame.

A 16:9 frame fills 234 of YOLOX-Nano's 416 rows; the other 182 are grey padding that costs
as much to run as the picture. Fitting the canvas to the frame (each side rounded up to the
largest stride, as Ultralytics' ``rect`` letterbox does) runs 416×256 instead: the same
detections within a few hundredths of a score (docs/models.md). It needs a model whose
graph takes other input sizes: fully convolutional, with its output reshaped by ``-1`` (YOLOX
exports are); a model that fails on another size is kept on its square.
"""

from __future__ import annotations

import math

#: ``auto``: fitted for video, cameras and streams, square for still images (the model's
#: own recipe, whose published scores they reproduce exactly).
CANVASES = ("auto", "fit", "square")
STRIDE = 32  # the coarsest grid of YOLOX and Ultralytics detectors


def fitted(model_hw: tuple[int, int], image_hw: tuple[int, int]) -> tuple[int, int]:
    """The smallest canvas, in whole strides, that holds the image letterboxed for
    ``model_hw`` (never larger than it)."""
    (in_h, in_w), (h, w) = model_hw, image_hw
    ratio = min(in_h / h, in_w / w)
    new_h, new_w = max(1, int(h * ratio)), max(1, int(w * ratio))
    return (
        min(in_h, math.ceil(new_h / STRIDE) * STRIDE),
        min(in_w, math.ceil(new_w / STRIDE) * STRIDE),
    )


def size_text(hw: tuple[int, int]) -> str:
    """``(height, width)`` as people write a frame size: ``416x256``."""
    return f"{hw[1]}x{hw[0]}"


def face_canvas(image_hw: tuple[int, int], side: int | None) -> tuple[int, int]:
    """The canvas of a face model (:class:`annotate.detector.families.CenterFace`): the image
    at its own size, or shrunk so its longer side is at most ``side``, then enlarged evenly
    to fill whole strides on its tighter side (never shrunk to fit them: a few per cent more
    pixels found as many faces of 20-40 px as deface's stretched resize, which a grey border
    did not). The trade of size for speed and recall is in docs/counting-and-privacy.md,
    "Faces" (``scripts/faces.py``)."""
    h, w = image_hw
    ratio = 1.0 if side is None else min(1.0, side / max(h, w))
    rows, columns = _whole(h * ratio), _whole(w * ratio)
    ratio = max(rows / h, columns / w)
    return _whole(h * ratio), _whole(w * ratio)


def _whole(pixels: float) -> int:
    return max(STRIDE, math.ceil(round(pixels, 6) / STRIDE) * STRIDE)
