"""Output decoding per model family, then one shared tail: undo the letterbox, clip,
class-wise NMS (``cv2.dnn.NMSBoxesBatched``), filters.

- YOLOX ``[1, N, 5+C]``: raw grid terms (``xy = (p + grid) * stride``, ``wh = exp(p) * stride``),
  score = objectness × class score.
- YOLOv5 (Ultralytics) ``[1, 3N, 5+C]``: boxes already decoded (cx, cy, w, h in input pixels),
  score = objectness × class score.
- YOLOv8/YOLO11 (Ultralytics) ``[1, 4+C, N]``: decoded boxes, no objectness.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from annotate.detector.preprocess import Letterbox
from annotate.types import Detections

STRIDES = (8, 16, 32)


@dataclass(frozen=True)
class Filter:
    """Which detections to keep besides the score threshold."""

    classes: frozenset[int] | None = None  # None: every class
    min_area: float = 0.0  # in source pixels²
    max_det: int = 300


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


def _best_class(
    class_scores: npt.NDArray[np.float32], objectness: npt.NDArray[np.float32] | None
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Each anchor keeps its best class (as YOLOX's and Ultralytics' own code do)."""
    class_ids = class_scores.argmax(axis=1)
    scores = class_scores[np.arange(len(class_scores)), class_ids]
    if objectness is not None:
        scores = scores * objectness
    return class_ids, scores


def decode(
    output: npt.NDArray[np.float32],
    box: Letterbox,
    input_hw: tuple[int, int],
    conf: float,
    iou: float,
    family: str = "yolox",
    keep: Filter | None = None,
) -> Detections:
    """Turn the raw output of one image into :class:`Detections` in source pixels."""
    pred = output[0]
    if family == "yolov8":
        pred = pred.T
        class_ids, scores = _best_class(pred[:, 4:], None)
    else:
        class_ids, scores = _best_class(pred[:, 5:], pred[:, 4])
    mask = scores >= conf
    if keep is not None and keep.classes is not None:
        mask &= np.isin(class_ids, list(keep.classes))
    if not mask.any():
        return Detections.empty()
    pred, scores, class_ids = pred[mask], scores[mask], class_ids[mask]
    if family == "yolox":
        offsets, strides = grids(input_hw)
        centres = (pred[:, :2] + offsets[mask]) * strides[mask]
        sizes = np.exp(pred[:, 2:4]) * strides[mask]
    else:
        centres, sizes = pred[:, :2], pred[:, 2:4]
    return _finish(centres, sizes, scores, class_ids, box, conf, iou, keep or Filter())


def _finish(
    centres: npt.NDArray[np.float32],
    sizes: npt.NDArray[np.float32],
    scores: npt.NDArray[np.float32],
    class_ids: npt.NDArray[np.int64],
    box: Letterbox,
    conf: float,
    iou: float,
    keep: Filter,
) -> Detections:
    import cv2

    pad = np.array([box.pad_x, box.pad_y] * 2, dtype=np.float32)
    xyxy = (np.concatenate((centres - sizes / 2, centres + sizes / 2), axis=1) - pad) / box.ratio
    np.clip(xyxy[:, 0::2], 0, box.source_width, out=xyxy[:, 0::2])
    np.clip(xyxy[:, 1::2], 0, box.source_height, out=xyxy[:, 1::2])
    xywh = np.concatenate((xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]), axis=1)
    kept = cv2.dnn.NMSBoxesBatched(xywh.tolist(), scores.tolist(), class_ids.tolist(), conf, iou)
    kept = np.asarray(kept, dtype=np.int64).reshape(-1)
    # Highest score first, so the strongest box is drawn on top and listed first.
    kept = kept[np.argsort(-scores[kept], kind="stable")]
    if keep.min_area > 0:
        area = xywh[kept, 2] * xywh[kept, 3]
        kept = kept[area >= keep.min_area]
    kept = kept[: keep.max_det]
    return Detections(xyxy[kept], scores[kept], class_ids[kept])
