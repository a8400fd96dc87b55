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
    or two never shows a face (a track is kept until it is dropped)."""

    def __init__(self, class_ids: Collection[int] | None, tracker: Tracker | None) -> None:
        self.class_ids = None if class_ids is None else np.array(sorted(class_ids), np.int32)
        self.tracker = tracker

    def process(self, detections: Detections, context: FrameContext) -> Detections:
        found = [detections] + ([self.tracker.lost_boxes()] if self.tracker else [])
        hidden = Detections.merge(found)
        if self.class_ids is not None:
            hidden = hidden[np.isin(hidden.class_ids, self.class_ids)]
        return detections.with_meta(**{Meta.HIDE: hidden})
