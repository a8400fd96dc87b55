"""Per-frame processing after detection, as an ordered list of stages.

Each stage takes the frame's detections and returns them, with what it found riding on them:
per box in ``Detections.data``, for the frame in ``Detections.meta``. Annotators and sinks read
only that. Each source has its own list (its own tracker and counter), so many sources never
share state. A new stage is one object with :meth:`Stage.process` in the list.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from annotate.types import Detections, Frame, Meta

if TYPE_CHECKING:
    from annotate.analytics.counting import Counter
    from annotate.tracking import Tracker


@dataclass(frozen=True)
class FrameContext:
    """What a stage may need about the frame besides its boxes."""

    frame: Frame
    time: float  # seconds on the source's clock
    detected: bool  # False: the detector skipped this frame (--detect-every)


class Stage(Protocol):
    def process(self, detections: Detections, context: FrameContext) -> Detections: ...


def run_stages(
    stages: Sequence[Stage], detections: Detections | None, context: FrameContext
) -> Detections:
    """The frame through every stage in order; ``None`` (not detected) starts empty."""
    current = detections if detections is not None else Detections.empty()
    for stage in stages:
        current = stage.process(current, context)
    return current


class ScoreStage:
    """Boxes at ``conf`` or more: a source that does not track, sharing a detector whose
    threshold is lower for another source's tracker (:mod:`annotate.pipeline.many`)."""

    def __init__(self, conf: float) -> None:
        self.conf = conf

    def process(self, detections: Detections, context: FrameContext) -> Detections:
        if not len(detections) or detections.scores.min() >= self.conf:
            return detections
        return detections[detections.scores >= self.conf]


class DropStage:
    """Without one class: a source that did not ask for faces, sharing a detector that finds
    them for another source (:mod:`annotate.pipeline.many`)."""

    def __init__(self, class_id: int) -> None:
        self.class_id = class_id

    def process(self, detections: Detections, context: FrameContext) -> Detections:
        keep = detections.class_ids != self.class_id
        return detections if keep.all() else detections[keep]


class TrackStage:
    """Identities: the tracker's update on a detected frame, its prediction on the others."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker

    def process(self, detections: Detections, context: FrameContext) -> Detections:
        tracker = self.tracker
        found = (
            tracker.update(detections, context.time)
            if context.detected
            else tracker.predict(context.time)
        )
        return found.with_meta(**detections.meta, **{Meta.TRACKS: tracker.confirmed})


class CountStage:
    """Lines and zones: counts and this frame's crossing events, after the tracker."""

    def __init__(self, counter: Counter) -> None:
        self.counter = counter

    def process(self, detections: Detections, context: FrameContext) -> Detections:
        counter = self.counter
        counter.update(detections, context.time, context.frame.width, context.frame.height)
        return detections.with_meta(
            **{Meta.COUNTS: counter.as_json(), Meta.RECORD: counter.record()}
        )


class HideStage:
    """The keeper of boxes to hide: the detected boxes of the hidden classes and, with a
    tracker, where its lost tracks of those classes are predicted to be, so a miss of a frame
    or two never shows a face (a track is kept until it is dropped).

    A box whose object is not a track yet (three detections in a row confirm one; a small
    face at the edge of the threshold may be found only every other frame) has no
    prediction: where it is not found again, it stays hidden where it was for ``hold_s``
    seconds of video, or until a box found covers most of it: a face found again smaller or
    shifted keeps its old box too, so no part of it shows for a frame (the flicker
    measurement in docs/counting-and-privacy.md, "Faces"). Still images hold nothing: each is
    its own picture.
    """

    def __init__(
        self, class_ids: Collection[int] | None, tracker: Tracker | None, hold_s: float = 0.5
    ) -> None:
        self.class_ids = None if class_ids is None else np.array(sorted(class_ids), np.int32)
        self.tracker = tracker
        self.hold_s = hold_s
        #: The boxes held, and until when (seconds on the source's clock).
        self.held = Detections.empty()
        self.until = np.zeros(0)

    def process(self, detections: Detections, context: FrameContext) -> Detections:
        found = [detections] + ([self.tracker.lost_boxes()] if self.tracker else [])
        hidden = Detections.merge(found)
        if self.class_ids is not None:
            hidden = hidden[np.isin(hidden.class_ids, self.class_ids)]
        if context.frame.time is not None:
            hidden = self._with_held(hidden, context.time)
        # What was hidden, for an audit of the output (each JSON record's "hidden").
        record = {
            **detections.meta.get(Meta.RECORD, {}),
            "hidden": [[round(v, 2) for v in box] for box in hidden.xyxy.tolist()],
        }
        return detections.with_meta(**{Meta.HIDE: hidden, Meta.RECORD: record})

    def _with_held(self, hidden: Detections, now: float) -> Detections:
        """``hidden`` and the boxes of earlier frames that it no longer covers, until their
        time is up; this frame's boxes are then held from now on."""
        held, until = self.held, self.until
        if len(held):
            gone = until >= now
            if len(hidden):
                gone &= covered_by(held.xyxy, hidden.xyxy) < HELD_COVER
            held, until = held[gone], until[gone]
        plain = Detections(hidden.xyxy, hidden.scores, hidden.class_ids, labels=hidden.labels)
        self.held = Detections.merge([plain, Detections(held.xyxy, held.scores, held.class_ids)])
        self.until = np.concatenate([np.full(len(hidden), now + self.hold_s), until])
        return self.held if len(held) else hidden


#: A box held is let go once one box found this frame covers this share of it (the share
#: the flicker measurement calls hidden).
HELD_COVER = 0.5


def covered_by(boxes: np.ndarray, others: np.ndarray) -> np.ndarray:
    """For each of ``boxes`` (N x 4, xyxy), the largest share of its area inside one of
    ``others``."""
    low = np.maximum(boxes[:, None, :2], others[None, :, :2])
    high = np.minimum(boxes[:, None, 2:], others[None, :, 2:])
    inside = np.clip(high - low, 0, None).prod(axis=2)
    area = np.clip(boxes[:, 2:] - boxes[:, :2], 1e-9, None).prod(axis=1)
    return np.asarray((inside / area[:, None]).max(axis=1))
