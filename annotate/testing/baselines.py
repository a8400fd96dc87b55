"""What peers and hand-written loops do, run on the same detections for comparison."""

from __future__ import annotations

import numpy as np

from annotate.tracking import Tracker
from annotate.tracking.metrics import FrameBoxes
from annotate.tracking.tracker import iou_matrix
from annotate.types import Detections


class GreedyIou:
    """What a hand-written tracker does: each box takes the id of last frame's box it
    overlaps most (same class, IoU ≥ 0.3), else a new id."""

    def __init__(self) -> None:
        self.previous = Detections(track_id=np.zeros(0, np.int64))
        self.next_id = 1

    def update(self, detections: Detections, _time: float) -> Detections:
        ids = np.zeros(len(detections), np.int64)
        previous_ids = self.previous.track_id
        assert previous_ids is not None  # set below
        iou = iou_matrix(self.previous.xyxy, detections.xyxy)
        same = self.previous.class_ids[:, None] == detections.class_ids[None, :]
        iou = np.where(same, iou, 0)
        while iou.size and np.max(iou) >= 0.3:
            p, d = np.unravel_index(np.argmax(iou), iou.shape)
            ids[d] = previous_ids[p]
            iou[p, :] = iou[:, d] = 0
        for d in np.flatnonzero(ids == 0):
            ids[d] = self.next_id
            self.next_id += 1
        out = Detections(detections.xyxy, detections.scores, detections.class_ids, ids)
        self.previous = out
        return out


def track(
    tracker: Tracker | GreedyIou, found: list[Detections], fps: float = 30
) -> list[FrameBoxes]:
    out = []
    for i, detections in enumerate(found):
        tracked = tracker.update(detections, i / fps)
        ids = tracked.track_id
        assert ids is not None  # both trackers set it
        confirmed = ids > 0
        out.append((ids[confirmed], tracked.xyxy[confirmed]))
    return out
