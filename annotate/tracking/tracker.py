"""ByteTrack-style multi-object tracking: identities that survive misses and occlusions.

Written from the published algorithm (Zhang et al., "ByteTrack: Multi-Object Tracking by
Associating Every Detection Box", ECCV 2022), with these choices of our own:

- time comes from frame timestamps (seconds), not frame counts: motion is predicted over the
  real gap, and a lost track is kept for ``buffer_s`` seconds of video;
- matching is per class: a person's track never takes a car's box;
- an identity is handed out only when a track is confirmed (seen in ``confirm_hits``
  detection rounds in a row), so ids count real objects from 1, not one-frame false alarms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from annotate.tracking import kalman
from annotate.types import Detections

#: The tracker's per-track arrays, one row per live track, kept in step.
STATE = ("mean", "cov", "classes", "ids", "hits", "last_seen", "lost", "scores")
#: Cost of a pair that must never match (another class); far above any IoU cost.
_FORBIDDEN = 1e6


@dataclass(frozen=True)
class TrackerSettings:
    """What decides a match; defaults follow ByteTrack, ``high`` is the run's ``--conf``."""

    high: float = 0.5  # detections at or above match first (ByteTrack's track_thresh)
    low: float = 0.1  # detections between low and high only keep existing tracks alive
    #: Detections at or above start new tracks: ByteTrack's ``det_thresh``, ``high`` + 0.1.
    #: Starting them from --conf's 0.3 instead made 40 % of the tracked boxes on
    #: TUD-Campus match no person (docs/tracking.md, "Real pedestrians").
    start: float = 0.6
    match_iou: float = 0.2  # round 1: least IoU between a track's predicted box and a box
    low_match_iou: float = 0.5  # round 2, for the less certain boxes
    #: For confirmed tracks, confident boxes' overlap counts times their score (ByteTrack's
    #: ``fuse_score``): a track needs more overlap to take a box the model is less sure of.
    #: Without it a lost track took a partial second box of someone already tracked
    #: (docs/tracking.md, "Overlap weighed by score"). Not for ``class_high`` classes.
    fuse_score: bool = True
    lost_expand: float = 0.5  # lost tracks match boxes grown by this much of their height
    confirm_hits: int = 3  # detection rounds in a row before a track gets an identity
    buffer_s: float = 1.0  # how long a lost track waits to be found again
    #: (class id, threshold) pairs whose boxes are confident, and start tracks, from their
    #: own threshold rather than ``high`` and ``start``: faces, at the face model's score.
    class_high: tuple[tuple[int, float], ...] = ()


def iou_matrix(a: npt.NDArray[np.floating], b: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    """``(n, m)`` intersection over union of xyxy boxes."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    # Outer products of the four coordinates: a few (n, m) arrays, no (n, m, 2) temporaries
    # (this runs four times a frame for every source a process tracks).
    w = np.minimum.outer(a[:, 2], b[:, 2]) - np.maximum.outer(a[:, 0], b[:, 0])
    h = np.minimum.outer(a[:, 3], b[:, 3]) - np.maximum.outer(a[:, 1], b[:, 1])
    inter = np.maximum(w, 0.0, out=w)
    inter *= np.maximum(h, 0.0, out=h)
    size_a = np.maximum(a[:, 2] - a[:, 0], 0.0) * np.maximum(a[:, 3] - a[:, 1], 0.0)
    size_b = np.maximum(b[:, 2] - b[:, 0], 0.0) * np.maximum(b[:, 3] - b[:, 1], 0.0)
    union = np.add.outer(size_a, size_b)
    union -= inter
    iou: npt.NDArray[np.float64] = np.divide(
        inter, union, out=np.zeros_like(inter), where=union > 0
    )
    return iou


def match(
    tracks: npt.NDArray[np.floating],
    track_classes: npt.NDArray[np.integer],
    boxes: npt.NDArray[np.floating],
    box_classes: npt.NDArray[np.integer],
    min_iou: float,
    box_scores: npt.NDArray[np.floating] | None = None,
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Optimal one-to-one pairs of the same class with IoU ≥ ``min_iou`` (IoU times the
    box's score, with ``box_scores``): their track rows and their box rows."""
    if len(tracks) == 0 or len(boxes) == 0:
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    from scipy.optimize import linear_sum_assignment  # imported once by Tracker()

    similarity = iou_matrix(tracks, boxes)
    if box_scores is not None:
        similarity *= np.asarray(box_scores, np.float64)[None, :]
    cost = 1.0 - similarity
    cost[track_classes[:, None] != box_classes[None, :]] = _FORBIDDEN
    rows, cols = linear_sum_assignment(cost)
    keep = cost[rows, cols] <= 1.0 - min_iou
    return rows[keep], cols[keep]


def _grow(boxes: npt.NDArray[np.floating], by: float) -> npt.NDArray[np.floating]:
    """Boxes grown on every side by ``by`` of their height.

    The height, because it is what an object passing behind another keeps: its width
    shrinks to the visible part, and so does the width of the track that followed it.
    """
    if not by:
        return boxes
    margin = (boxes[:, 3:4] - boxes[:, 1:2]) * by
    return np.hstack([boxes[:, :2] - margin, boxes[:, 2:] + margin])


class Tracker:
    """Gives each detection the identity of the object it belongs to, frame after frame.

    Feed it every frame's detections in order with the frame's time; it returns them with
    ``track_id`` set (``-1`` while a track is not yet confirmed). Frames that were not
    detected (``--detect-every``) call :meth:`predict` instead. One tracker per source:
    identities start at 1. Its state is a few arrays the size of the live tracks, so memory
    does not grow with the length of the stream.

    Example:
        >>> tracker = Tracker()
        >>> for t in (0.0, 0.04, 0.08):
        ...     out = tracker.update(Detections([[10, 10, 50, 90]], [0.9], [0]), t)
        >>> out.track_id.tolist()
        [1]
    """

    def __init__(self, settings: TrackerSettings | None = None) -> None:
        # scipy takes ~0.3 s to import: at start-up, not in the middle of the first frames.
        import scipy.optimize  # noqa: F401

        self.settings = settings or TrackerSettings()
        self.time: float | None = None
        self.next_id = 1
        self.labels: tuple[str, ...] = ()  # the detector's class names, from its detections
        self.mean = np.zeros((0, 8))
        self.cov = np.zeros((0, 8, 8))
        self.classes = np.zeros(0, np.int32)
        self.ids = np.zeros(0, np.int64)  # 0 until confirmed
        self.hits = np.zeros(0, np.int64)
        self.last_seen = np.zeros(0)
        self.lost = np.zeros(0, bool)
        self.scores = np.zeros(0, np.float32)

    @property
    def confirmed(self) -> int:
        """Identities handed out so far on this source."""
        return self.next_id - 1

    @property
    def active(self) -> int:
        """Confirmed tracks seen at the last detection round."""
        return int(np.count_nonzero((self.ids > 0) & ~self.lost))

    def _advance(self, time: float) -> None:
        dt = 0.0 if self.time is None else max(0.0, time - self.time)
        self.time = time if self.time is None else max(self.time, time)
        # A lost track keeps moving but stops changing size (as ByteTrack does for its
        # height): a box that shrank while its object went behind another would otherwise
        # shrink to nothing.
        self.mean[self.lost, 6:] = 0.0
        self.mean, self.cov = kalman.predict(self.mean, self.cov, dt)

    def predict(self, time: float) -> Detections:
        """Where the tracks seen at the last detection are now, for a frame that was not
        detected; tentative ones have ``track_id`` -1, as they had on that frame."""
        self._advance(time)
        return self._predicted(~self.lost)

    def lost_boxes(self) -> Detections:
        """Where the confirmed tracks that were not found this frame are predicted to be.

        For privacy blur: an object the detector missed for a frame or two stays hidden
        until its track is dropped.
        """
        return self._predicted((self.ids > 0) & self.lost)

    def _predicted(self, keep: npt.NDArray[np.bool_]) -> Detections:
        ids = self.ids[keep]
        return Detections(
            kalman.state_to_xyxy(self.mean[keep]),
            self.scores[keep],
            self.classes[keep],
            track_id=np.where(ids > 0, ids, -1),
            predicted=np.ones(len(ids), bool),
            labels=self.labels,
        )

    def update(self, detections: Detections, time: float) -> Detections:
        """Match this frame's detections to the tracks; returns the ones that belong to one,
        and the confident ones that do not (``track_id`` -1).

        Confident detections (score ≥ ``high``) are matched first, then the less confident
        ones against tracks still unmatched that were seen last round (this keeps an object
        through partial occlusion, when its score drops). Less confident boxes that match
        nothing are dropped; confident ones from ``start`` up start new tracks.
        """
        s = self.settings
        self._advance(time)
        self.labels = detections.labels
        scores = detections.scores
        boxes, classes = detections.xyxy, detections.class_ids
        confident = np.full(len(scores), s.high, np.float32)
        starts = np.full(len(scores), s.start, np.float32)
        # What a box's overlap is weighed by (fuse_score). Classes with their own threshold
        # (faces, kept from 0.2) score low by nature: theirs is not weighed (weighed, the
        # street clip's faces got twice the identities).
        weight = scores.copy()
        for class_id, threshold in s.class_high:
            own = classes == class_id
            confident[own] = starts[own] = threshold
            weight[own] = 1.0
        high = scores >= confident
        low = (scores >= s.low) & ~high
        predicted = kalman.state_to_xyxy(self.mean)

        confirmed = self.ids > 0
        # Each box's track row (-1: none yet) and the tracks not matched yet: arrays, not
        # Python sets, as this runs every frame of every source a process tracks.
        track_of = np.full(len(scores), -1, np.int64)
        free = np.ones(len(self.ids), bool)

        def round_(
            tracks: npt.NDArray[np.bool_],
            candidates: npt.NDArray[np.bool_],
            min_iou: float,
            expand: float = 0.0,
            fuse: bool = False,
        ) -> None:
            rows = (tracks & free).nonzero()[0]
            cols = (candidates & (track_of < 0)).nonzero()[0] if len(rows) else rows
            if len(rows) and len(cols):
                t, d = match(
                    _grow(predicted[rows], expand),
                    self.classes[rows],
                    _grow(boxes[cols], expand),
                    classes[cols],
                    min_iou,
                    weight[cols] if fuse else None,
                )
                track_of[cols[d]] = rows[t]
                free[rows[t]] = False

        fuse = s.fuse_score
        # 1. Confirmed tracks, found or lost, take the confident boxes.
        round_(confirmed, high, s.match_iou, fuse=fuse)
        # 2. Tracks seen last round and still unmatched take the less confident boxes (by
        #    IoU alone, as ByteTrack's second round: their scores are low by definition).
        round_(confirmed & ~self.lost, low, s.low_match_iou)
        # 3. Lost tracks look wider: after an occlusion the box that comes back is often
        #    partial, or the object moved off its predicted line (buffered IoU, Yang et al.
        #    2023, "Hard to track objects with irregular motions...").
        round_(confirmed & self.lost, high, s.match_iou, s.lost_expand, fuse=fuse)
        # 4. Only then may tentative tracks continue, so they never steal a lost track's box
        #    (by IoU alone: a new small, fast object is still confirmed).
        round_(~confirmed, high, s.match_iou)

        det_rows = np.flatnonzero(track_of >= 0)
        track_rows = track_of[det_rows]
        if len(det_rows):
            mean, cov = kalman.update(
                self.mean[track_rows], self.cov[track_rows], boxes[det_rows].astype(np.float64)
            )
            self.mean[track_rows], self.cov[track_rows] = mean, cov
            self.hits[track_rows] += 1
            self.last_seen[track_rows] = time
            self.lost[track_rows] = False
            self.scores[track_rows] = scores[det_rows]

        # Unmatched tracks: a tentative one ends at its first miss, a confirmed one is lost
        # and kept for buffer_s seconds of video.
        unmatched = free
        keep = ~(unmatched & (self.ids == 0))
        keep &= (time - self.last_seen) <= s.buffer_s
        self.lost |= unmatched
        self.hits[unmatched] = 0
        self._drop(keep, track_of)

        new = np.flatnonzero(high & (track_of < 0) & (scores >= starts))
        if len(new):
            first = len(self.ids)
            mean, cov = kalman.initiate(boxes[new].astype(np.float64))
            added = {
                "mean": mean,
                "cov": cov,
                "classes": classes[new],
                "ids": np.zeros(len(new), np.int64),
                "hits": np.ones(len(new), np.int64),
                "last_seen": np.full(len(new), time),
                "lost": np.zeros(len(new), bool),
                "scores": scores[new],
            }
            for name in STATE:
                setattr(self, name, np.concatenate([getattr(self, name), added[name]]))
            track_of[new] = first + np.arange(len(new))

        # Confirm in the order the objects appear in the frame, so ids read naturally.
        matched = np.flatnonzero(track_of >= 0)
        tracks = track_of[matched]
        ready = tracks[(self.ids[tracks] == 0) & (self.hits[tracks] >= s.confirm_hits)]
        self.ids[ready] = np.arange(self.next_id, self.next_id + len(ready))
        self.next_id += len(ready)

        # Boxes at --conf that neither continue nor start a track are still returned, without
        # an identity: what the detector found is shown (and hidden by --blur) either way.
        rows = np.flatnonzero((track_of >= 0) | high)
        out = detections[rows]
        ids = np.zeros(len(rows), np.int64)
        owned = track_of[rows] >= 0
        ids[owned] = self.ids[track_of[rows][owned]]
        return Detections(
            out.xyxy,
            out.scores,
            out.class_ids,
            track_id=np.where(ids > 0, ids, -1),
            predicted=np.zeros(len(rows), bool),
            labels=self.labels,
            data=out.data,
        )

    def _drop(self, keep: npt.NDArray[np.bool_], track_of: npt.NDArray[np.int64]) -> None:
        """Drop the tracks not kept; ``track_of`` (each box's track row) follows the rows."""
        if keep.all():
            return
        renumber = np.cumsum(keep) - 1
        owned = track_of >= 0
        track_of[owned] = renumber[track_of[owned]]  # matched tracks are always kept
        for name in STATE:
            setattr(self, name, getattr(self, name)[keep])
