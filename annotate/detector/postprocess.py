"""What every family's output shares once decoded: undo the letterbox, clip to the image,
class-wise NMS (``cv2.dnn.NMSBoxesBatched``), highest score first. The per-family reading of
the raw output is in :mod:`annotate.detector.families`.
"""

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


def boxes_in_source(
    centres: npt.NDArray[np.float32],
    sizes: npt.NDArray[np.float32],
    scores: npt.NDArray[np.float32],
    class_ids: npt.NDArray[np.int64],
    box: Letterbox,
    conf: float,
    iou: float,
    labels: tuple[str, ...] = (),
    points: npt.NDArray[np.float32] | None = None,
) -> Detections:
    """Boxes given as centres and sizes on the model's canvas → :class:`Detections` in source
    pixels, after NMS, highest score first. ``points``: ``(n, k, 2)`` x, y on the canvas per
    box (a face's landmarks), kept in source pixels as ``data["landmarks"]``."""
    import cv2

    # In place on one array: each NumPy call on a handful of boxes costs more than its
    # arithmetic, and this runs once a frame holding the GIL.
    dtype = np.result_type(centres, sizes, np.float32)
    half = sizes / 2
    xyxy = np.empty((len(scores), 4), dtype)
    np.subtract(centres, half, out=xyxy[:, :2])
    np.add(centres, half, out=xyxy[:, 2:])
    xyxy -= np.array([box.pad_x, box.pad_y] * 2, dtype=np.float32)
    xyxy /= box.ratio
    np.maximum(xyxy, 0, out=xyxy)
    limits = np.array([box.source_width, box.source_height] * 2, dtype=xyxy.dtype)
    np.minimum(xyxy, limits, out=xyxy)
    xywh = xyxy.copy()
    xywh[:, 2:] -= xyxy[:, :2]
    found = cv2.dnn.NMSBoxesBatched(xywh.tolist(), scores.tolist(), class_ids.tolist(), conf, iou)
    kept = np.asarray(found, dtype=np.int64).reshape(-1)
    # Highest score first, so the strongest box is drawn on top and listed first.
    kept = kept[np.argsort(-scores[kept], kind="stable")]
    data = {}
    if points is not None:
        pad = np.array([box.pad_x, box.pad_y], dtype=np.float32)
        data["landmarks"] = ((points[kept] - pad) / box.ratio).astype(np.float32)
    return Detections(xyxy[kept], scores[kept], class_ids[kept], labels=labels, data=data)
