"""Tracking accuracy against known paths: MOTA, ID switches and IDF1, with scipy.

Follows the CLEAR MOT definitions (Bernardin & Stiefelhagen, 2008) and the identity measures
of Ristani et al. (2016). A ground-truth box and a tracked box correspond when their IoU is at
least 0.5. Used by ``scripts/tracking_eval.py`` and the tests; ``motmetrics`` would do the
same but does not run with numpy 2.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from annotate.tracking.tracker import iou_matrix

#: One frame: ids ``(n,)`` and xyxy boxes ``(n, 4)``.
FrameBoxes = tuple[npt.NDArray[np.integer], npt.NDArray[np.floating]]


@dataclass(frozen=True)
class TrackingScore:
    frames: int
    truth_boxes: int
    misses: int
    false_positives: int
    id_switches: int
    mota: float
    idf1: float


def evaluate(
    truth: Sequence[FrameBoxes], tracked: Sequence[FrameBoxes], min_iou: float = 0.5
) -> TrackingScore:
    """Score ``tracked`` against ``truth``, frame by frame (same length, same order)."""
    from scipy.optimize import linear_sum_assignment

    misses = false_positives = switches = 0
    last_match: dict[int, int] = {}  # truth id -> tracked id it was last matched to
    overlap: dict[tuple[int, int], int] = {}  # (truth id, tracked id) -> frames matched
    truth_total = tracked_total = 0
    for (gt_ids, gt_boxes), (tr_ids, tr_boxes) in zip(truth, tracked, strict=True):
        gt_ids, tr_ids = np.asarray(gt_ids).tolist(), np.asarray(tr_ids).tolist()
        truth_total += len(gt_ids)
        tracked_total += len(tr_ids)
        iou = iou_matrix(np.reshape(gt_boxes, (-1, 4)), np.reshape(tr_boxes, (-1, 4)))
        for g, gid in enumerate(gt_ids):  # every (truth, tracked) pair that overlaps counts
            for t, tid in enumerate(tr_ids):  # for IDF1, which matches identities globally
                if iou[g, t] >= min_iou:
                    overlap[gid, tid] = overlap.get((gid, tid), 0) + 1
        # CLEAR MOT: keep last frame's correspondences that still hold, then match the rest.
        pairs: list[tuple[int, int]] = []
        for g, gid in enumerate(gt_ids):
            if gid in last_match and last_match[gid] in tr_ids:
                t = tr_ids.index(last_match[gid])
                if iou[g, t] >= min_iou:
                    pairs.append((g, t))
        free_g = [g for g in range(len(gt_ids)) if g not in {p[0] for p in pairs}]
        free_t = [t for t in range(len(tr_ids)) if t not in {p[1] for p in pairs}]
        if free_g and free_t:
            cost = 1 - iou[np.ix_(free_g, free_t)]
            rows, cols = linear_sum_assignment(cost)
            for r, c in zip(rows, cols):
                if cost[r, c] <= 1 - min_iou:
                    g, t = free_g[r], free_t[c]
                    gid = gt_ids[g]
                    if gid in last_match and last_match[gid] != tr_ids[t]:
                        switches += 1
                    pairs.append((g, t))
        for g, t in pairs:
            last_match[gt_ids[g]] = tr_ids[t]
        misses += len(gt_ids) - len(pairs)
        false_positives += len(tr_ids) - len(pairs)
    mota = 1 - (misses + false_positives + switches) / truth_total if truth_total else 0.0
    return TrackingScore(
        len(truth),
        truth_total,
        misses,
        false_positives,
        switches,
        mota,
        _idf1(overlap, truth_total, tracked_total),
    )


def _idf1(overlap: dict[tuple[int, int], int], truth_total: int, tracked_total: int) -> float:
    """Identities matched one to one over the whole clip, to maximise frames in agreement."""
    from scipy.optimize import linear_sum_assignment

    if not overlap or truth_total + tracked_total == 0:
        return 0.0
    gids = sorted({g for g, _ in overlap})
    tids = sorted({t for _, t in overlap})
    gain = np.zeros((len(gids), len(tids)))
    for (g, t), n in overlap.items():
        gain[gids.index(g), tids.index(t)] = n
    rows, cols = linear_sum_assignment(-gain)
    return 2 * float(gain[rows, cols].sum()) / (truth_total + tracked_total)
