"""Plain data passed between pipeline stages."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Frame:
    """One decoded image and where it came from.

    Attributes:
        index: 0-based position in the source.
        time: seconds since the start of the source, from the container's timestamps (or the
            capture clock for cameras); ``None`` for still images.
        image: BGR ``uint8`` array of shape ``(H, W, 3)``.
        source: path or description of the input this frame came from (an image file for
            image sources, so each record names its own file).
        captured: ``time.monotonic()`` when a live source received the frame, so its age
            when drawn can be measured; ``None`` for files.
    """

    index: int
    time: float | None
    image: npt.NDArray[np.uint8]
    source: str
    captured: float | None = None  # time.monotonic() at capture, for live sources

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


@dataclass(frozen=True)
class SourceInfo:
    """What sinks need to know about a source before the first frame arrives.

    ``fps`` keeps the exact rational rate (29.83 fps is ``179/6``), ``frames`` is ``None`` when
    the container does not say (or says 0, which some Matroska files do), and ``time_base`` is
    the source's timestamp unit, so an output can keep the timestamps exactly. ``width`` and
    ``height`` are of the upright image (after any rotation tag is applied).
    """

    width: int
    height: int
    fps: Fraction
    frames: int | None = None
    time_base: Fraction | None = None
    live: bool = False
    still: bool = False
    start: float = 0.0  # time of the first frame; outputs start their clock here
    time_offset: float = 0.0  # container time of ``time`` 0 (where other streams line up)


def _as_array(value: object, dtype: type, shape_tail: tuple[int, ...], name: str) -> np.ndarray:
    array = np.asarray(value, dtype=dtype)
    if array.ndim != 1 + len(shape_tail) or array.shape[1:] != shape_tail:
        expected = "(n, " + ", ".join(map(str, shape_tail)) + ")" if shape_tail else "(n,)"
        raise ValueError(f"Detections.{name} must have shape {expected}, got {array.shape}")
    return array


@dataclass(frozen=True)
class Detections:
    """Detections in one image, as parallel arrays.

    Attributes:
        xyxy: ``(n, 4) float32`` boxes ``x1, y1, x2, y2`` in source pixels.
        scores: ``(n,) float32`` confidence (objectness × class score for YOLOX).
        class_ids: ``(n,) int32`` indices into the detector's labels.
        tracker_id: ``(n,) int64`` identity from the tracker (``-1``: a track not yet
            confirmed), or ``None`` when the run does not track.
        predicted: ``(n,) bool``, ``True`` for boxes the tracker predicted on a frame that was
            not detected (``--detect-every``), or ``None`` when the run does not track.
        labels: the model's class names, indexed by class id (shared by every box; ids past
            its end are named by their number).

    Example:
        >>> d = Detections([[0, 0, 10, 10], [5, 5, 7, 7]], [0.9, 0.4], [0, 2], labels=("person",))
        >>> d[d.scores > 0.5].names
        ['person']
        >>> d.filter(min_area=10).names, d.names
        (['person'], ['person', '2'])
    """

    xyxy: npt.NDArray[np.float32] = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    scores: npt.NDArray[np.float32] = field(default_factory=lambda: np.zeros((0,), np.float32))
    class_ids: npt.NDArray[np.int32] = field(default_factory=lambda: np.zeros((0,), np.int32))
    tracker_id: npt.NDArray[np.int64] | None = None
    predicted: npt.NDArray[np.bool_] | None = None
    labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        xyxy = _as_array(self.xyxy, np.float32, (4,), "xyxy")
        scores = _as_array(self.scores, np.float32, (), "scores")
        class_ids = _as_array(self.class_ids, np.int32, (), "class_ids")
        if not len(xyxy) == len(scores) == len(class_ids):
            raise ValueError(
                "Detections arrays must have the same length, got "
                f"xyxy={len(xyxy)}, scores={len(scores)}, class_ids={len(class_ids)}"
            )
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "class_ids", class_ids)
        for name, dtype in (("tracker_id", np.int64), ("predicted", np.bool_)):
            value = getattr(self, name)
            if value is not None:
                array = _as_array(value, dtype, (), name)
                if len(array) != len(scores):
                    raise ValueError(f"Detections.{name} has {len(array)} entries for "
                                     f"{len(scores)} boxes")  # fmt: skip
                object.__setattr__(self, name, array)

    @classmethod
    def empty(cls, labels: tuple[str, ...] = ()) -> Detections:
        return cls(labels=labels)

    def class_name(self, class_id: int) -> str:
        """The name of a class id: the model's label, or the number for an unnamed class."""
        return self.labels[class_id] if 0 <= class_id < len(self.labels) else str(class_id)

    @property
    def names(self) -> list[str]:
        """Each box's class name."""
        return [self.class_name(c) for c in self.class_ids.tolist()]

    @property
    def area(self) -> npt.NDArray[np.float32]:
        """``(n,)`` box areas in source pixels²."""
        return (self.xyxy[:, 2] - self.xyxy[:, 0]) * (self.xyxy[:, 3] - self.xyxy[:, 1])

    def filter(
        self,
        classes: Collection[int] | None = None,
        min_area: float = 0.0,
        max_det: int | None = None,
    ) -> Detections:
        """The boxes of these classes (``None``: all) at least ``min_area`` in size, then the
        first ``max_det`` of them (detectors list the highest score first)."""
        keep = np.ones(len(self), bool)
        if classes is not None:
            keep &= np.isin(self.class_ids, list(classes))
        if min_area > 0:
            keep &= self.area >= min_area
        kept = self if keep.all() else self[keep]
        return kept if max_det is None or len(kept) <= max_det else kept[:max_det]

    def __len__(self) -> int:
        return len(self.scores)

    def __getitem__(
        self, index: npt.NDArray[np.bool_] | npt.NDArray[np.integer] | slice
    ) -> Detections:
        return Detections(
            self.xyxy[index], self.scores[index], self.class_ids[index],
            None if self.tracker_id is None else self.tracker_id[index],
            None if self.predicted is None else self.predicted[index],
            self.labels,
        )  # fmt: skip
