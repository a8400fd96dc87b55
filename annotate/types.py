"""Plain data passed between pipeline stages."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from types import MappingProxyType
from typing import Any, cast

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


def as_image(array: Any) -> npt.NDArray[np.uint8]:
    """An OpenCV result as the ``uint8`` image it is (its stubs say any number type)."""
    return cast("npt.NDArray[np.uint8]", array)


class Meta:
    """Keys of ``Detections.meta`` that the pipeline's stages write
    (:mod:`annotate.pipeline.stages`) and annotators and sinks read."""

    TRACKS = "tracks"  # identities handed out so far on this source (int)
    COUNTS = "counts"  # the lines' and zones' cumulative counts (Counter.as_json)
    RECORD = "record"  # keys each JSON Lines record adds (counts and this frame's events)
    HIDE = "hide"  # what privacy blur must hide this frame (Detections)


def _as_array(value: object, dtype: type, shape_tail: tuple[int, ...], name: str) -> np.ndarray:
    array: np.ndarray = np.asarray(value, dtype=dtype)
    if array.ndim != 1 + len(shape_tail) or array.shape[1:] != shape_tail:
        expected = "(n, " + ", ".join(map(str, shape_tail)) + ")" if shape_tail else "(n,)"
        raise ValueError(f"Detections.{name} must have shape {expected}, got {array.shape}")
    return array


@dataclass(frozen=True, eq=False)
class Detections:
    """Detections in one image, as parallel arrays.

    Attributes:
        xyxy: ``(n, 4) float32`` boxes ``x1, y1, x2, y2`` in source pixels.
        scores: ``(n,) float32`` confidence (objectness × class score for YOLOX).
        class_ids: ``(n,) int32`` indices into the detector's labels.
        track_id: ``(n,) int64`` identity from the tracker (``-1``: a track not yet
            confirmed), or ``None`` when the run does not track.
        predicted: ``(n,) bool``, ``True`` for boxes the tracker predicted on a frame that was
            not detected (``--detect-every``), or ``None`` when the run does not track.
        labels: the model's class names, indexed by class id (shared by every box; ids past
            its end are named by their number).
        data: more per-box arrays, by name, that stages add (each ``(n, ...)``), as
            supervision's ``Detections.data``: what a stage finds rides on the boxes.
        meta: what stages find about the frame as a whole (a counter's counts, the boxes
            privacy must hide), for the annotators and sinks after them; kept by indexing.

    It is a value: ``==`` compares the contents, it hashes by them, ``d[0]`` is the first
    box (as a one-box ``Detections``), ``Detections.merge`` joins several, and
    :meth:`to_records` gives what the JSON Lines output writes.

    Example:
        >>> d = Detections([[0, 0, 10, 10], [5, 5, 7, 7]], [0.9, 0.4], [0, 2], labels=("person",))
        >>> d[d.scores > 0.5].names
        ['person']
        >>> d.filter(min_area=10).names, d.names
        (['person'], ['person', '2'])
    """

    # Annotated loosely: the constructor takes any arrays (or lists) and __post_init__ converts
    # them to the dtypes above.
    xyxy: npt.NDArray[Any] = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    scores: npt.NDArray[Any] = field(default_factory=lambda: np.zeros((0,), np.float32))
    class_ids: npt.NDArray[Any] = field(default_factory=lambda: np.zeros((0,), np.int32))
    track_id: npt.NDArray[Any] | None = None
    predicted: npt.NDArray[Any] | None = None
    labels: tuple[str, ...] = ()
    data: Mapping[str, np.ndarray] = field(default_factory=dict)
    meta: Mapping[str, Any] = field(default_factory=dict)

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
        for name, dtype in (("track_id", np.int64), ("predicted", np.bool_)):
            value = getattr(self, name)
            if value is not None:
                array = _as_array(value, dtype, (), name)
                if len(array) != len(scores):
                    raise ValueError(
                        f"Detections.{name} has {len(array)} entries for {len(scores)} boxes"
                    )
                object.__setattr__(self, name, array)
        data = {key: np.asarray(value) for key, value in self.data.items()}
        for key, value in data.items():
            if len(value) != len(scores):
                raise ValueError(
                    f"Detections.data[{key!r}] has {len(value)} entries for {len(scores)} boxes"
                )
        object.__setattr__(self, "data", MappingProxyType(data))
        object.__setattr__(self, "meta", MappingProxyType(dict(self.meta)))

    def with_meta(self, **meta: Any) -> Detections:
        """These boxes with more frame-level results (a stage's output)."""
        return replace(self, meta={**self.meta, **meta})

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
        area: npt.NDArray[np.float32] = (self.xyxy[:, 2] - self.xyxy[:, 0]) * (
            self.xyxy[:, 3] - self.xyxy[:, 1]
        )
        return area

    def filter(
        self,
        classes: Collection[int] | None = None,
        min_area: float = 0.0,
        max_det: int | None = None,
    ) -> Detections:
        """The boxes of these classes (``None``: all) at least ``min_area`` in size, then the
        first ``max_det`` of them (detectors list the highest score first)."""
        if classes is None and min_area <= 0:  # as a detector calls it every frame
            return self if max_det is None or len(self) <= max_det else self[:max_det]
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
        self, index: int | npt.NDArray[np.bool_] | npt.NDArray[np.integer] | slice
    ) -> Detections:
        """Some of the boxes; an int gives a one-box ``Detections`` (not a bare row)."""
        if isinstance(index, (int, np.integer)):
            position = int(index) + (len(self) if index < 0 else 0)
            if not 0 <= position < len(self):
                raise IndexError(f"box {index} of {len(self)}")
            index = slice(position, position + 1)
        return Detections(
            self.xyxy[index],
            self.scores[index],
            self.class_ids[index],
            None if self.track_id is None else self.track_id[index],
            None if self.predicted is None else self.predicted[index],
            self.labels,
            {key: value[index] for key, value in self.data.items()},
            self.meta,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Detections):
            return NotImplemented
        return (
            self.labels == other.labels
            and all(_same(a, b) for a, b in zip(self._arrays(), other._arrays()))
            and self.data.keys() == other.data.keys()
            and all(_same(v, other.data[k]) for k, v in self.data.items())
            and dict(self.meta) == dict(other.meta)
        )

    def __hash__(self) -> int:  # by the boxes (meta may hold what does not hash)
        arrays = [None if a is None else (a.dtype.str, a.tobytes()) for a in self._arrays()]
        data = sorted((k, np.asarray(v).tobytes()) for k, v in self.data.items())
        return hash((tuple(arrays), self.labels, tuple(data)))

    def _arrays(self) -> tuple[np.ndarray | None, ...]:
        return self.xyxy, self.scores, self.class_ids, self.track_id, self.predicted

    @classmethod
    def merge(cls, parts: Sequence[Detections]) -> Detections:
        """All boxes of ``parts``, in order. Track ids and ``predicted`` are kept when every
        part has them; a ``data`` array when every part has it; labels and meta are the
        first part's."""
        parts = list(parts)
        if not parts:
            return cls.empty()

        def joined(name: str) -> np.ndarray | None:
            arrays = [getattr(p, name) for p in parts]
            return None if any(a is None for a in arrays) else np.concatenate(arrays)

        keys = set.intersection(*(set(p.data) for p in parts))
        return cls(
            np.concatenate([p.xyxy for p in parts]),
            np.concatenate([p.scores for p in parts]),
            np.concatenate([p.class_ids for p in parts]),
            joined("track_id"),
            joined("predicted"),
            next((p.labels for p in parts if p.labels), ()),
            {k: np.concatenate([p.data[k] for p in parts]) for k in sorted(keys)},
            parts[0].meta,
        )

    def to_records(self, landmarks: bool = False) -> list[dict[str, Any]]:
        """One JSON-ready dict per box: label, class id, score and box (source pixels, to
        0.01 px); with tracking, ``track_id`` (``None`` until confirmed) and ``predicted``;
        with ``landmarks``, a face's five points (eyes, nose, mouth corners) as ``[x, y]``."""
        records: list[dict[str, Any]] = [
            {
                "label": self.class_name(c),
                "class_id": c,
                "score": round(s, 4),
                "box": [round(v, 2) for v in box],
            }
            for box, s, c in zip(self.xyxy.tolist(), self.scores.tolist(), self.class_ids.tolist())
        ]
        if self.track_id is not None:
            predicted = (
                self.predicted.tolist() if self.predicted is not None else [False] * len(self)
            )
            for item, track, guess in zip(records, self.track_id.tolist(), predicted):
                item["track_id"] = track if track > 0 else None
                item["predicted"] = guess
        marks = self.data.get("landmarks")
        if landmarks and marks is not None:  # faces' (n, 5, 2); NaN for other classes
            for item, points in zip(records, marks.tolist()):
                if all(math.isfinite(v) for point in points for v in point):
                    item["landmarks"] = [[round(x, 2), round(y, 2)] for x, y in points]
        return records


def _same(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.dtype == b.dtype and np.array_equal(a, b)
