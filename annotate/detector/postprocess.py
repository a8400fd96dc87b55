"""YOLOX output decoding: grid decode, objectness × class score, class-wise NMS."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import numpy.typing as npt

from annotate.detector.preprocess import Letterbox
from annotate.types import Detections

STRIDES = (8, 16, 32)


@lru_cache(maxsize=8)
def grids(input_hw: tuple[int, int]) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Anchor-point offsets ``(N, 2)`` and strides ``(N, 1)``, row-major per stride level."""
    in_h, in_w = input_hw
    offsets, strides = [], []
    for stride in STRIDES:
        gh, gw = in_h // stride, in_w // stride
        ys, xs = np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij")
        offsets.append(np.stack((xs, ys), axis=-1).reshape(-1, 2))
        strides.append(np.full((gh * gw, 1), stride))
    return (
        np.concatenate(offsets).astype(np.float32),
        np.concatenate(strides).astype(np.float32),
    )


def anchor_count(input_hw: tuple[int, int]) -> int:
    return sum((input_hw[0] // s) * (input_hw[1] // s) for s in STRIDES)


def decode(
    output: npt.NDArray[np.float32],
    box: Letterbox,
    input_hw: tuple[int, int],
    conf: float,
    iou: float,
) -> Detections:
    """Turn the raw ``(1, N, 5 + C)`` output into boxes in source pixels.

    Each anchor keeps its best class (as YOLOX's own ``postprocess`` does); boxes of the same
    class overlapping by more than ``iou`` are suppressed with ``cv2.dnn.NMSBoxesBatched``.
    """
    import cv2

    pred = output[0]
    class_scores = pred[:, 5:]
    class_ids = class_scores.argmax(axis=1)
    scores = pred[:, 4] * class_scores[np.arange(len(pred)), class_ids]
    keep = scores >= conf
    if not keep.any():
        return Detections.empty()

    offsets, strides = grids(input_hw)
    pred, scores, class_ids = pred[keep], scores[keep], class_ids[keep]
    centres = (pred[:, :2] + offsets[keep]) * strides[keep]
    sizes = np.exp(pred[:, 2:4]) * strides[keep]
    xyxy = np.concatenate((centres - sizes / 2, centres + sizes / 2), axis=1) / box.ratio
    np.clip(xyxy[:, 0::2], 0, box.source_width, out=xyxy[:, 0::2])
    np.clip(xyxy[:, 1::2], 0, box.source_height, out=xyxy[:, 1::2])

    xywh = np.concatenate((xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]), axis=1)
    kept = cv2.dnn.NMSBoxesBatched(xywh.tolist(), scores.tolist(), class_ids.tolist(), conf, iou)
    kept = np.asarray(kept, dtype=np.int64).reshape(-1)
    # Highest score first, so the strongest box is drawn on top and listed first.
    kept = kept[np.argsort(-scores[kept], kind="stable")]
    return Detections(xyxy[kept], scores[kept], class_ids[kept])
